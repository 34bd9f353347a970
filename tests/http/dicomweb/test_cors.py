"""CORS for DICOMweb and WADO-URI: the middleware in-process (preflights, actual requests,
origins and paths it leaves alone), and end to end on a real server with authentication."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from pharos.http.dicomweb.cors import CorsMiddleware
from pharos.services.dicomweb_server import CorsPolicy, cors_policy

VIEWER = "https://viewer.example.org"


def echo(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok", headers={"Vary": "Accept-Encoding"})


def client(policy: CorsPolicy) -> TestClient:
    app = Starlette(routes=[Route("/{path:path}", echo, methods=["GET", "POST", "OPTIONS"])])
    return TestClient(CorsMiddleware(app, policy, ("/dicom-web", "/wado")))


def test_preflight_is_answered_for_an_allowed_origin() -> None:
    response = client(CorsPolicy((VIEWER,))).options(
        "/dicom-web/studies",
        headers={
            "Origin": VIEWER,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, accept",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == VIEWER
    assert "GET" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-allow-headers"] == "authorization, accept"
    assert response.headers["access-control-max-age"] == "600"
    assert response.headers["vary"] == "Origin"
    assert "access-control-allow-credentials" not in response.headers


def test_actual_request_gets_the_headers() -> None:
    response = client(CorsPolicy((VIEWER,), allow_credentials=True)).get(
        "/wado?requestType=WADO", headers={"Origin": VIEWER}
    )
    assert response.status_code == 200 and response.text == "ok"
    assert response.headers["access-control-allow-origin"] == VIEWER
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "Content-Location" in response.headers["access-control-expose-headers"]
    assert response.headers["vary"] == "Accept-Encoding, Origin"


def test_any_origin() -> None:
    anyone = client(CorsPolicy(("*",)))
    response = anyone.get("/dicom-web/studies", headers={"Origin": "http://elsewhere:3000"})
    assert response.headers["access-control-allow-origin"] == "*"
    # With credentials, "*" is not allowed by browsers: the origin is echoed.
    with_credentials = client(CorsPolicy(("*",), allow_credentials=True))
    response = with_credentials.get("/dicom-web/studies", headers={"Origin": "http://x:3000"})
    assert response.headers["access-control-allow-origin"] == "http://x:3000"


@pytest.mark.parametrize(
    ("path", "origin"),
    [
        ("/dicom-web/studies", "https://evil.example.org"),  # not an allowed origin
        ("/system", VIEWER),  # not DICOMweb
        ("/dicom-webby/studies", VIEWER),  # only a prefix of the root's name
        ("/dicom-web/studies", None),  # not a cross-origin request
    ],
)
def test_left_alone(path: str, origin: str | None) -> None:
    headers = {"Origin": origin} if origin else {}
    test = client(CorsPolicy((VIEWER,)))
    response = test.get(path, headers=headers)
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    preflight = test.options(path, headers={**headers, "Access-Control-Request-Method": "GET"})
    assert preflight.text == "ok"  # passed on to the application


def test_policy_from_the_options() -> None:
    assert cors_policy([], False) is None
    policy = cors_policy([VIEWER + "/", "*"], True)
    assert policy == CorsPolicy((VIEWER, "*"), True)
    for bad in ("viewer.example.org", "ftp://x", "https://x/path", ""):
        with pytest.raises(ValueError, match="CorsAllowedOrigins"):
            cors_policy([bad], False)


def test_end_to_end_with_authentication(server_factory: object) -> None:
    server = server_factory(  # type: ignore[operator]
        {
            "AuthenticationEnabled": True,
            "RegisteredUsers": {"alice": "secret"},
            "DicomWeb": {"CorsAllowedOrigins": [VIEWER], "CorsAllowCredentials": True},
        }
    )
    with httpx.Client(base_url=server.url) as http:
        preflight = http.options(
            "/dicom-web/studies",
            headers={
                "Origin": VIEWER,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 204  # no credentials needed
        assert preflight.headers["access-control-allow-origin"] == VIEWER
        refused = http.get("/dicom-web/studies", headers={"Origin": VIEWER})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == VIEWER  # readable by the page
        found = http.get("/dicom-web/studies", headers={"Origin": VIEWER}, auth=("alice", "secret"))
        assert found.status_code == 200 and found.json() == []
        assert found.headers["access-control-allow-credentials"] == "true"
        other = http.get("/system", headers={"Origin": VIEWER}, auth=("alice", "secret"))
        assert "access-control-allow-origin" not in other.headers


def test_bad_origin_stops_the_start_up(server_factory: object) -> None:
    with pytest.raises(RuntimeError, match=r"CorsAllowedOrigins"):
        server_factory({"DicomWeb": {"CorsAllowedOrigins": ["nowhere"]}})  # type: ignore[operator]
