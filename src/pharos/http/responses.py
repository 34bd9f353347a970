"""Responses as Orthanc sends them: indented JSON, plain text, binary files."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JsonResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)


def text_response(text: str, status_code: int = 200) -> Response:
    return Response(text, status_code=status_code, media_type="text/plain")
