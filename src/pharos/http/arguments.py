"""Query arguments with Orthanc's conventions (`?expand` alone means true)."""

from __future__ import annotations

from starlette.requests import Request

from pharos.model.errors import ErrorCode, PharosError

_FALSE = {"0", "false", "no", "off"}


def flag(request: Request, name: str) -> bool:
    """Present (with no value, or any value but false/0) means true."""
    if name not in request.query_params:
        return False
    return request.query_params[name].strip().lower() not in _FALSE


def int_argument(request: Request, name: str, default: int, minimum: int = 0) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise PharosError(
            ErrorCode.PARAMETER_OUT_OF_RANGE, f"Argument {name!r} must be an integer, got {text!r}"
        ) from None
    if value < minimum:
        raise PharosError(
            ErrorCode.PARAMETER_OUT_OF_RANGE, f"Argument {name!r} must be >= {minimum}, got {value}"
        )
    return value


def optional_int_argument(request: Request, name: str) -> int | None:
    if request.query_params.get(name) in (None, ""):
        return None
    return int_argument(request, name, 0)
