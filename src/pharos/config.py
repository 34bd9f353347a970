"""Pharos configuration: one table of settings, read from Orthanc-format JSON files.

Precedence: table defaults < JSON files < environment (`ORTHANC__HTTP_PORT`, `PHAROS__HTTP_PORT`).
Files follow Orthanc's rules: comments allowed, `${VAR}` / `${VAR:-default}` replaced by
environment variables before parsing, a directory means all its `*.json` files, and an option
defined in two files is an error. Ill-typed values stop start-up with a `ConfigError`; unknown
options do not, they are listed in `Config.warnings`.

This module imports nothing else of Pharos (only its table, `config_options`), so that every
layer's tests can build a `Config`.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
import textwrap
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeAlias, TypeVar, overload

import json5

from pharos.config_options import (
    GROUP_TITLES,
    SETTINGS,
    UNSUPPORTED,
    UNSUPPORTED_DICOMWEB,
    UNSUPPORTED_POSTGRESQL,
    Setting,
)

__all__ = [
    "SETTINGS",
    "Config",
    "ConfigError",
    "JsonValue",
    "Setting",
    "Settings",
    "default_config",
    "load_config",
    "render_default_config",
]

JsonValue: TypeAlias = bool | int | float | str | list[Any] | dict[str, Any] | None

ENV_PREFIXES: Final = ("ORTHANC__", "PHAROS__")  # in increasing priority
DEFAULT_SOURCE: Final = "default"
OVERRIDE_SOURCE: Final = "override"

_T = TypeVar("_T")
_MISSING: Final[Any] = object()

# Orthanc's Toolbox::SubstituteVariables: ${NAME} or ${NAME:-default}, applied to the raw text.
_VARIABLE = re.compile(r"\$\{([^}:]*)(?::-([^}]*))?\}")
_JSON5_ERROR = re.compile(r"^<string>:(\d+) ")

_KIND_NAMES: Final[Mapping[type, str]] = {
    bool: "a boolean (true or false)",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
}

_SECTION_UNSUPPORTED: Final[Mapping[str, Mapping[str, str]]] = {
    "PostgreSQL": UNSUPPORTED_POSTGRESQL,
    "DicomWeb": UNSUPPORTED_DICOMWEB,
}


class ConfigError(ValueError):
    """The configuration cannot be used: unreadable file, bad JSON, ill-typed value..."""


# --- the Config object ------------------------------------------------------------------------


class Settings(Mapping[str, JsonValue]):
    """Read-only view of a group of settings: the top level, or a section such as PostgreSQL.

    `settings[name]` is the effective value (given, else default); containers are copies, so
    callers cannot change the configuration by accident. Two views are equal when their
    effective values are.
    """

    def __init__(
        self,
        table: Iterable[Setting],
        values: Mapping[str, JsonValue],
        sources: Mapping[str, str],
        sections: Mapping[str, Settings] | None = None,
    ) -> None:
        self._table: dict[str, Setting] = {s.name: s for s in table}
        self._values = dict(values)  # only the values given explicitly
        self._sources = dict(sources)
        self._sections: dict[str, Settings] = dict(sections or {})
        for setting in self._table.values():
            if setting.is_section and setting.name not in self._sections:
                self._sections[setting.name] = Settings(setting.children, {}, {})

    # Mapping protocol

    def __getitem__(self, name: str) -> JsonValue:
        setting = self.setting(name)
        if setting.is_section:
            return self._sections[name].as_dict()
        value: JsonValue = copy.deepcopy(self._values.get(name, setting.default))
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        # Values stay out of the repr: it ends up in logs, and some are passwords.
        return f"{type(self).__name__}(set={sorted(self._sources)!r})"

    # Introspection

    def setting(self, name: str) -> Setting:
        """The table entry of `name` (KeyError, with a suggestion, if there is none)."""
        try:
            return self._table[name]
        except KeyError:
            hint = _suggest(name, self._table)
            raise KeyError(f'Unknown option "{name}"{hint}') from None

    def source(self, name: str) -> str:
        """Where the value comes from: "default", a file path, an env var name, "override"."""
        self.setting(name)
        return self._sources.get(name, DEFAULT_SOURCE)

    def is_set(self, name: str) -> bool:
        """Whether a file, the environment or an override gave this option explicitly."""
        self.setting(name)
        return name in self._sources

    def section(self, name: str) -> Settings:
        """The sub-settings of a known section (e.g. "PostgreSQL")."""
        if not self.setting(name).is_section:
            raise TypeError(f'Option "{name}" is not a section with known sub-settings')
        return self._sections[name]

    def as_dict(self) -> dict[str, JsonValue]:
        """The effective configuration (options without a default and not set are None)."""
        return {name: self[name] for name in self._table}

    # Typed accessors: `default` replaces a None value (an option with no default, not set).

    @overload
    def get_bool(self, name: str) -> bool: ...
    @overload
    def get_bool(self, name: str, default: _T) -> bool | _T: ...
    def get_bool(self, name: str, default: Any = _MISSING) -> Any:
        return self._typed(name, (bool,), default)

    @overload
    def get_int(self, name: str) -> int: ...
    @overload
    def get_int(self, name: str, default: _T) -> int | _T: ...
    def get_int(self, name: str, default: Any = _MISSING) -> Any:
        return self._typed(name, (int,), default)

    @overload
    def get_float(self, name: str) -> float: ...
    @overload
    def get_float(self, name: str, default: _T) -> float | _T: ...
    def get_float(self, name: str, default: Any = _MISSING) -> Any:
        return self._typed(name, (float,), default)  # stored as float by _check()

    @overload
    def get_str(self, name: str) -> str: ...
    @overload
    def get_str(self, name: str, default: _T) -> str | _T: ...
    def get_str(self, name: str, default: Any = _MISSING) -> Any:
        return self._typed(name, (str,), default)

    @overload
    def get_list(self, name: str) -> list[Any]: ...
    @overload
    def get_list(self, name: str, default: _T) -> list[Any] | _T: ...
    def get_list(self, name: str, default: Any = _MISSING) -> Any:
        return self._typed(name, (list,), default)

    @overload
    def get_dict(self, name: str) -> dict[str, Any]: ...
    @overload
    def get_dict(self, name: str, default: _T) -> dict[str, Any] | _T: ...
    def get_dict(self, name: str, default: Any = _MISSING) -> Any:
        return self._typed(name, (dict,), default)

    def _typed(self, name: str, kinds: tuple[type, ...], default: Any) -> Any:
        setting = self.setting(name)
        if setting.kind not in kinds:
            wanted = " or ".join(k.__name__ for k in kinds)
            raise TypeError(f'Option "{name}" is a {setting.kind.__name__}, not a {wanted}')
        value = self[name]
        if value is None:
            if default is _MISSING:
                raise TypeError(f'Option "{name}" has no default and is not set: pass a default')
            return default
        return value


class Config(Settings):
    """The effective configuration of a Pharos process. Build it with `load_config()`."""

    def __init__(
        self,
        values: Mapping[str, JsonValue],
        sources: Mapping[str, str],
        sections: Mapping[str, Settings] | None = None,
        warnings: Sequence[str] = (),
        files: Sequence[str] = (),
    ) -> None:
        super().__init__(SETTINGS, values, sources, sections)
        self.warnings: list[str] = list(warnings)
        self.files: tuple[str, ...] = tuple(files)  # the files read, in order

    def with_overrides(self, **values: JsonValue) -> Config:
        """A copy with some options replaced (validated; KeyError for unknown names).

        A section's value is merged into it: `with_overrides(PostgreSQL={"Port": 5433})` keeps
        the other PostgreSQL sub-settings.
        """
        builder = _Builder.from_config(self)
        for name, value in values.items():
            self.setting(name)
            builder.set_option(name, value, OVERRIDE_SOURCE)
        builder.raise_errors()
        return builder.build(self.warnings, self.files)


def default_config() -> Config:
    """The configuration when no file and no environment variable is given."""
    return Config({}, {})


# --- loading ----------------------------------------------------------------------------------


def load_config(
    paths: Sequence[str | os.PathLike[str]],
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Read JSON configuration files and directories, then apply environment overrides.

    `environ` defaults to `os.environ`; it provides both the `ORTHANC__*`/`PHAROS__*` overrides
    and the `${VAR}` substitutions inside files.
    """
    env = os.environ if environ is None else environ
    builder = _Builder()
    origin: dict[str, str] = {}  # top-level key -> the file that defined it
    for path in paths:
        for file in _expand(path):
            document = _read_json(file, env, builder.warnings)
            for key in document:
                if key in origin:
                    # Orthanc's AddFileToConfiguration: top-level keys, sections included, are
                    # never merged across files.
                    raise ConfigError(
                        f'The configuration option "{key}" is defined in 2 different '
                        f"configuration files: {origin[key]} and {file}"
                    )
                origin[key] = file
            builder.files.append(file)
            for key, value in document.items():
                builder.add(key, value, file)
    builder.add_environment(env)
    builder.raise_errors()
    return builder.build()


def _expand(path: str | os.PathLike[str]) -> list[str]:
    """A file, or the `*.json` files of a directory (not recursive, sorted by name)."""
    p = Path(path)
    if p.is_dir():
        return [
            str(child)
            for child in sorted(p.iterdir(), key=lambda c: c.name)
            if child.suffix.lower() == ".json" and not child.is_dir()
        ]
    if not p.exists():
        raise ConfigError(f"Inexistent path to configuration: {os.fspath(path)}")
    return [os.fspath(path)]


def _read_json(file: str, environ: Mapping[str, str], warnings: list[str]) -> dict[str, Any]:
    try:
        text = Path(file).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read the configuration file {file}: {exc}") from exc

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is None:
            warnings.append(
                f"Environment variable {name} (used as ${{{name}}} in {file}) is not set: "
                "replaced by an empty string"
            )
        return default or ""

    text = _VARIABLE.sub(substitute, text)
    duplicates: list[str] = []

    def pairs_hook(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
        # JsonCpp, like json5, keeps the last of duplicate keys; say so rather than hide it.
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                duplicates.append(key)
            result[key] = value
        return result

    try:
        document = json5.loads(text, object_pairs_hook=pairs_hook)
    except ValueError as exc:
        # json5 reports "<string>:LINE message"; name the file instead.
        message = _JSON5_ERROR.sub(lambda m: f"line {m.group(1)}: ", str(exc))
        raise ConfigError(f"Bad JSON in the configuration file {file}: {message}") from exc
    if not isinstance(document, dict):
        raise ConfigError(
            f"The configuration file {file} must contain a JSON object, not {_json_type(document)}"
        )
    for key in duplicates:
        warnings.append(f'Key "{key}" appears twice in one object of {file}: the last one wins')
    return document


class _Builder:
    """Collects values, sources, warnings and type errors while a Config is being built."""

    def __init__(self) -> None:
        self.values: dict[str, JsonValue] = {}
        self.sources: dict[str, str] = {}
        self.sections: dict[str, tuple[dict[str, JsonValue], dict[str, str]]] = {
            s.name: ({}, {}) for s in SETTINGS if s.is_section
        }
        self.warnings: list[str] = []
        self.errors: list[str] = []
        self.files: list[str] = []

    @classmethod
    def from_config(cls, config: Config) -> _Builder:
        builder = cls()
        builder.values = dict(config._values)
        builder.sources = dict(config._sources)
        for name, view in config._sections.items():
            builder.sections[name] = (dict(view._values), dict(view._sources))
        return builder

    def build(self, warnings: Sequence[str] | None = None, files: Sequence[str] = ()) -> Config:
        sections = {
            name: Settings(_table[name].children, values, sources)
            for name, (values, sources) in self.sections.items()
        }
        return Config(
            self.values,
            self.sources,
            sections,
            self.warnings if warnings is None else warnings,
            self.files or files,
        )

    def raise_errors(self) -> None:
        if len(self.errors) == 1:
            raise ConfigError(self.errors[0])
        if self.errors:
            raise ConfigError(
                f"{len(self.errors)} errors in the configuration:\n- " + "\n- ".join(self.errors)
            )

    # from files

    def add(self, key: str, value: Any, source: str) -> None:
        setting = _table.get(key)
        if setting is not None:
            self.set_option(key, value, source)
        elif key in UNSUPPORTED:
            self.warnings.append(_unsupported(key, UNSUPPORTED[key], f"in {source}"))
        else:
            self.warnings.append(_unknown(key, f"in {source}", _table))

    def set_option(self, name: str, value: Any, source: str, where: str | None = None) -> None:
        """Validate and store `value` for the top-level option `name`."""
        setting = _table[name]
        where = where or f"in {source}"
        if setting.is_section:
            if not isinstance(value, dict):
                self.errors.append(_type_error(name, where, setting, value))
                return
            self.sources.setdefault(name, source)
            for key, sub_value in value.items():
                self.set_sub_option(setting, key, sub_value, source, where)
            return
        ok, checked = _check(setting, value)
        if not ok:
            self.errors.append(_type_error(name, where, setting, value))
            return
        self.values[name] = checked
        self.sources[name] = source

    def set_sub_option(
        self, section: Setting, key: str, value: Any, source: str, where: str
    ) -> None:
        values, sources = self.sections[section.name]
        children = {c.name: c for c in section.children}
        setting = children.get(key)
        label = f"{section.name}.{key}"
        if setting is None:
            unsupported = _SECTION_UNSUPPORTED.get(section.name, {})
            if key in unsupported:
                self.warnings.append(_unsupported(label, unsupported[key], where))
            else:
                self.warnings.append(_unknown(label, where, children, prefix=f"{section.name}."))
            return
        ok, checked = _check(setting, value)
        if not ok:
            self.errors.append(_type_error(label, where, setting, value))
            return
        self.sources.setdefault(section.name, source)
        values[key] = checked
        sources[key] = source

    # from the environment

    def add_environment(self, environ: Mapping[str, str]) -> None:
        for prefix in ENV_PREFIXES:  # later prefixes win
            names = [v for v in environ if v.startswith(prefix)]
            # Whole values first, so that ORTHANC__POSTGRESQL__PORT refines ORTHANC__POSTGRESQL.
            for var in sorted(names, key=lambda v: (v.count("__"), v)):
                self.add_env_var(var, prefix, environ[var])

    def add_env_var(self, var: str, prefix: str, raw: str) -> None:
        parts = var[len(prefix) :].split("__")
        where = f"from environment variable {var}"
        setting = _env_index.get(_normalize(parts[0]))
        if setting is None:
            unsupported = _env_unsupported.get(_normalize(parts[0]))
            if unsupported is not None:
                self.warnings.append(_unsupported(unsupported, UNSUPPORTED[unsupported], where))
            else:
                self.warnings.append(_unknown(parts[0], where, _table, normalize=True))
            return
        if len(parts) == 1:
            self.set_option(setting.name, _parse_env(raw, setting), var, where)
        elif len(parts) == 2 and setting.is_section:
            children = {_normalize(c.name): c for c in setting.children}
            child = children.get(_normalize(parts[1]))
            if child is None:
                known = _SECTION_UNSUPPORTED.get(setting.name, {})
                unsupported = {_normalize(k): k for k in known}.get(_normalize(parts[1]))
                label = f"{setting.name}.{unsupported or parts[1]}"
                if unsupported is not None:
                    self.warnings.append(_unsupported(label, known[unsupported], where))
                else:
                    names = [c.name for c in setting.children]
                    prefix = f"{setting.name}."
                    self.warnings.append(_unknown(label, where, names, prefix, normalize=True))
            else:
                self.set_sub_option(setting, child.name, _parse_env(raw, child), var, where)
        elif setting.kind is dict and not setting.is_section:
            self.warnings.append(
                f'Option "{setting.name}" {where} is a free-form object: set it as a whole, '
                f"as JSON, in {prefix}{parts[0]} (ignored)"
            )
        else:
            self.warnings.append(_unknown("__".join(parts), where, _table, normalize=True))


def _parse_env(raw: str, setting: Setting) -> Any:
    """JSON when it parses and fits (8043, true, [...], {...}), else the raw string."""
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    if setting.kind is str and not isinstance(value, str):
        # "ORTHANC__NAME=123" means the name "123"; "null" still unsets an option without default.
        return None if value is None and setting.default is None else raw
    if setting.kind is bool and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def _check(setting: Setting, value: Any) -> tuple[bool, JsonValue]:
    """(fits, value converted to the setting's kind)."""
    if value is None:
        return setting.default is None, None
    kind = setting.kind
    if kind is bool:
        return isinstance(value, bool), value
    if isinstance(value, bool):  # bool is an int subclass, but true is not a port number
        return False, value
    if kind is int:
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        return isinstance(value, int), value
    if kind is float:
        return isinstance(value, int | float), float(value) if isinstance(value, int) else value
    return isinstance(value, kind), value


# --- messages ---------------------------------------------------------------------------------


def _type_error(label: str, where: str, setting: Setting, value: Any) -> str:
    expected = _KIND_NAMES[setting.kind]
    if setting.is_section:
        expected = "an object"
    elif setting.default is None:
        expected += " or null"
    return f'Option "{label}" {where}: expected {expected}, got {_describe(label, value)}'


def _describe(label: str, value: Any) -> str:
    if _is_secret(label):
        return f"{_json_type(value)} (value hidden)"
    text = json.dumps(value, ensure_ascii=False)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({_json_type(value)})"


def _is_secret(label: str) -> bool:
    lowered = label.lower()
    return "password" in lowered or lowered in ("registeredusers", "postgresql.connectionuri")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _unsupported(label: str, reason: str, where: str) -> str:
    return f'Option "{label}" {where}: {reason}, not supported by Pharos yet (ignored)'


def _unknown(
    label: str,
    where: str,
    known: Iterable[str],
    prefix: str = "",
    normalize: bool = False,
) -> str:
    name = label[len(prefix) :] if prefix and label.startswith(prefix) else label
    hint = _suggest(name, known, normalize)
    if hint and prefix:
        hint = hint.replace("did you mean ", f"did you mean {prefix}")
    return f'Unknown option "{label}" {where}{hint} (ignored)'


def _suggest(name: str, known: Iterable[str], normalize: bool = False) -> str:
    """ " (did you mean X?)" for the closest known name, compared case-insensitively."""

    def canon(s: str) -> str:
        return _normalize(s) if normalize else s.lower()

    candidates = {canon(k): k for k in known}
    matches = difflib.get_close_matches(canon(name), list(candidates), n=1, cutoff=0.75)
    return f" (did you mean {candidates[matches[0]]}?)" if matches else ""


def _normalize(name: str) -> str:
    """Environment names match options case-insensitively, underscores removed."""
    return name.replace("_", "").lower()


_table: Final[dict[str, Setting]] = {s.name: s for s in SETTINGS}
_env_index: Final[dict[str, Setting]] = {_normalize(s.name): s for s in SETTINGS}
_env_unsupported: Final[dict[str, str]] = {_normalize(k): k for k in UNSUPPORTED}


# --- printing ---------------------------------------------------------------------------------

_WIDTH: Final = 90


def render_default_config() -> str:
    """The full default configuration as commented JSON, as `pharos config` prints it.

    Like Orthanc's own file, options without a default are shown commented-out with an example.
    """
    lines = [
        "{",
        "  // Default configuration of Pharos, in the format of Orthanc's configuration files.",
        "  // Only the options you change need to be kept; environment variables such as",
        "  // PHAROS__HTTP_PORT=8043 or ORTHANC__POSTGRESQL__HOST=db override this file.",
    ]
    lines += _render_block(SETTINGS, "  ", with_groups=True)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _render_block(table: Sequence[Setting], indent: str, with_groups: bool = False) -> list[str]:
    last_real = max(
        (i for i, s in enumerate(table) if s.default is not None or s.is_section), default=-1
    )
    lines: list[str] = []
    for i, setting in enumerate(table):
        title = GROUP_TITLES.get(setting.name) if with_groups else None
        if title:
            lines += ["", "", f"{indent}/**", f"{indent} * {title}", f"{indent} **/"]
        lines.append("")
        width = max(_WIDTH - len(indent) - 3, 40)
        for text in textwrap.wrap(setting.help, width, break_long_words=False):
            lines.append(f"{indent}// {text}")
        comma = "," if i != last_real else ""
        if setting.is_section:
            lines.append(f'{indent}"{setting.name}" : {{')
            lines += _render_block(setting.children, indent + "  ")[1:]  # no leading blank
            lines.append(f"{indent}}}{comma}")
        elif setting.default is None:
            for text in _value_lines(setting.name, setting.example, indent, ","):
                lines.append(f"{indent}// {text[len(indent) :]}")
        else:
            lines += _value_lines(setting.name, setting.default, indent, comma)
    return lines


def _value_lines(name: str, value: Any, indent: str, comma: str) -> list[str]:
    text = json.dumps(value, indent=2, ensure_ascii=False)
    first, *rest = text.splitlines()
    out = [f'{indent}"{name}" : {first}'] + [indent + line for line in rest]
    out[-1] += comma
    return out
