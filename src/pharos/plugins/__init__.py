"""Plugins: hook specifications, the plugin manager and the values hooks receive."""

from pharos.plugins.hookspecs import hookimpl, hookspec
from pharos.plugins.manager import PluginManager
from pharos.plugins.types import (
    EventSink,
    IncomingHttpRequest,
    IncomingInstance,
    PluginContext,
    Refusal,
    RestCaller,
    StorageFactory,
    origin_dict,
)

__all__ = [
    "EventSink",
    "IncomingHttpRequest",
    "IncomingInstance",
    "PluginContext",
    "PluginManager",
    "Refusal",
    "RestCaller",
    "StorageFactory",
    "hookimpl",
    "hookspec",
    "origin_dict",
]
