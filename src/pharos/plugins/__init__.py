"""Plugins: hook specifications, the plugin manager and the values hooks receive."""

from pharos.plugins.hookspecs import hookimpl, hookspec
from pharos.plugins.manager import PluginManager
from pharos.plugins.types import (
    IncomingHttpRequest,
    IncomingInstance,
    PluginContext,
    Refusal,
    RestCaller,
    origin_dict,
)

__all__ = [
    "IncomingHttpRequest",
    "IncomingInstance",
    "PluginContext",
    "PluginManager",
    "Refusal",
    "RestCaller",
    "hookimpl",
    "hookspec",
    "origin_dict",
]
