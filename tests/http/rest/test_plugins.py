"""GET /plugins and /plugins/{id}, and the plugins' HTTP request filter, on the ASGI app
in-process (the same routes on a real server: tests/plugins/test_python_plugins.py)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from pharos.http.errors import install_error_handlers
from pharos.http.plugin_filter import PluginRequestFilter
from pharos.http.rest import plugins as plugin_routes
from pharos.http.security import SecurityMiddleware
from pharos.plugins import IncomingHttpRequest, PluginManager, hookimpl


class Watcher:
    """Sees every request; refuses those of user "mallory" and any ?deny argument."""

    __version__ = "3.1"

    def __init__(self) -> None:
        self.seen: list[IncomingHttpRequest] = []

    @hookimpl
    def pharos_incoming_http_request_filter(self, request: IncomingHttpRequest) -> bool:
        self.seen.append(request)
        return request.username != "mallory" and "deny" not in request.get

    @hookimpl
    def pharos_plugin_info(self) -> dict[str, Any]:
        return {"ID": "watcher", "Description": "Watches requests", "ExtendedID": "w-1"}


class Silent:
    """A plugin with no information hook: listed under its name."""

    @hookimpl
    def pharos_shutdown(self) -> None: ...


def client_of(manager: PluginManager, *, describe: bool = True, users: bool = False) -> TestClient:
    app = FastAPI()
    app.state.describe_errors = describe
    install_error_handlers(app)
    app.include_router(plugin_routes.router(manager))
    filtered = PluginRequestFilter(app, manager, describe)
    secured = SecurityMiddleware(
        filtered,
        remote_access_allowed=True,
        authentication_enabled=users,
        users={"alice": "a", "mallory": "m"},
    )
    return TestClient(secured)


@pytest.fixture
def watcher() -> Watcher:
    return Watcher()


@pytest.fixture
def manager(watcher: Watcher) -> PluginManager:
    manager = PluginManager()
    manager.register(watcher, "watcher-module")
    manager.register(Silent(), "silent")
    return manager


def test_list_and_describe(manager: PluginManager) -> None:
    client = client_of(manager)
    assert client.get("/plugins").json() == ["silent", "watcher"]
    assert client.get("/plugins/watcher").json() == {
        "ID": "watcher",
        "Version": "3.1",
        "Description": "Watches requests",
        "ExtendedID": "w-1",
    }
    assert client.get("/plugins/silent").json() == {"ID": "silent", "Version": ""}
    unknown = client.get("/plugins/watcher-module")
    assert unknown.status_code == 404
    assert unknown.json()["Details"] == "Unknown plugin: watcher-module"


def test_no_plugin_lists_nothing() -> None:
    client = client_of(PluginManager())
    assert client.get("/plugins").json() == []


def test_filter_sees_the_request_and_refuses_with_orthanc_error(
    manager: PluginManager, watcher: Watcher
) -> None:
    client = client_of(manager, users=True)
    ok = client.get("/plugins?x=1&y=", auth=("alice", "a"), headers={"X-Custom": "v"})
    assert ok.status_code == 200
    request = watcher.seen[-1]
    assert (request.method, request.uri, request.username) == ("GET", "/plugins", "alice")
    assert request.get == {"x": "1", "y": ""}
    assert request.headers["x-custom"] == "v"
    assert request.ip == "testclient"

    refused = client.get("/plugins/watcher", auth=("mallory", "m"))
    assert refused.status_code == 403
    assert refused.json() == {
        "Details": "GET /plugins/watcher refused by plugin watcher-module: filtered out",
        "HttpError": "Forbidden",
        "HttpStatus": 403,
        "Message": "Access to a resource is forbidden",
        "Method": "GET",
        "OrthancError": "Access to a resource is forbidden",
        "OrthancStatus": 45,
        "Uri": "/plugins/watcher",
    }
    # Credentials are checked first: a bad password never reaches the filter.
    count = len(watcher.seen)
    assert client.get("/plugins", auth=("mallory", "wrong")).status_code == 401
    assert len(watcher.seen) == count


def test_failing_filter_refuses(manager: PluginManager) -> None:
    class Broken:
        @hookimpl
        def pharos_incoming_http_request_filter(self) -> bool:
            raise KeyError("oops")

    manager.register(Broken(), "broken")
    refused = client_of(manager, describe=False).get("/plugins")
    assert refused.status_code == 403
    assert refused.content == b""  # HttpDescribeErrors false: the status only
