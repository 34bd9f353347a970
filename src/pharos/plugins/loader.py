"""Find and load plugins: the `pharos.plugins` entry points of installed packages, and the
Python files (or folders of them) listed in the `Plugins` configuration option, as Orthanc
lists its shared libraries there.

A plugin that cannot be loaded is logged and recorded in `PluginManager.failed`; the server
starts without it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from pharos.plugins.manager import PluginManager

log = logging.getLogger("pharos.plugins")

ENTRY_POINT_GROUP = "pharos.plugins"
# Orthanc's native plugins: listed in Orthanc configurations, never loadable here.
_NATIVE_SUFFIXES = (".so", ".dll", ".dylib")


def load_entry_points(manager: PluginManager, group: str = ENTRY_POINT_GROUP) -> None:
    for entry_point in importlib.metadata.entry_points(group=group):
        try:
            manager.register(entry_point.load(), entry_point.name)
        except Exception as exc:
            _failed(manager, entry_point.name, f"{entry_point.value}: {exc}")
        else:
            log.warning("Plugin %s loaded (entry point %s)", entry_point.name, entry_point.value)


def load_configured(manager: PluginManager, paths: Iterable[object], relative_to: Path) -> None:
    """The `Plugins` option: each path a `.py` file or a folder whose `.py` files (not those
    starting with `_`) are loaded, in name order; relative paths start at `relative_to`."""
    for entry in paths:
        if not isinstance(entry, str) or not entry.strip():
            _failed(manager, repr(entry), "a path in Plugins must be a non-empty string")
            continue
        path = Path(entry).expanduser()
        if not path.is_absolute():
            path = relative_to / path
        if path.is_dir():
            files = sorted(
                child
                for child in path.iterdir()
                if child.suffix == ".py" and not child.name.startswith("_") and child.is_file()
            )
            natives = [c.name for c in path.iterdir() if c.suffix.lower() in _NATIVE_SUFFIXES]
            if natives:
                log.warning(
                    "Plugins folder %s: Orthanc's native plugins cannot be loaded by Pharos, "
                    "ignored: %s",
                    path,
                    ", ".join(sorted(natives)),
                )
            for file in files:
                load_file(manager, file)
        elif path.suffix.lower() in _NATIVE_SUFFIXES:
            _failed(manager, path.name, f"{path}: Orthanc's native plugins cannot be loaded")
        elif path.is_file():
            load_file(manager, path)
        else:
            _failed(manager, path.name, f"{path}: no such file or folder")


def load_file(manager: PluginManager, path: Path) -> None:
    """Import a Python file as a module and register it under its file name (without .py)."""
    name = path.stem
    try:
        module = _import(path)
        manager.register(module, name)
    except Exception as exc:
        _failed(manager, name, f"{path}: {type(exc).__name__}: {exc}")
        return
    log.warning("Plugin %s loaded from %s", name, path)


def _import(path: Path) -> ModuleType:
    module_name = "pharos_plugin_" + re.sub(r"\W", "_", path.stem)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    # In sys.modules while it runs, as any import (dataclasses and pickling look it up).
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def _failed(manager: PluginManager, name: str, reason: str) -> None:
    log.error("Plugin %s not loaded: %s", name, reason)
    manager.failed[name] = reason
