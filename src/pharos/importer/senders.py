"""Where imported files go: the `Sender` interface, and a running Pharos or Orthanc over HTTP
(the local store is in `local.py`).

Senders are called from several threads at once, one file per call, and answer with the
`Outcome` of that file.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import httpx

from pharos import __version__
from pharos.importer.outcomes import (
    ALREADY_STORED,
    STORED,
    Outcome,
    ServerGone,
    UsageError,
)

# Attempts per file on connection trouble or 503 (a stale keep-alive connection, a database
# briefly unavailable). Resending is safe: the same file is then "already stored".
ATTEMPTS = 3
RETRY_DELAY = 0.2  # seconds, doubled at each attempt
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 300.0  # a large file on a busy server


class Sender(Protocol):
    def describe(self) -> str: ...

    def send(self, data: bytes) -> Outcome: ...

    def close(self) -> None: ...


class HttpSender:
    """`POST /instances`, one file per request (so each file gets its own verdict), over a
    pool of keep-alive connections, one per job."""

    def __init__(self, url: str, jobs: int):
        self.url, auth = parse_url(url)
        self._client = httpx.Client(
            auth=auth,
            limits=httpx.Limits(max_connections=jobs, max_keepalive_connections=jobs),
            timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
            headers={"User-Agent": f"pharos-import/{__version__}"},
        )
        self._endpoint = self.url.rstrip("/") + "/instances"
        self._server = ""

    def check(self) -> None:
        """Fail fast, before anything is read, if the server cannot take files."""
        try:
            response = self._client.get(self.url.rstrip("/") + "/system")
        except httpx.TransportError as exc:
            raise UsageError(f"cannot reach {self.url}: {_transport_reason(exc)}") from None
        if response.status_code == 401:
            raise UsageError(
                f"{self.url} refused the credentials (HTTP 401); "
                "give them in the URL: http://user:password@host:port"
            )
        if response.status_code != 200:
            raise UsageError(
                f"{self.url} does not answer as a Pharos or Orthanc server "
                f"(GET /system: HTTP {response.status_code})"
            )
        system = _json(response)
        if isinstance(system, dict):
            self._server = f"{system.get('Name', '?')}, version {system.get('Version', '?')}"

    def describe(self) -> str:
        return f"{self.url} ({self._server})" if self._server else self.url

    def send(self, data: bytes) -> Outcome:
        delay = RETRY_DELAY
        for attempt in range(1, ATTEMPTS + 1):
            try:
                response = self._client.post(
                    self._endpoint, content=data, headers={"Content-Type": "application/dicom"}
                )
            except httpx.TransportError as exc:
                if attempt == ATTEMPTS:
                    if isinstance(exc, httpx.ConnectError):
                        raise ServerGone(f"{self.url}: {_transport_reason(exc)}") from None
                    return Outcome.failed(_transport_reason(exc))
            else:
                if response.status_code != 503 or attempt == ATTEMPTS:
                    return http_outcome(response)
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self._client.close()


def parse_url(url: str) -> tuple[str, httpx.BasicAuth | None]:
    """(URL without credentials, the credentials), or a `UsageError` saying what is wrong."""
    try:
        parsed = httpx.URL(url)
        port = parsed.port
    except (httpx.InvalidURL, ValueError) as exc:
        raise UsageError(f"bad URL {url!r}: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UsageError(f"bad URL {url!r}: expected http://host:port or https://host:port")
    if port is not None and not 0 < port < 65536:
        raise UsageError(f"bad URL {url!r}: port {port} out of range")
    if parsed.query or parsed.fragment:
        raise UsageError(f"bad URL {url!r}: no query or fragment expected")
    auth = None
    if parsed.username or parsed.password:
        auth = httpx.BasicAuth(parsed.username, parsed.password)
    return str(parsed.copy_with(username=None, password=None)), auth


def http_outcome(response: httpx.Response) -> Outcome:
    """The outcome of `POST /instances`, from Orthanc's answer (or Pharos's, the same)."""
    body = _json(response)
    if response.status_code == 200 and isinstance(body, dict):
        if body.get("Status") == "Success":
            return STORED
        if body.get("Status") == "AlreadyStored":
            return ALREADY_STORED
    reason = ""
    if isinstance(body, dict):
        reason = str(body.get("Details") or body.get("Message") or body.get("Status") or "")
    elif isinstance(body, list):
        # The file started like a zip (a preamble may hold anything): the server unpacked it.
        reason = "the server read the file as a zip archive"
    return Outcome.failed(f"HTTP {response.status_code}: {reason}" if reason else _status(response))


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _status(response: httpx.Response) -> str:
    return f"HTTP {response.status_code} {response.reason_phrase}".rstrip()


def _transport_reason(exc: httpx.TransportError) -> str:
    return str(exc) or type(exc).__name__
