"""Orthanc-compatible Lua scripting: `LuaScripts`, `/tools/execute-script` and the callbacks
(OnStoredInstance, ReceivedInstanceFilter, ...), as one plugin on Pharos's hooks."""

from pharos.plugins.lua.plugin import LuaPlugin, LuaScriptsError
from pharos.plugins.lua.runtime import LuaEngine, LuaScriptError

__all__ = ["LuaEngine", "LuaPlugin", "LuaScriptError", "LuaScriptsError"]
