"""multipart/related (RFC 2387) for DICOMweb: media type parameters, a streaming reader of
request bodies (STOW-RS) and the framing of responses (WADO-RS)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from pharos.model.errors import ErrorCode, PharosError

MAX_HEADER_BYTES = 16384  # of the headers of one part


def media_type(value: str) -> tuple[str, dict[str, str]]:
    """'multipart/related; type="application/dicom"' -> ('multipart/related', {'type': ...});
    the type lowercased, parameter names lowercased, quotes removed."""
    pieces = _split_outside_quotes(value, ";")
    kind = pieces[0].strip().lower()
    parameters: dict[str, str] = {}
    for piece in pieces[1:]:
        name, _, raw = piece.partition("=")
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = raw[1:-1]
        if name.strip():
            parameters[name.strip().lower()] = raw
    return kind, parameters


def media_ranges(accept: str) -> list[tuple[str, dict[str, str]]]:
    """The media ranges of an Accept header, in the order given."""
    return [media_type(item) for item in _split_outside_quotes(accept, ",") if item.strip()]


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def part_header(boundary: str, content_type: str, length: int) -> bytes:
    return (
        f"--{boundary}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    ).encode("ascii")


def closing(boundary: str) -> bytes:
    return f"--{boundary}--\r\n".encode("ascii")


def _bad(details: str) -> PharosError:
    return PharosError(ErrorCode.BAD_REQUEST, details, http_status=400)


async def read_parts(
    chunks: AsyncIterator[bytes], boundary: str
) -> AsyncIterator[tuple[dict[str, str], bytes]]:
    """The parts of a multipart body as they arrive: (headers with lowercased names, body).
    Only one part is held in memory at a time. A malformed body raises a 400 error."""
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    buffer = bytearray(b"\r\n")  # the first delimiter may open the body without a CRLF
    source = chunks.__aiter__()
    finished = False

    async def more() -> bool:
        nonlocal finished
        if finished:
            return False
        try:
            buffer.extend(await source.__anext__())
        except StopAsyncIteration:
            finished = True
            return False
        return True

    # The preamble, up to the first delimiter.
    while (found := buffer.find(delimiter)) < 0:
        if len(buffer) > len(delimiter):
            del buffer[: len(buffer) - len(delimiter)]
        if not await more():
            raise _bad("The multipart body has no part (boundary not found)")
    del buffer[: found + len(delimiter)]
    while True:
        while len(buffer) < 2:
            if not await more():
                raise _bad("The multipart body is truncated")
        if buffer[:2] == b"--":
            return  # the close delimiter
        while (line_end := buffer.find(b"\r\n")) < 0:
            if not await more():
                raise _bad("The multipart body is truncated")
        del buffer[: line_end + 2]  # transport padding and CRLF after the delimiter
        headers: dict[str, str] = {}
        while len(buffer) < 2:
            if not await more():
                raise _bad("The multipart body is truncated")
        if buffer[:2] == b"\r\n":
            del buffer[:2]  # a part without headers
        else:
            while (end := buffer.find(b"\r\n\r\n")) < 0:
                if len(buffer) > MAX_HEADER_BYTES:
                    raise _bad("The headers of a part are too long")
                if not await more():
                    raise _bad("The multipart body is truncated")
            for line in bytes(buffer[:end]).decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            del buffer[: end + 4]
        start = 0
        while (found := buffer.find(delimiter, start)) < 0:
            start = max(0, len(buffer) - len(delimiter) + 1)
            if not await more():
                raise _bad("The multipart body is truncated (a part is not closed)")
        body = bytes(buffer[:found])
        del buffer[: found + len(delimiter)]
        yield headers, body
