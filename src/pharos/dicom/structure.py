"""Check the encoding structure of a whole DICOM file, byte by byte, before anything parses it.

pydicom is lenient by design: it accepts files cut in the middle of an element, ignores a
short pixel data element and recurses once per sequence level. The upload path needs the
opposite, a strict and cheap gate: walk every element, item and fragment header (values are
skipped, never decoded), check that each one ends inside its parent, bound the nesting, and
say exactly what is wrong and where. The walk is iterative, so no input can exhaust the stack.

Encodings follow DICOM PS3.5 (7.1 data elements, 7.5 nesting, A.4 encapsulation, A.5 deflate)
and PS3.10 7.1 (preamble, "DICM", file meta group in explicit VR little endian). Where real
files bend the rules, the walk accepts what pydicom reads (see the comments on each rule).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from struct import Struct

from pydicom.datadict import (
    DicomDictionary,
    dictionary_VR,
    private_dictionaries,
    private_dictionary_VR,
)

from pharos.model.errors import ErrorCode, PharosError

IMPLICIT_VR_LE = "1.2.840.10008.1.2"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
EXPLICIT_VR_BE = "1.2.840.10008.1.2.2"
DEFLATED_EXPLICIT_VR_LE = "1.2.840.10008.1.2.1.99"

# A deflated data set is inflated in memory to be walked; cap it so that a small upload
# cannot expand into gigabytes (deflate reaches ~1000:1).
MAX_INFLATED_SIZE = 1 << 30

# Trailing bytes. A file ends with its last complete top-level element. None of the real
# files checked (pydicom's test files, the corpus) has anything after it, except deflated
# files (see _inflate). pydicom ignores up to 7 bytes of anything there; we accept up to 7
# NUL bytes (fewer than an element header) as padding, because the data before them is then
# a complete data set, exactly as with a file cut between two elements, which cannot be told
# from a shorter file anyway. Any other leftover is a cut element header: truncation.
# A bare data set (no preamble) gets no padding.
_MAX_PADDING = 7

_UNDEFINED = 0xFFFFFFFF
_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQUENCE_END = 0xFFFEE0DD
_PIXEL_DATA = 0x7FE00010

# How the value of an explicit-VR element is framed (PS3.5 table 7.1-1 and 7.1-2).
_SHORT, _LONG, _SQ, _UN = 0, 1, 2, 3
_VR_KIND: dict[bytes, int] = {
    **dict.fromkeys(
        b"AE AS AT CS DA DS DT FD FL IS LO LT PN SH SL SS ST TM UI UL US".split(), _SHORT
    ),
    **dict.fromkeys(b"OB OD OF OL OV OW SV UC UR UT UV".split(), _LONG),
    b"SQ": _SQ,
    b"UN": _UN,
}
_NO_VR = -1  # implicit VR: the dictionary decides

# (explicit header, implicit header / item header, 4-byte length), by byte order.
_LE = (Struct("<HH2sH").unpack_from, Struct("<HHL").unpack_from, Struct("<L").unpack_from)
_BE = (Struct(">HH2sH").unpack_from, Struct(">HHL").unpack_from, Struct(">L").unpack_from)

_GZIP_TRAILER = Struct("<LL")
# Groups a bare data set may not start or hold at the top level: commands (0000) are no
# part of a stored data set, and PS3.5 7.1 forbids 0001, 0003, 0005, 0007 and FFFF.
_FORBIDDEN_GROUPS = frozenset((0x0000, 0x0001, 0x0003, 0x0005, 0x0007, 0xFFFF))

_PUBLIC_SQ = frozenset(tag for tag, entry in DicomDictionary.items() if entry[0] == "SQ")
# Only these private creators define sequences; the (slow) private dictionary lookup is
# skipped for every other creator.
_CREATORS_WITH_SQ = frozenset(
    creator
    for creator, entries in private_dictionaries.items()
    if any(entry[0] == "SQ" for entry in entries.values())
)


@dataclass(frozen=True, slots=True)
class Structure:
    has_preamble: bool  # 128-byte preamble + b"DICM"
    transfer_syntax_uid: str  # from (0002,0010), or what the walk detected without one
    dataset_offset: int  # where the main data set starts in the original bytes
    pixel_data_offset: int | None  # top-level (7FE0,0010) tag; None if absent or deflated
    max_depth: int  # deepest sequence nesting seen (0 = no sequences)
    little_endian: bool = True  # byte order of the data set
    # Raw values of the wanted top-level elements: tag -> (VR, or None if implicit; bytes).
    values: dict[int, tuple[str | None, bytes]] = field(default_factory=dict)


def check_structure(
    data: bytes | memoryview, max_depth: int = 64, wanted: frozenset[int] = frozenset()
) -> Structure:
    """Walk every element of a DICOM file; `PharosError(BAD_FILE_FORMAT)` says what is wrong.

    The raw values of the `wanted` top-level elements are collected on the way, so that
    callers need no second parse to read them.
    """
    buf = data
    if isinstance(data, memoryview) and (
        data.format != "B" or data.ndim != 1 or not data.c_contiguous
    ):
        buf = data.tobytes()
    size = len(buf)
    if size == 0:
        raise _bad("empty file")
    if size >= 132 and buf[128:132] == b"DICM":
        ts, ds_offset = _read_file_meta(buf, 132)
        if ds_offset >= size:
            raise _bad(
                f"truncated file: nothing follows the file meta information, which ends at "
                f"offset {ds_offset}"
            )
        if ts is None:
            # The file says it is DICOM: read it the way pydicom does.
            ts = _pydicom_guess(buf, ds_offset)
        return _walk_file(buf, True, ts, ds_offset, max_depth, wanted, strict=False)

    # No preamble: a bare data set, possibly after a meta group (pydicom writes and reads
    # such files, and so do some devices). Accept only what walks cleanly with ascending
    # top-level tags, so that text, images and random bytes are refused.
    what = "not a DICOM file: no 'DICM' prefix at offset 128 and not a readable DICOM data set"
    if size >= 6 and buf[0] == 2 and buf[1] == 0 and _is_vr(buf, 0):
        try:
            ts, ds_offset = _read_file_meta(buf, 0)
            if ds_offset >= size:
                raise _bad(f"nothing follows the file meta group ending at offset {ds_offset}")
            if ts is not None:
                return _walk_file(buf, False, ts, ds_offset, max_depth, wanted, strict=True)
        except _TooDeep:
            raise
        except PharosError as exc:
            raise _bad(f"{what}: {exc.details}") from None
        return _guess(buf, ds_offset, False, max_depth, wanted, what)
    return _guess(buf, 0, False, max_depth, wanted, what)


def _walk_file(
    buf: bytes | memoryview,
    preamble: bool,
    ts: str,
    ds_offset: int,
    max_depth: int,
    wanted: frozenset[int],
    strict: bool,
) -> Structure:
    """Walk the data set at `ds_offset` in transfer syntax `ts`."""
    if ts == DEFLATED_EXPLICIT_VR_LE:
        data: bytes | memoryview = _inflate(buf, ds_offset)
        start, implicit, little, inflated = 0, False, True, True
    else:
        data, start, inflated = buf, ds_offset, False
        implicit, little = ts == IMPLICIT_VR_LE, ts != EXPLICIT_VR_BE
    # Like pydicom, trust the first element over the transfer syntax when they disagree on
    # implicit/explicit VR: some writers label implicit data sets as explicit and vice versa.
    if not strict and start + 6 <= len(data):
        implicit = not _is_vr(data, start)
    values: dict[int, tuple[str | None, bytes]] = {}
    pixel, depth, elements = _walk(
        data, start, implicit, little, max_depth, strict, inflated, wanted, values
    )
    if not elements:
        raise _bad(
            f"truncated file: no complete data element in the data set at offset {ds_offset}"
        )
    return Structure(preamble, ts, ds_offset, pixel, depth, little, values)


_ENCODING_NAMES = {
    IMPLICIT_VR_LE: "implicit VR little endian",
    EXPLICIT_VR_LE: "explicit VR little endian",
    EXPLICIT_VR_BE: "explicit VR big endian",
}


def _guess(
    buf: bytes | memoryview,
    pos: int,
    preamble: bool,
    max_depth: int,
    wanted: frozenset[int],
    what: str,
) -> Structure:
    """Try the encodings of a bare data set; the first clean, strict walk wins."""
    # pydicom's guess first, so that the verdict agrees with how pydicom will read the file.
    first = _pydicom_guess(buf, pos)
    candidates = [first] + [ts for ts in _ENCODING_NAMES if ts != first]
    reasons: list[str] = []
    for ts in candidates:
        try:
            return _walk_file(buf, preamble, ts, pos, max_depth, wanted, strict=True)
        except _TooDeep:
            raise
        except PharosError as exc:
            reasons.append(exc.details or "")
    raise _bad(f"{what} (as {_ENCODING_NAMES[candidates[0]]}: {reasons[0]})")


def _pydicom_guess(buf: bytes | memoryview, pos: int) -> str:
    """pydicom's guess for a data set without transfer syntax: explicit VR if the first
    element has a VR (big endian if its group reads >= 1024 in little endian), else implicit."""
    if pos + 6 <= len(buf) and _is_vr(buf, pos):
        return EXPLICIT_VR_BE if buf[pos] | buf[pos + 1] << 8 >= 1024 else EXPLICIT_VR_LE
    return IMPLICIT_VR_LE


def _read_file_meta(buf: bytes | memoryview, pos: int) -> tuple[str | None, int]:
    """Walk the group 0002 elements from `pos`: (transfer syntax UID or None, end offset).

    The group is explicit VR little endian (PS3.10 7.1). It ends where group 0002 ends, not
    where (0002,0000) group length says (real files carry wrong values); the group length
    only names the problem when the file ends before it.
    """
    size = len(buf)
    explicit, _, ulong = _LE
    ts: str | None = None
    announced_end = -1
    while pos + 8 <= size:
        group, elem, vr, length = explicit(buf, pos)
        if group != 2:
            break
        kind = _VR_KIND.get(vr, _NO_VR)
        head = pos + 8
        if kind > _SHORT:
            if pos + 12 > size:
                raise _bad_meta(f"element {_tag(2, elem)} at offset {pos} is cut in its header")
            length = ulong(buf, pos + 8)[0]
            head = pos + 12
        elif kind == _NO_VR and not (vr.isalpha() and vr.isupper()):
            length = ulong(buf, pos + 4)[0]  # implicit VR element, as pydicom tolerates
        if length == _UNDEFINED:
            raise _bad_meta(f"element {_tag(2, elem)} at offset {pos} has an undefined length")
        if head + length > size:
            raise _bad_meta(
                f"truncated file: element {_tag(2, elem)} declares {length} bytes at offset "
                f"{pos} but only {size - head} remain"
            )
        if elem == 0x0010:
            ts = bytes(buf[head : head + length]).decode("latin-1").strip("\x00 ") or None
        elif elem == 0x0000 and length == 4:
            announced_end = head + 4 + ulong(buf, head)[0]
        pos = head + length
    if size - pos < 8 and pos < announced_end:
        raise _bad_meta(
            f"truncated file: the data ends at offset {size}, before the end of the group "
            f"announced by (0002,0000) at offset {announced_end}"
        )
    if 0 < size - pos < 8 and buf[pos] == 2 and (size - pos == 1 or buf[pos + 1] == 0):
        raise _bad_meta(f"truncated file: element header cut at offset {pos}")
    return ts, pos


def _inflate(buf: bytes | memoryview, pos: int) -> bytes:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(buf[pos:], MAX_INFLATED_SIZE + 1)
    except zlib.error as exc:
        raise _bad(
            f"corrupt deflate stream in the data set starting at offset {pos}: {exc}"
        ) from None
    if len(inflated) > MAX_INFLATED_SIZE:
        raise _bad(f"deflated data set inflates to more than {MAX_INFLATED_SIZE} bytes")
    if not inflater.eof:
        raise _bad(
            f"truncated file: the deflate stream starting at offset {pos} ends before its end"
        )
    unused = inflater.unused_data
    # After the stream: the NUL pad of an odd-length stream (PS3.5 A.5), and some writers
    # (Clunie's *_dfl samples) leave a gzip trailer, CRC-32 and size, which must then match.
    trailer = _GZIP_TRAILER.pack(zlib.crc32(inflated), len(inflated) & 0xFFFFFFFF)
    if unused.startswith(trailer):
        unused = unused[len(trailer) :]
    if len(unused) > _MAX_PADDING or unused.strip(b"\x00"):
        raise _bad(
            f"{len(unused)} unexpected bytes after the end of the deflate stream "
            f"at offset {len(buf) - len(unused)}"
        )
    if not inflated:
        raise _bad(f"truncated file: the deflated data set at offset {pos} is empty")
    return inflated


def _walk(
    buf: bytes | memoryview,
    pos: int,
    implicit: bool,
    little: bool,
    max_depth: int,
    strict: bool,
    inflated: bool,
    wanted: frozenset[int],
    values: dict[int, tuple[str | None, bytes]],
) -> tuple[int | None, int, bool]:
    """Walk a data set from `pos` to the end of `buf`.

    Returns the offset of the top-level pixel data, the deepest nesting, and whether there
    was any top-level element; fills `values` with the raw values of `wanted` top-level tags.

    The walk keeps the open containers on an explicit stack. The current container is either
    a data set (the top level, or an item) or a sequence; `end` is its defined end (-1 when
    it ends with a delimiter, or at the end of the data for the top level) and `limit` the
    nearest defined end around it, which nothing inside may cross.
    """
    size = len(buf)
    stack: list[tuple[bool, int, int, int, int, bool, bool, dict[int, str] | None]] = []
    in_seq = False
    end = -1
    limit = size
    opener = -1  # offset of the element or item that opened the current container
    seq_tag = 0  # tag of the innermost sequence, for messages
    creators: dict[int, str] | None = None  # private creators of the current data set
    depth = deepest = 0
    previous = -1  # last top-level tag (strict mode wants them ascending)
    pixel: int | None = None
    explicit, header, ulong = _LE if little else _BE

    while True:
        if in_seq:
            if pos == end:
                depth -= 1
                in_seq, end, limit, opener, seq_tag, implicit, little, creators = stack.pop()
                explicit, header, ulong = _LE if little else _BE
                continue
            if pos + 8 > limit:
                if end == -1 and limit == size:
                    raise _bad(
                        f"truncated file: sequence {_tag_int(seq_tag)} at "
                        f"{_at(opener, inflated)} ends before its sequence delimitation item"
                    )
                raise _bad(
                    f"malformed sequence {_tag_int(seq_tag)} at {_at(opener, inflated)}: "
                    f"{limit - pos} bytes left at {_at(pos, inflated)} are too few for an item"
                )
            group, elem, length = header(buf, pos)
            tag = group << 16 | elem
            if tag == _ITEM:
                start = pos + 8
                stack.append((True, end, limit, opener, seq_tag, implicit, little, creators))
                if length != _UNDEFINED:
                    if start + length > limit:
                        raise _overflow("item", pos, length, start, limit, size, inflated)
                    end = limit = start + length
                else:
                    end = -1
                in_seq, opener, creators = False, pos, None
                # pydicom reads an item of an explicit VR sequence as implicit when its
                # first element has no VR (PS3.5 6.2.2 allows it for UN sequences).
                if not implicit and start + 6 <= limit:
                    implicit = not _is_vr(buf, start)
                pos = start
                continue
            if tag == _SEQUENCE_END and end == -1:
                pos += 8
                depth -= 1
                in_seq, end, limit, opener, seq_tag, implicit, little, creators = stack.pop()
                explicit, header, ulong = _LE if little else _BE
                continue
            raise _bad(
                f"malformed sequence {_tag_int(seq_tag)} at {_at(opener, inflated)}: expected "
                f"an item at {_at(pos, inflated)}, found {_tag(group, elem)}"
            )

        # In a data set: the top level, or an item.
        if pos == end:
            in_seq, end, limit, opener, seq_tag, implicit, little, creators = stack.pop()
            explicit, header, ulong = _LE if little else _BE
            continue
        if pos + 8 > limit:
            if not stack:
                if pos == size:
                    break
                # Trailing padding, see _MAX_PADDING (fewer than 8 bytes are left here).
                if not strict and not bytes(buf[pos:]).strip(b"\x00"):
                    break
                raise _bad(
                    f"truncated file: {size - pos} bytes at {_at(pos, inflated)} after the last "
                    f"complete element are too short for an element header"
                )
            if limit == size and end == -1:
                raise _bad(
                    f"truncated file: item at {_at(opener, inflated)} in sequence "
                    f"{_tag_int(seq_tag)} ends before its item delimitation item"
                )
            raise _bad(
                f"malformed data set: element header at {_at(pos, inflated)} crosses the end of "
                f"its item at {_at(limit, inflated)}"
            )
        vr_name: str | None = None
        if implicit:
            group, elem, length = header(buf, pos)
            kind = _NO_VR
            head = pos + 8
        else:
            group, elem, vr, length = explicit(buf, pos)
            head = pos + 8
            if group == 0xFFFE:
                length = ulong(buf, pos + 4)[0]
                kind = _NO_VR
            else:
                kind = _VR_KIND.get(vr, _NO_VR)
                if kind != _NO_VR:
                    vr_name = vr.decode("ascii")
                if kind > _SHORT:
                    if pos + 12 > limit:
                        raise _cut_header(pos, limit, size, inflated)
                    length = ulong(buf, pos + 8)[0]
                    head = pos + 12
                elif kind == _NO_VR:
                    if strict:  # a bare data set gets no benefit of the doubt
                        raise _bad(
                            f"unknown VR {vr!r} in element {_tag(group, elem)} at "
                            f"{_at(pos, inflated)}"
                        )
                    if vr.isalpha() and vr.isupper():
                        kind = _SHORT  # an unknown VR: pydicom assumes a 2-byte length
                        vr_name = vr.decode("ascii")
                    else:
                        # Not a VR: some writers switch to implicit VR mid-stream; pydicom
                        # reads such an element as implicit VR, so do we.
                        length = ulong(buf, pos + 4)[0]
        tag = group << 16 | elem

        if group == 0xFFFE:
            if tag == _ITEM_END and stack:
                if end == -1:
                    pos += 8
                    in_seq, end, limit, opener, seq_tag, implicit, little, creators = stack.pop()
                    explicit, header, ulong = _LE if little else _BE
                    continue
                if pos + 8 == end:  # a delimiter closing a defined-length item: harmless
                    pos = end
                    continue
            raise _bad(
                f"malformed data set: unexpected {_tag(group, elem)} at {_at(pos, inflated)}"
                + ("" if stack else " at the top level")
            )

        if not stack:
            if strict and (tag <= previous or group in _FORBIDDEN_GROUPS):
                raise _bad(
                    f"top-level element {_tag(group, elem)} at {_at(pos, inflated)} is out of "
                    f"order or in a group that data sets do not use"
                )
            previous = tag
            if tag == _PIXEL_DATA and not inflated:
                pixel = pos

        is_sq = kind == _SQ
        if kind == _UN:
            # A UN element of undefined length holds a sequence (PS3.5 6.2.2); a known
            # sequence sent as UN is read as one by pydicom too.
            is_sq = length == _UNDEFINED or (
                (group & 1 or length < 0xFFFF) and _is_sq(group, elem, creators)
            )
        elif kind == _NO_VR and length != 0:  # implicit VR: the dictionaries decide
            is_sq = _is_sq(group, elem, creators)
            if (
                not is_sq
                and length == _UNDEFINED
                and (group & 1 or tag not in DicomDictionary)
                and pos + 16 <= limit
            ):
                # An element the dictionary does not know: like pydicom, take it for a
                # sequence if an item follows (an empty one walks the same either way).
                is_sq = header(buf, head)[:2] == (0xFFFE, 0xE000)

        if length != _UNDEFINED:
            value_end = head + length
            if value_end > limit:
                raise _overflow(
                    f"element {_tag(group, elem)}", pos, length, head, limit, size, inflated
                )
            if not is_sq or length == 0:
                if not stack and tag in wanted:
                    values[tag] = (vr_name, bytes(buf[head:value_end]))
                if group & 1 and 0x10 <= elem <= 0xFF and length <= 64:
                    # A private creator: it names the dictionary of its block (PS3.5 7.8.1).
                    if creators is None:
                        creators = {}
                    creators[group << 8 | elem] = (
                        bytes(buf[head:value_end]).decode("latin-1").strip("\x00 ")
                    )
                pos = value_end
                continue
        elif not is_sq:
            pos = _skip_fragments(buf, pos, head, tag, limit, header, inflated)
            continue

        # A sequence: descend into it.
        if depth == max_depth:
            raise _TooDeep(max_depth, _at(pos, inflated))
        stack.append((False, end, limit, opener, seq_tag, implicit, little, creators))
        depth += 1
        if depth > deepest:
            deepest = depth
        in_seq, opener, seq_tag = True, pos, tag
        if length == _UNDEFINED:
            end = -1
        else:
            end = limit = head + length
        if kind == _UN:  # its content is little endian, implicit VR (PS3.5 6.2.2)
            implicit, little = False, True
            explicit, header, ulong = _LE
        pos = head
    return pixel, deepest, previous != -1


def _skip_fragments(
    buf: bytes | memoryview,
    pos: int,
    head: int,
    tag: int,
    limit: int,
    header: Callable[[bytes | memoryview, int], tuple[int, int, int]],
    inflated: bool,
) -> int:
    """Skip an undefined-length value that is not a sequence: encapsulated pixel data
    (PS3.5 A.4), items of defined length ended by a sequence delimitation item."""
    what = f"encapsulated element {_tag_int(tag)} at {_at(pos, inflated)}"
    p = head
    while True:
        if p + 8 > limit:
            if limit == len(buf):
                raise _bad(f"truncated file: {what} ends before its sequence delimitation item")
            raise _bad(
                f"malformed data set: {what} crosses the end of its enclosing item or "
                f"sequence at {_at(limit, inflated)}"
            )
        group, elem, length = header(buf, p)
        if group != 0xFFFE or elem not in (0xE000, 0xE0DD):
            raise _bad(
                f"malformed {what}: expected a fragment item or a sequence delimitation item "
                f"at {_at(p, inflated)}, found {_tag(group, elem)}"
            )
        if length == _UNDEFINED and elem == 0xE000:
            raise _bad(f"malformed {what}: fragment at {_at(p, inflated)} has no length")
        p += 8
        if elem == 0xE0DD:
            return p
        if p + length > limit:
            raise _overflow(
                f"fragment of {_tag_int(tag)}", p - 8, length, p, limit, len(buf), inflated
            )
        p += length


def _at(offset: int, inflated: bool) -> str:
    return f"offset {offset} of the inflated data set" if inflated else f"offset {offset}"


def _cut_header(pos: int, limit: int, size: int, inflated: bool) -> PharosError:
    if limit == size:
        return _bad(f"truncated file: element header cut at {_at(pos, inflated)}")
    return _bad(
        f"malformed data set: element header at {_at(pos, inflated)} crosses the end of its "
        f"enclosing item or sequence at {_at(limit, inflated)}"
    )


def _overflow(
    what: str, offset: int, length: int, head: int, limit: int, size: int, inflated: bool
) -> PharosError:
    """An element, item or fragment whose declared length crosses its parent's end."""
    if limit == size:
        return _bad(
            f"truncated file: {what} declares {length} bytes at {_at(offset, inflated)} "
            f"but only {size - head} remain"
        )
    return _bad(
        f"malformed data set: {what} at {_at(offset, inflated)} declares {length} bytes, "
        f"which crosses the end of its enclosing item or sequence at {_at(limit, inflated)}"
    )


def _is_sq(group: int, elem: int, creators: dict[int, str] | None) -> bool:
    """Whether the dictionaries say (group,elem) is a sequence (for implicit VR and UN)."""
    tag = group << 16 | elem
    if not group & 1:
        if tag in _PUBLIC_SQ:
            return True
        if tag in DicomDictionary:
            return False
        try:  # repeating groups, e.g. (50xx,2600)
            return bool(dictionary_VR(tag) == "SQ")
        except KeyError:
            return False
    if creators is None or elem < 0x1000:
        return False
    creator = creators.get(group << 8 | elem >> 8)
    if creator not in _CREATORS_WITH_SQ:
        return False
    try:
        return bool(private_dictionary_VR(tag, creator) == "SQ")
    except KeyError:
        return False


def _is_vr(buf: bytes | memoryview, pos: int) -> bool:
    """Whether the two bytes at pos + 4 look like a VR (two uppercase letters)."""
    return 65 <= buf[pos + 4] <= 90 and 65 <= buf[pos + 5] <= 90


def _tag(group: int, elem: int) -> str:
    return f"({group:04X},{elem:04X})"


def _tag_int(tag: int) -> str:
    return _tag(tag >> 16, tag & 0xFFFF)


class _TooDeep(PharosError):
    """Nesting beyond the limit: reported as such even while guessing the encoding."""

    def __init__(self, max_depth: int, where: str):
        super().__init__(
            ErrorCode.BAD_FILE_FORMAT, f"sequence nesting deeper than {max_depth} levels at {where}"
        )


def _bad(details: str) -> PharosError:
    return PharosError(ErrorCode.BAD_FILE_FORMAT, details)


def _bad_meta(details: str) -> PharosError:
    return _bad(f"missing or malformed file meta information: {details}")
