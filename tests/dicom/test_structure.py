"""The structure walker: strict on truncation and nesting, agreeing with pydicom on real files."""

from __future__ import annotations

import io
import struct
import sys
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_files
from pydicom.datadict import DicomDictionary
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
)

import pharos.dicom.structure as structure_module
from pharos.dicom.structure import Structure, check_structure
from pharos.model.errors import ErrorCode, PharosError

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "dicom-corpus"
PYDICOM_DATA = Path(pydicom.data.__file__).parent / "test_files"


def refused(data: bytes | memoryview, max_depth: int = 64) -> str:
    """The details of the refusal (fails the test if the data is accepted)."""
    with pytest.raises(PharosError) as info:
        check_structure(data, max_depth)
    assert info.value.code is ErrorCode.BAD_FILE_FORMAT
    assert info.value.details
    return info.value.details


# --- generated files ----------------------------------------------------------------------


def code_item(value: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = f"meaning {value}"
    return item


def make_dataset(ts: str, *, undefined: bool, encapsulated: bool = False) -> Dataset:
    """A small file: nested sequences 3 deep (defined or undefined lengths), private tags
    (one a sequence of a creator pydicom's private dictionary knows), pixel data."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ts
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4.5.6"
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = "1.2.3.4.5.6"
    ds.PatientName = "Doe^John"
    ds.PatientID = "P1"
    ds.StudyInstanceUID = "1.2.3.4"
    ds.SeriesInstanceUID = "1.2.3.4.5"
    content = Dataset()
    content.ValueType = "CODE"
    content.ConceptNameCodeSequence = [code_item("A")]
    content.ConceptCodeSequence = [code_item("B"), code_item("C")]
    ds.ContentSequence = [content, Dataset()]
    ds.ContentSequence[1].ContentSequence = [Dataset()]
    ds.ContentSequence[1].ContentSequence[0].ConceptNameCodeSequence = [code_item("D")]
    block = ds.private_block(0x0011, "PHAROS TEST", create=True)
    block.add_new(0x01, "LO", "private value")
    known = ds.private_block(0x0071, "AGFA-AG_HPState", create=True)
    known.add_new(0x18, "SQ", Sequence([code_item("E")]))
    ds.Rows = ds.Columns = 2
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    if encapsulated:
        ds.PixelData = encapsulate([b"\xff\xd8frame-one\xff\xd9", b"\xff\xd8frame-2\xff\xd9"])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        ds.NumberOfFrames = 2
    else:
        ds.PixelData = b"\x01\x02\x03\x04"
        ds["PixelData"].VR = "OB"
    ds.add_new(0xFFFCFFFC, "OB", b"\x00\x00")  # data set trailing padding, a real element
    if undefined:
        for elem in ds.iterall():
            if elem.VR == "SQ":
                elem.is_undefined_length = True
                for item in elem.value:
                    item.is_undefined_length_sequence_item = True
    return ds


def encode(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def top_level_boundaries(ds: Dataset) -> list[int]:
    """Offsets where a top-level element ends, from pydicom's encoding of each prefix."""
    full = encode(ds)
    ends = []
    for count in range(1, len(ds) + 1):
        prefix = Dataset()
        prefix.file_meta = ds.file_meta
        for elem in list(ds)[:count]:
            prefix.add(elem)
        encoded = encode(prefix)
        assert full.startswith(encoded)
        ends.append(len(encoded))
    return ends


GENERATED = {
    "implicit-le-defined": (ImplicitVRLittleEndian, False, False),
    "implicit-le-undefined": (ImplicitVRLittleEndian, True, False),
    "explicit-le-defined": (ExplicitVRLittleEndian, False, False),
    "explicit-le-undefined": (ExplicitVRLittleEndian, True, False),
    "explicit-be-defined": (ExplicitVRBigEndian, False, False),
    "explicit-be-undefined": (ExplicitVRBigEndian, True, False),
    "encapsulated": (JPEGBaseline8Bit, True, True),
}


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_file_is_accepted_with_the_right_structure(name: str) -> None:
    ts, undefined, encapsulated = GENERATED[name]
    ds = make_dataset(ts, undefined=undefined, encapsulated=encapsulated)
    data = encode(ds)
    result = check_structure(data)
    meta_end = 132 + len(encode_meta(ds))
    assert shape(result) == (True, ts, meta_end, pydicom_pixel_offset(data), 3)
    assert check_structure(memoryview(data)) == result
    assert "nesting deeper than 2 levels" in refused(data, max_depth=2)


def encode_meta(ds: Dataset) -> bytes:
    meta_only = Dataset()
    meta_only.file_meta = ds.file_meta
    return encode(meta_only)[132:]


def pydicom_pixel_offset(data: bytes, force: bool = False) -> int | None:
    """Where pydicom's stop_before_pixels parse stops: the top-level (7FE0,0010) tag
    (-1 when it stops earlier, at float pixel data)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = pydicom.dcmread(io.BytesIO(data), force=force)
        if 0x7FE00010 not in full:
            return None
        if 0x7FE00008 in full or 0x7FE00009 in full:
            return -1
        stream = io.BytesIO(data)
        pydicom.dcmread(stream, stop_before_pixels=True, force=force)
    return stream.tell()


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_every_cut_inside_an_element_is_refused(name: str) -> None:
    ts, undefined, encapsulated = GENERATED[name]
    ds = make_dataset(ts, undefined=undefined, encapsulated=encapsulated)
    data = encode(ds)
    boundaries = top_level_boundaries(ds)
    assert boundaries[-1] == len(data)
    # A cut exactly between top-level elements leaves a valid shorter file; so does one
    # that leaves only NUL bytes (at most 7) of the next element header, which is padding
    # by the trailing-bytes rule. Every other cut, including any in the meta group or
    # before the first element of the data set, must be refused.
    accepted = set(boundaries)
    for end in boundaries[:-1]:
        for n in range(end + 1, end + 8):
            if not data[end:n].strip(b"\x00"):
                accepted.add(n)
    for n in range(len(data)):
        if n in accepted:
            check_structure(data[:n])
        else:
            details = refused(data[:n])
            assert n == 0 or any(w in details for w in ("truncated", "malformed", "not a DICOM"))


def test_every_cut_of_a_deflated_file_is_refused() -> None:
    ds = make_dataset(DeflatedExplicitVRLittleEndian, undefined=True)
    data = encode(ds)
    result = check_structure(data)
    assert shape(result) == (True, DeflatedExplicitVRLittleEndian, result.dataset_offset, None, 3)
    stream = zlib.decompressobj(-zlib.MAX_WBITS)
    stream.decompress(data[result.dataset_offset :])
    stream_end = len(data) - len(stream.unused_data)
    for n in range(len(data)):
        if n >= stream_end:  # only the NUL pad of an odd-length stream is missing
            check_structure(data[:n])
        else:
            refused(data[:n])


def test_deflate_stream_rules() -> None:
    ds = make_dataset(DeflatedExplicitVRLittleEndian, undefined=False)
    data = encode(ds)
    start = check_structure(data).dataset_offset
    inflated = zlib.decompress(data[start:], -zlib.MAX_WBITS)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    raw = compressor.compress(inflated) + compressor.flush()
    head = data[:start]
    trailer = struct.pack("<LL", zlib.crc32(inflated), len(inflated))
    check_structure(head + raw)
    check_structure(head + raw + b"\x00")
    check_structure(head + raw + trailer)  # as in Clunie's image_dfl.dcm
    assert "unexpected bytes after the end of the deflate stream" in refused(
        head + raw + trailer[:4] + b"\x01\x02\x03\x04"
    )
    assert "corrupt deflate stream" in refused(head + b"\xff\xff\xff" + raw)
    # The inflated data set is walked like any other: a bad length inside is found.
    bad = bytearray(inflated)
    bad[bad.index(b"PN") + 2] = 0xFF  # PatientName's length
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    details = refused(head + compressor.compress(bytes(bad)) + compressor.flush())
    assert "of the inflated data set" in details


def test_deflate_bombs_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    ds = make_dataset(DeflatedExplicitVRLittleEndian, undefined=False)
    data = encode(ds)
    monkeypatch.setattr(structure_module, "MAX_INFLATED_SIZE", 100)
    assert "inflates to more than 100 bytes" in refused(data)


# --- hand-made encodings for the rules pydicom does not write -----------------------------

PREAMBLE = b"\x00" * 128 + b"DICM"


def el(group: int, elem: int, vr: bytes, value: bytes, *, undefined: bool = False) -> bytes:
    """One explicit VR little endian element."""
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
        length = 0xFFFFFFFF if undefined else len(value)
        return struct.pack("<HH2sHL", group, elem, vr, 0, length) + value
    return struct.pack("<HH2sH", group, elem, vr, len(value)) + value


def iel(group: int, elem: int, value: bytes, *, undefined: bool = False) -> bytes:
    """One implicit VR little endian element."""
    return struct.pack("<HHL", group, elem, 0xFFFFFFFF if undefined else len(value)) + value


def item(content: bytes, *, undefined: bool = False) -> bytes:
    if undefined:
        return struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF) + content + ITEM_END
    return struct.pack("<HHL", 0xFFFE, 0xE000, len(content)) + content


ITEM_END = struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
SEQ_END = struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)


def meta(ts: str) -> bytes:
    uid = ts.encode() + b"\x00" * (len(ts) % 2)
    body = el(0x0002, 0x0001, b"OB", b"\x00\x01") + el(0x0002, 0x0010, b"UI", uid)
    return el(0x0002, 0x0000, b"UL", struct.pack("<L", len(body))) + body


def explicit_file(*elements: bytes) -> bytes:
    return PREAMBLE + meta(ExplicitVRLittleEndian) + b"".join(elements)


SOP = el(0x0008, 0x0018, b"UI", b"1.2.3.4\x00")
NAME = el(0x0010, 0x0010, b"PN", b"Doe^John")


def test_empty_and_meta_only_files_are_refused() -> None:
    assert refused(b"") == "empty file"
    assert "nothing follows the file meta information" in refused(explicit_file())
    # Cut between two meta elements: the data set is missing.
    assert "missing or malformed file meta information" in refused(
        PREAMBLE + meta(ExplicitVRLittleEndian)[:12]
    )


def test_truncated_pixel_data_names_the_element_and_offsets() -> None:
    data = explicit_file(SOP, NAME, el(0x7FE0, 0x0010, b"OW", b"\x00" * 64))
    cut = data[:-10]
    offset = len(data) - 64 - 12
    assert refused(cut) == (
        f"truncated file: element (7FE0,0010) declares 64 bytes at offset {offset} "
        f"but only 54 remain"
    )
    assert check_structure(data).pixel_data_offset == offset


def test_trailing_bytes_rule() -> None:
    data = explicit_file(SOP, NAME)
    assert check_structure(data + b"\x00" * 7).dataset_offset == len(PREAMBLE) + len(
        meta(ExplicitVRLittleEndian)
    )
    assert "too short for an element header" in refused(data + b"\x10\x00")
    assert "too short for an element header" in refused(data + b"\x00\x00\x00\x01")


def test_invalid_vr_is_read_as_implicit_like_pydicom() -> None:
    # (0010,0020) written in implicit VR inside an explicit VR data set.
    data = explicit_file(SOP, NAME, iel(0x0010, 0x0020, b"ID01"), el(0x0010, 0x0030, b"DA", b""))
    check_structure(data)
    ds = pydicom.dcmread(io.BytesIO(data))
    assert ds.PatientID == "ID01"
    # An unknown VR of two capitals keeps a 2-byte length, as pydicom assumes.
    check_structure(explicit_file(SOP, NAME, el(0x0010, 0x0020, b"XX", b"ID01")))


def test_sequences_switching_to_implicit_vr_and_un_sequences() -> None:
    inner = iel(0x0008, 0x0100, b"121\x00") + iel(0x0008, 0x0102, b"DCM\x00")
    # An explicit VR sequence whose items are implicit VR (pydicom reads it the same way).
    sq = el(0x0040, 0xA043, b"SQ", item(inner) + SEQ_END, undefined=True)
    # A UN element of undefined length: an implicit VR little endian sequence (PS3.5 6.2.2),
    # here with a nested sequence inside.
    nested = iel(0x0040, 0xA043, item(inner, undefined=True) + SEQ_END, undefined=True)
    un = el(0x0011, 0x1010, b"UN", item(nested, undefined=True) + SEQ_END, undefined=True)
    creator = el(0x0011, 0x0010, b"LO", b"PRIVATE ")
    data = explicit_file(SOP, NAME, creator, un, sq)
    assert check_structure(data).max_depth == 2
    assert "nesting deeper than 1 levels" in refused(data, max_depth=1)
    # A cut item inside the UN sequence is found too.
    broken = explicit_file(SOP, NAME, creator, un[:-20] + un[-16:], sq)
    assert "malformed" in refused(broken) or "truncated" in refused(broken)


def test_implicit_private_sequences() -> None:
    inner = iel(0x0008, 0x0100, b"121\x00")
    ts = ImplicitVRLittleEndian
    head = PREAMBLE + meta(ts) + iel(0x0008, 0x0018, b"1.2.3.4\x00")
    # Unknown creator, undefined length: an item follows, so it is a sequence (as pydicom).
    unknown = iel(0x0009, 0x0010, b"SOMEONE ") + iel(
        0x0009, 0x1001, item(item_seq(inner), undefined=True) + SEQ_END, undefined=True
    )
    assert check_structure(head + unknown).max_depth == 2
    # Known creator, defined length: pydicom's private dictionary says SQ, so nesting counts.
    known = iel(0x0071, 0x0010, b"AGFA-AG_HPState ") + iel(0x0071, 0x1018, item(item_seq(inner)))
    assert check_structure(head + known).max_depth == 2
    # Unknown creator, defined length: opaque bytes.
    opaque = iel(0x0071, 0x0010, b"SOMEONE ") + iel(0x0071, 0x1018, item(item_seq(inner)))
    assert check_structure(head + opaque).max_depth == 0


def item_seq(inner: bytes) -> bytes:
    """An implicit VR sequence element (ConceptNameCodeSequence) holding one item."""
    return iel(0x0040, 0xA043, item(inner))


def test_malformed_nesting_is_refused() -> None:
    inner = el(0x0008, 0x0100, b"SH", b"121 ")
    ok = el(0x0040, 0xA043, b"SQ", item(inner))
    check_structure(explicit_file(SOP, ok))
    # An item longer than its (defined-length) sequence.
    longer = el(0x0040, 0xA043, b"SQ", item(inner)[:4] + struct.pack("<L", 100) + inner)
    assert "crosses the end of its enclosing" in refused(explicit_file(SOP, longer, NAME))
    # An element longer than its item.
    bad_item = struct.pack("<HHL", 0xFFFE, 0xE000, 6) + inner[:6]
    assert "crosses the end of its item" in refused(
        explicit_file(SOP, el(0x0040, 0xA043, b"SQ", bad_item), NAME)
    )
    # Something other than an item in a sequence.
    assert "expected an item" in refused(explicit_file(SOP, el(0x0040, 0xA043, b"SQ", inner)))
    # Delimiters where they do not belong.
    assert "at the top level" in refused(explicit_file(SOP, ITEM_END, NAME))
    assert "unexpected (FFFE,E0DD)" in refused(
        explicit_file(
            SOP, el(0x0040, 0xA043, b"SQ", item(SEQ_END, undefined=True) + SEQ_END, undefined=True)
        )
    )
    # Undefined lengths without their delimiters at the end of the file.
    open_sq = el(0x0040, 0xA043, b"SQ", item(inner, undefined=True), undefined=True)
    assert "ends before its sequence delimitation item" in refused(explicit_file(SOP, open_sq))
    open_item = el(0x0040, 0xA043, b"SQ", item(inner, undefined=True)[:-8], undefined=True)
    assert "ends before its item delimitation item" in refused(explicit_file(SOP, open_item))


def test_encapsulated_fragments_must_fit() -> None:
    fragments = item(b"") + item(b"\xff\xd8\xff\xd9")
    pixels = el(0x7FE0, 0x0010, b"OB", fragments + SEQ_END, undefined=True)
    check_structure(explicit_file(SOP, pixels))
    assert "truncated file: fragment of (7FE0,0010)" in refused(explicit_file(SOP, pixels[:-10]))
    assert "ends before its sequence delimitation item" in refused(explicit_file(SOP, pixels[:-8]))
    no_items = el(0x7FE0, 0x0010, b"OB", b"\xff\xd8\xff\xd9" + SEQ_END, undefined=True)
    assert "expected a fragment item" in refused(explicit_file(SOP, no_items))


def deep_file(depth: int, *, defined: bool) -> bytes:
    """`depth` nested sequences of one item each, with defined or undefined lengths."""
    content = el(0x0008, 0x0100, b"SH", b"121 ")
    if defined:
        # Level j (1 = innermost) is a sequence header, an item header and level j - 1.
        headers = []
        for level in range(depth, 0, -1):
            inner = len(content) + 20 * (level - 1)
            headers.append(struct.pack("<HH2sHL", 0x0040, 0xA043, b"SQ", 0, inner + 8))
            headers.append(struct.pack("<HHL", 0xFFFE, 0xE000, inner))
        return explicit_file(SOP, b"".join(headers) + content)
    opening = el(0x0040, 0xA043, b"SQ", b"", undefined=True) + item(b"", undefined=True)[:8]
    return explicit_file(SOP, opening * depth + content + (ITEM_END + SEQ_END) * depth)


@pytest.mark.parametrize("defined", [True, False])
def test_deep_nesting_is_refused_without_recursion(defined: bool) -> None:
    data = deep_file(100_000, defined=defined)
    assert refused(data).startswith("sequence nesting deeper than 64 levels at offset ")
    assert check_structure(data, max_depth=100_000).max_depth == 100_000
    assert check_structure(deep_file(64, defined=defined)).max_depth == 64
    assert "deeper than 64" in refused(deep_file(65, defined=defined))


# --- files without preamble ---------------------------------------------------------------


def test_bare_data_sets_in_each_encoding() -> None:
    ds = make_dataset(ExplicitVRLittleEndian, undefined=True)
    del ds.file_meta
    for ts, implicit, little in (
        (ImplicitVRLittleEndian, True, True),
        (ExplicitVRLittleEndian, False, True),
        (ExplicitVRBigEndian, False, False),
    ):
        buffer = io.BytesIO()
        ds.save_as(buffer, implicit_vr=implicit, little_endian=little)
        data = buffer.getvalue()
        result = check_structure(data)
        assert shape(result) == (False, ts, 0, pydicom_pixel_offset(data, force=True), 3)


def test_meta_group_without_preamble() -> None:
    data = meta(ImplicitVRLittleEndian) + iel(0x0008, 0x0018, b"1.2.3.4\x00")
    assert shape(check_structure(data)) == (False, ImplicitVRLittleEndian, len(data) - 16, None, 0)


def test_meta_without_transfer_syntax_is_guessed() -> None:
    body = el(0x0002, 0x0001, b"OB", b"\x00\x01")
    data = PREAMBLE + body + iel(0x0008, 0x0018, b"1.2.3.4\x00") + iel(0x0010, 0x0010, b"Doe^")
    assert check_structure(data).transfer_syntax_uid == ImplicitVRLittleEndian
    data = PREAMBLE + body + SOP + NAME
    assert check_structure(data).transfer_syntax_uid == ExplicitVRLittleEndian


def test_bare_data_sets_must_be_in_order_and_dicom() -> None:
    check_structure(SOP + NAME)
    assert "not a DICOM file" in refused(NAME + SOP)
    assert "not a DICOM file" in refused(b"Hello, this is a text file, not DICOM at all.\n" * 5)
    assert "not a DICOM file" in refused(b"\x00" * 64)
    assert "not a DICOM file" in refused(b"\x89PNG\r\n\x1a\n" + b"\x00" * 300)


# --- robustness ---------------------------------------------------------------------------

VALID_HEAD = PREAMBLE + meta(ExplicitVRLittleEndian)
SAMPLE = encode(make_dataset(ExplicitVRLittleEndian, undefined=True))
SAMPLE_IMPLICIT = encode(make_dataset(ImplicitVRLittleEndian, undefined=False))


def only_pharos_errors(data: bytes) -> None:
    try:
        check_structure(data)
    except PharosError as exc:
        assert exc.code is ErrorCode.BAD_FILE_FORMAT and exc.details


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_random_bytes_raise_nothing_but_pharos_errors(data: bytes) -> None:
    # Every loop of the walk consumes at least 8 bytes, so none of these can hang.
    only_pharos_errors(data)
    only_pharos_errors(VALID_HEAD + data)


@settings(max_examples=2000, deadline=None)
@given(st.binary(min_size=64, max_size=400))
def test_random_bytes_are_not_accepted_as_a_bare_data_set(data: bytes) -> None:
    # Acceptance needs ascending tags whose lengths chain exactly to the end: random bytes
    # of this size cannot do it by chance.
    assert "not a DICOM file" in refused(data)


@settings(max_examples=1500, deadline=None)
@given(
    st.sampled_from([SAMPLE, SAMPLE_IMPLICIT]),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_corrupted_files_raise_nothing_but_pharos_errors(
    sample: bytes, changes: list[tuple[int, int]]
) -> None:
    data = bytearray(sample)
    for position, value in changes:
        data[position % len(data)] = value
    only_pharos_errors(bytes(data))


# --- real files: pydicom's test files and the corpus --------------------------------------

# Files pydicom reads "fully" only because it silently accepts a value shorter than its
# declared length: the walker refuses them as truncated, which is the point of it.
SILENTLY_TRUNCATED = {
    "MR_truncated.dcm": (
        "element (7FE0,0010) declares 8192 bytes at offset 1488 but only 8130 remain"
    ),
    "rtplan_truncated.dcm": (
        "element (300A,00B0) declares 976 bytes at offset 1410 but only 711 remain"
    ),
    # Made from DICOMDIR by removing elements without fixing the item lengths.
    "DICOMDIR-nooffset": "item declares 248 bytes at offset 10860 but only 224 remain",
}
DEEP = "2026-05-06-Deeply-Nested-Sequence.dcm"


def real_files() -> list[object]:
    files: list[object] = sorted(p for p in map(Path, get_testdata_files()) if p.is_file())
    if CORPUS.is_dir():  # absent: the corpus cases are simply not generated
        files += [
            pytest.param(p, marks=pytest.mark.corpus)
            for p in sorted(CORPUS.rglob("*"))
            if p.is_file() and p.name != "README.md" and p.name != DEEP
        ]
    return files


@pytest.mark.corpus
def test_corpus_deeply_nested_file_is_refused_without_recursion() -> None:
    path = CORPUS / DEEP
    if not path.is_file():
        pytest.skip("the corpus is not available")
    data = path.read_bytes()
    # 100,000 levels: pydicom would recurse (and take minutes); the walk refuses at once.
    assert refused(data) == "sequence nesting deeper than 64 levels at offset 1774"
    assert check_structure(data, max_depth=200_000).max_depth == 100_000


def file_id(path: Path) -> str:
    for root, label in ((PYDICOM_DATA, "pydicom"), (CORPUS, "corpus")):
        if path.is_relative_to(root):
            return f"{label}/{path.relative_to(root)}"
    return str(path)


@pytest.fixture
def deep_recursion() -> Iterator[None]:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))
    yield
    sys.setrecursionlimit(limit)


def pydicom_reads_fully(data: bytes) -> bool:
    """pydicom's verdict: a full read touching every value. Without the 'DICM' prefix,
    pydicom needs force=True, which makes any bytes a "data set"; then the top-level tags
    must also be ones a writer would produce (dictionary, group length or private)."""
    has_preamble = data[128:132] == b"DICM"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), force=not has_preamble)
            for elem in ds.iterall():
                _ = elem.value
    except Exception:
        return False
    if has_preamble:
        return True

    def known(tag: int) -> bool:
        group, elem = tag >> 16, tag & 0xFFFF
        if tag in DicomDictionary or (group % 2 == 0 and elem == 0):
            return True
        if group % 2:
            return 0x10 <= elem <= 0xFF or (group << 16 | elem >> 8) in ds
        return False

    return len(ds) > 0 and all(known(elem.tag) for elem in ds)


@pytest.mark.parametrize("path", real_files(), ids=file_id)
def test_real_files_agree_with_pydicom(path: Path, deep_recursion: None) -> None:
    data = path.read_bytes()
    if path.name in SILENTLY_TRUNCATED:
        assert pydicom_reads_fully(data)
        assert refused(data) == "truncated file: " + SILENTLY_TRUNCATED[path.name]
        return
    if not pydicom_reads_fully(data):
        refused(data)
        return
    result = check_structure(data)
    if result.transfer_syntax_uid != DeflatedExplicitVRLittleEndian:
        expected = pydicom_pixel_offset(data, force=not result.has_preamble)
        if expected != -1:
            assert result.pixel_data_offset == expected


def shape(result: Structure) -> tuple[object, ...]:
    """The structural verdict, without the collected values."""
    return (
        result.has_preamble,
        result.transfer_syntax_uid,
        result.dataset_offset,
        result.pixel_data_offset,
        result.max_depth,
    )


def test_wanted_top_level_values_are_collected() -> None:
    ds = Dataset()
    ds.PatientName = "Doe^Jane"
    ds.StudyInstanceUID = "1.2.3"
    seq_item = Dataset()
    seq_item.PatientName = "Nested^Not"
    ds.ReferencedImageSequence = [seq_item]
    for syntax, little in ((ExplicitVRLittleEndian, True), (ImplicitVRLittleEndian, True)):
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = syntax
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
        result = check_structure(buffer.getvalue(), wanted=frozenset({0x00100010, 0x0020000D}))
        assert result.little_endian is little
        assert result.values[0x00100010][1] == b"Doe^Jane"
        assert result.values[0x0020000D][1].rstrip(b"\x00") == b"1.2.3"
        expected_vr = None if syntax == ImplicitVRLittleEndian else "PN"
        assert result.values[0x00100010][0] == expected_vr
