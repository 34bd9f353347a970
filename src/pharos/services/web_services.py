"""Remote HTTP services: Orthanc peers (`OrthancPeers`) and DICOMweb servers
(`DicomWeb.Servers`), read as Orthanc's `WebServiceParameters` reads them, and the HTTP client
that talks to them (httpx), with transport failures turned into Orthanc errors.

A definition is the array form `[url]` / `[url, username, password]`, or the object form with
`Url` (or `URL`), `Username`, `Password`, `HttpHeaders`, `CertificateFile`,
`CertificateKeyFile`, `CertificateKeyPassword`, `Pkcs11` and `Timeout`; other keys of the
object form are the service's user properties (string, boolean or integer values), e.g. the
`HasDelete` and `ChunkedTransfers` of a DICOMweb server.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from pharos.model.errors import ErrorCode, PharosError

log = logging.getLogger(__name__)

MAX_NAME_LENGTH = 255  # the `peers.name` column of the index

_RESERVED = frozenset(
    {
        "CertificateFile",
        "CertificateKeyFile",
        "CertificateKeyPassword",
        "HttpHeaders",
        "Password",
        "Pkcs11",
        "Url",
        "URL",
        "Username",
        "Timeout",
    }
)


@dataclass(frozen=True, slots=True)
class WebService:
    name: str
    url: str  # with a trailing slash
    username: str = ""
    password: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    certificate_file: str = ""
    certificate_key_file: str = ""
    certificate_key_password: str = ""
    pkcs11: bool = False
    timeout: int = 0  # seconds; 0: HttpTimeout
    properties: Mapping[str, str] = field(default_factory=dict)  # user properties
    kind: str = "web service"  # "Orthanc peer" or "DICOMweb server", for messages

    def bool_property(self, key: str, default: bool) -> bool:
        value = self.properties.get(key)
        if value is None:
            return default
        if value.lower() in ("true", "1", "yes", "on"):
            return True
        if value.lower() in ("false", "0", "no", "off"):
            return False
        raise PharosError(
            ErrorCode.BAD_FILE_FORMAT,
            f'Property "{key}" of the web service {self.name!r} must be a Boolean, not {value!r}',
        )


def _bad(details: str) -> PharosError:
    return PharosError(ErrorCode.BAD_FILE_FORMAT, details)


def _url(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _bad("Empty URL")
    url = value.strip()
    if "://" not in url:
        url = "http://" + url  # as curl
    if not url.startswith(("http://", "https://")):
        raise _bad(f"Bad URL (only http:// and https://): {value}")
    try:
        parsed = httpx.URL(url)
    except Exception:
        raise _bad(f"Bad URL: {value}") from None
    if not parsed.host:
        raise _bad(f"Bad URL (no host): {value}")
    return url if url.endswith("/") else url + "/"


def _string(value: Mapping[str, Any], key: str) -> str:
    item = value.get(key, "")
    if not isinstance(item, str):
        raise _bad(f'The field "{key}" must be a string')
    return item


def parse_web_service(name: str, value: Any, kind: str = "web service") -> WebService:
    """One definition, either form; PharosError BAD_FILE_FORMAT naming what is wrong."""
    if isinstance(value, list):
        if len(value) not in (1, 3) or not all(isinstance(item, str) for item in value):
            raise _bad(
                f"{name}: the array form is [url] or [url, username, password] (strings), "
                f"not {value!r}"
            )
        username, password = (value[1], value[2]) if len(value) == 3 else ("", "")
        if not username and password:
            raise _bad(f"{name}: a password without a username")
        return WebService(name, _url(value[0]), username, password, kind=kind)
    if not isinstance(value, dict):
        raise _bad(f"{name}: a web service is a JSON array or object, not {value!r}")
    url = _string(value, "Url") or _string(value, "URL")
    username, password = _string(value, "Username"), _string(value, "Password")
    if not username and password:
        raise _bad(f"{name}: a password without a username")
    headers = value.get("HttpHeaders", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise _bad(f'{name}: "HttpHeaders" must be an object of strings')
    pkcs11 = value.get("Pkcs11", False)
    if not isinstance(pkcs11, bool):
        raise _bad(f'{name}: "Pkcs11" must be true or false')
    timeout = value.get("Timeout", 0)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0:
        raise _bad(f'{name}: "Timeout" must be a positive integer (seconds)')
    properties: dict[str, str] = {}
    for key, item in value.items():
        if key in _RESERVED:
            continue
        if isinstance(item, bool):
            properties[key] = "1" if item else "0"
        elif isinstance(item, int | str):
            properties[key] = str(item)
        else:
            raise _bad(f"{name}: user-defined properties must be strings: {key}")
    certificate = _string(value, "CertificateFile")
    return WebService(
        name,
        _url(url),
        username,
        password,
        dict(headers),
        certificate,
        _string(value, "CertificateKeyFile") if certificate else "",
        _string(value, "CertificateKeyPassword") if certificate else "",
        pkcs11,
        timeout,
        properties,
        kind,
    )


def serialize(service: WebService, include_passwords: bool = True) -> dict[str, Any]:
    """The object form (Orthanc's advanced format): what the index keeps, what jobs save."""
    value: dict[str, Any] = {"Url": service.url}
    if service.username or service.password:
        value["Username"] = service.username
        if include_passwords:
            value["Password"] = service.password
    if service.certificate_file:
        value["CertificateFile"] = service.certificate_file
    if service.certificate_key_file:
        value["CertificateKeyFile"] = service.certificate_key_file
    if service.certificate_key_password and include_passwords:
        value["CertificateKeyPassword"] = service.certificate_key_password
    value["Pkcs11"] = service.pkcs11
    value["Timeout"] = service.timeout
    value["HttpHeaders"] = dict(service.headers) if include_passwords else {}
    value.update(service.properties)
    return value


def format_public(service: WebService) -> dict[str, Any]:
    """What `GET /peers?expand` and `/peers/{id}/configuration` show (Orthanc's FormatPublic):
    secrets as null, the names of the HTTP headers without their values."""
    value: dict[str, Any] = {"Url": service.url}
    if service.username:
        value["Username"] = service.username
        value["Password"] = None
    if service.certificate_file:
        value["CertificateFile"] = service.certificate_file
        value["CertificateKeyFile"] = None
        value["CertificateKeyPassword"] = None
    value["Pkcs11"] = service.pkcs11
    value["Timeout"] = service.timeout
    value["HttpHeaders"] = sorted(service.headers)
    value.update(service.properties)
    return value


# -- the registry ---------------------------------------------------------------------------


class WebServiceStore(Protocol):
    """Where services defined through the REST API are kept (a table of the index)."""

    def stored_services(self) -> dict[str, str]: ...

    def stored_service(self, name: str) -> str | None: ...

    def put_service(self, name: str, definition: str) -> None: ...

    def delete_service(self, name: str) -> bool: ...


class WebServiceRegistry:
    """The services known now, thread-safe: the configured ones, changed by PUT/DELETE until
    restart; or, with a store (OrthancPeersInDatabase, DicomWeb.ServersInDatabase), the stored
    ones only, shared by every process using the same index (Orthanc ignores the configured
    ones in that mode)."""

    def __init__(
        self,
        kind: str,
        configured: Mapping[str, WebService],
        store: WebServiceStore | None = None,
    ):
        self.kind = kind  # "Orthanc peer" or "DICOMweb server", for messages
        self._configured = dict(configured)
        self._store = store
        self._lock = threading.Lock()

    def snapshot(self) -> list[WebService]:
        if self._store is not None:
            found = [
                _from_stored(name, text, self.kind)
                for name, text in self._store.stored_services().items()
            ]
            return sorted((s for s in found if s is not None), key=lambda s: s.name)
        with self._lock:
            return [self._configured[name] for name in sorted(self._configured)]

    def get(self, name: str) -> WebService | None:
        if self._store is not None:
            text = self._store.stored_service(name)
            return None if text is None else _from_stored(name, text, self.kind)
        with self._lock:
            return self._configured.get(name)

    def names(self) -> list[str]:
        return [service.name for service in self.snapshot()]

    def configurations(self) -> dict[str, dict[str, Any]]:
        """`?expand` of the listing: each service as Orthanc shows it (no passwords)."""
        return {service.name: format_public(service) for service in self.snapshot()}

    def configuration(self, name: str) -> dict[str, Any]:
        return format_public(self.require(name))

    def require(self, name: str) -> WebService:
        service = self.get(name)
        if service is None:
            raise PharosError(
                ErrorCode.UNKNOWN_RESOURCE, f"No {self.kind} with symbolic name: {name}"
            )
        return service

    def put(self, name: str, value: Any) -> WebService:
        if not name or "/" in name or len(name) > MAX_NAME_LENGTH:
            raise PharosError(
                ErrorCode.BAD_REQUEST,
                f"A {self.kind} name is 1 to {MAX_NAME_LENGTH} characters without '/', "
                f"not {name!r}",
            )
        service = parse_web_service(name, value, self.kind)
        if self._store is not None:
            self._store.put_service(name, json.dumps(serialize(service), sort_keys=True))
        else:
            with self._lock:
                self._configured[name] = service
        log.warning("The %s %r is defined: %s", self.kind, name, service.url)
        return service

    def delete(self, name: str) -> None:
        if self._store is not None:
            removed = self._store.delete_service(name)
        else:
            with self._lock:
                removed = self._configured.pop(name, None) is not None
        if not removed:
            raise PharosError(
                ErrorCode.UNKNOWN_RESOURCE, f"No {self.kind} with symbolic name: {name}"
            )
        log.warning("The %s %r is deleted", self.kind, name)


def _from_stored(name: str, text: str, kind: str) -> WebService | None:
    try:
        return parse_web_service(name, json.loads(text), kind)
    except (ValueError, PharosError) as exc:  # written by us: only a manual edit gets here
        log.error("Stored web service %r is unusable, ignored: %s", name, exc)
        return None


def parse_configured(kind: str, section: Mapping[str, Any]) -> dict[str, WebService]:
    """The configured services (OrthancPeers, DicomWeb.Servers); ValueError if one is
    unusable, so that a typo stops the start-up instead of failing the first transfer."""
    services: dict[str, WebService] = {}
    for name, value in section.items():
        try:
            services[str(name)] = parse_web_service(str(name), value, kind)
        except PharosError as exc:
            raise ValueError(f"{kind} {name!r}: {exc.details}") from None
    return services


# -- the HTTP client ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """HttpTimeout, HttpsVerifyPeers, HttpsCACertificates, HttpProxy."""

    timeout: int = 60
    verify_peers: bool = True
    ca_certificates: str = ""
    proxy: str = ""


class HttpClientFactory:
    """httpx clients configured for one service and the global HTTP settings."""

    def __init__(self, settings: HttpSettings):
        self.settings = settings
        self._contexts: dict[tuple[str, str, str], ssl.SSLContext] = {}
        self._lock = threading.Lock()

    def client(self, service: WebService) -> httpx.Client:
        if service.pkcs11:
            raise PharosError(
                ErrorCode.NOT_IMPLEMENTED,
                f"{service.name}: PKCS#11 authentication is not supported by Pharos",
            )
        settings = self.settings
        try:
            verify = self._ssl_context(
                service.certificate_file,
                service.certificate_key_file,
                service.certificate_key_password,
            )
        except (OSError, ValueError) as exc:  # unreadable certificate files
            raise PharosError(
                ErrorCode.BAD_FILE_FORMAT, f"{service.name}: cannot set up HTTPS: {exc}"
            ) from None
        proxy = settings.proxy
        if proxy and "://" not in proxy:
            proxy = "http://" + proxy
        seconds = service.timeout or settings.timeout or None  # 0: no limit
        return httpx.Client(
            base_url=service.url,
            auth=(service.username, service.password) if service.username else None,
            headers=dict(service.headers),
            verify=verify,
            proxy=proxy or None,
            timeout=httpx.Timeout(seconds),
            follow_redirects=True,
        )

    def _ssl_context(self, certificate: str, key: str, password: str) -> ssl.SSLContext:
        """HttpsVerifyPeers, HttpsCACertificates and the client certificate; built once per
        certificate (loading the CA store is slow)."""
        cache_key = (certificate, key, password)
        with self._lock:
            found = self._contexts.get(cache_key)
        if found is not None:
            return found
        settings = self.settings
        if settings.verify_peers:
            context = ssl.create_default_context(cafile=settings.ca_certificates or None)
        else:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if certificate:
            context.load_cert_chain(certificate, key or None, password or None)
        with self._lock:
            self._contexts[cache_key] = context
        return context

    @contextmanager
    def session(self, service: WebService) -> Iterator[httpx.Client]:
        """A client whose transport failures become Orthanc errors (see `transport_error`)."""
        client = self.client(service)
        try:
            with client:
                yield client
        except httpx.HTTPError as exc:
            raise transport_error(service, exc) from None


def transport_error(service: WebService, exc: httpx.HTTPError) -> PharosError:
    """A request that got no HTTP answer: 504 for a timeout, 502 otherwise (Orthanc answers
    500 with its NetworkProtocol error; the codes are kept, the status says whose fault)."""
    where = f"{service.kind} {service.name!r} ({service.url})"
    if isinstance(exc, httpx.TimeoutException):
        return PharosError(ErrorCode.TIMEOUT, f"No answer in time from {where}", http_status=504)
    return PharosError(ErrorCode.NETWORK_PROTOCOL, f"Cannot reach {where}: {exc}", http_status=502)


def check_answer(service: WebService, response: httpx.Response, what: str) -> None:
    """Refusals of the remote, as errors naming it: a remote 401/403 is reported as a bad
    gateway (our own client did nothing wrong), with the remote's message when it has one."""
    status = response.status_code
    if status < 400:
        return
    where = f"{service.kind} {service.name!r}"
    message = _remote_message(response)
    if status in (401, 403):
        raise PharosError(
            ErrorCode.UNAUTHORIZED,
            f"{where} refused the credentials (HTTP {status}) for {what}{message}",
            http_status=502,
        )
    if status == 404:
        raise PharosError(
            ErrorCode.UNKNOWN_RESOURCE, f"{where} answered 404 Not Found for {what}{message}"
        )
    raise PharosError(
        ErrorCode.NETWORK_PROTOCOL,
        f"{where} answered HTTP {status} for {what}{message}",
        http_status=502,
    )


def _remote_message(response: httpx.Response) -> str:
    try:
        if response.is_stream_consumed or response.is_closed:
            text = response.text
        else:
            text = response.read().decode("utf-8", "replace")
    except Exception:
        return ""
    try:
        value = json.loads(text)
    except ValueError:
        return f": {text[:300]}" if text.strip() else ""
    if isinstance(value, dict):
        details = value.get("Details") or value.get("Message")
        if details:
            return f": {details}"
    return ""
