"""The bodies of the DICOM client routes of the REST API, read as Orthanc reads them: JSON
fields with their types checked, and clear 400 errors naming the field at fault."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from pharos.dicom.orthanc_json import TagFormat
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.ids import is_public_id
from pharos.model.jobs import parse_priority
from pharos.model.levels import Level
from pharos.services.remote_find import move_identifier, parse_level, parse_query


def parse_json(raw: bytes, message: str = "Must provide a JSON object") -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise PharosError(ErrorCode.BAD_FILE_FORMAT, message) from None


def json_object(raw: bytes, empty_ok: bool = False) -> dict[str, Any]:
    if empty_ok and not raw.strip():
        return {}
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise PharosError(ErrorCode.BAD_FILE_FORMAT, "Must provide a JSON object")
    return body


def optional_timeout(body: Mapping[str, Any]) -> int | None:
    """The `Timeout` field (seconds, 0 for none), if given."""
    if "Timeout" not in body:
        return None
    value = body["Timeout"]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise PharosError(
            ErrorCode.BAD_FILE_FORMAT, f'"Timeout" must be a positive number, not {value!r}'
        )
    return int(value)


def optional_string(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise PharosError(ErrorCode.BAD_FILE_FORMAT, f'The field "{key}" must be a string')
    return value or None


def optional_bool(body: Mapping[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise PharosError(ErrorCode.BAD_FILE_FORMAT, f'The field "{key}" must be true or false')
    return value


@dataclass(frozen=True, slots=True)
class RunMode:
    """`Synchronous` (default) or `Asynchronous`: as a job, with Orthanc's `Priority`."""

    asynchronous: bool = False
    priority: int = 0


def run_mode(body: Mapping[str, Any]) -> RunMode:
    asynchronous = optional_bool(body, "Asynchronous", False)
    if not optional_bool(body, "Synchronous", True):
        asynchronous = True
    return RunMode(asynchronous, parse_priority(body.get("Priority")))


def answer_format(body: Mapping[str, Any], default: TagFormat) -> TagFormat:
    """The tag format asked by the `Full`, `Short`, `Simplify` fields of a body."""
    if optional_bool(body, "Simplify", False):
        return TagFormat.SIMPLIFY
    if optional_bool(body, "Short", False):
        return TagFormat.SHORT
    if optional_bool(body, "Full", False):
        return TagFormat.FULL
    return default


def store_body(raw: bytes) -> tuple[list[str], dict[str, Any]]:
    """The resources to send and the other fields, from a bare ID, a JSON string, a list of
    IDs or an object with `Resources` (GetInstancesToExport)."""
    text = raw.strip().decode("utf-8", "replace")
    if is_public_id(text):
        return [text], {}
    body = parse_json(raw, "Must provide a JSON value")
    options: dict[str, Any] = {}
    if isinstance(body, str):
        resources: Any = [body]
    elif isinstance(body, list):
        resources = body
    elif isinstance(body, dict):
        if "Resources" not in body:
            raise PharosError(ErrorCode.BAD_FILE_FORMAT, 'Missing field in JSON: "Resources"')
        resources = body["Resources"]
        if not isinstance(resources, list):
            raise PharosError(
                ErrorCode.BAD_FILE_FORMAT, 'JSON field "Resources" must contain an array'
            )
        options = body
    else:
        raise PharosError(
            ErrorCode.BAD_FILE_FORMAT, "Must provide a JSON object, or a JSON array of strings"
        )
    ids: list[str] = []
    for item in resources:
        if not isinstance(item, str):
            raise PharosError(
                ErrorCode.BAD_FILE_FORMAT,
                "Resources to be exported must be specified as a JSON array of strings",
            )
        stripped = item.strip()
        if not is_public_id(stripped):
            raise PharosError(
                ErrorCode.BAD_FILE_FORMAT,
                f"This string is not a valid Orthanc identifier: {stripped}",
            )
        ids.append(stripped)
    return ids, options


def retrieve_keys(body: Mapping[str, Any]) -> tuple[Level, list[dict[int, str]]]:
    """`Level` and `Resources` (a list of identifier objects) of /move and /get."""
    if not isinstance(body.get("Resources"), list) or not isinstance(body.get("Level"), str):
        raise PharosError(
            ErrorCode.BAD_FILE_FORMAT,
            "Must provide a JSON body containing fields Resources and Level",
        )
    level = parse_level(body["Level"])
    keys = [parse_query(item, "Resources elements") for item in body["Resources"]]
    for item in keys:
        move_identifier(level, item)  # refused here when it cannot make an identifier
    return level, keys
