"""Pixel decoding: every transfer syntax, photometric interpretation, depth and frame layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_color_lut, convert_color_space, pixel_array
from pydicom.uid import UID

from pharos.dicom.pixels import (
    decode_frame,
    image_info,
    iter_frames,
    raw_frame,
    raw_frame_media_type,
)
from pharos.model.errors import PharosError
from tests.conftest import CORPUS
from tests.dicom.imagegen import ENCODERS, LOSSY, image_dataset, ramp, reread

NATIVE = [
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.1.99",
]


# -- native syntaxes: exact ------------------------------------------------------------------


@pytest.mark.parametrize("syntax", NATIVE)
@pytest.mark.parametrize(
    ("dtype", "bits", "low", "high"),
    [
        (np.uint8, 8, 0, 255),
        (np.uint16, 12, 0, 4095),
        (np.uint16, 16, 0, 65535),
        (np.int16, 16, -32768, 32767),
        (np.int16, 12, -2048, 2047),
    ],
)
def test_native_grayscale_is_exact(
    syntax: str, dtype: type, bits: int, low: int, high: int
) -> None:
    array = ramp((7, 9), dtype, low, high)
    ds = image_dataset(array, syntax=syntax, bits_stored=bits)
    decoded = decode_frame(ds)
    assert decoded.dtype == np.dtype(dtype)
    assert np.array_equal(decoded, array)


@pytest.mark.parametrize("syntax", NATIVE)
@pytest.mark.parametrize("planar", [0, 1])
def test_native_rgb_in_both_planar_configurations(syntax: str, planar: int) -> None:
    array = ramp((5, 6, 3), np.uint8, 0, 255)
    ds = image_dataset(array, syntax=syntax, planar=planar)
    decoded = decode_frame(ds)
    assert decoded.shape == (5, 6, 3)
    assert np.array_equal(decoded, array)


def test_multi_frame_decodes_the_frame_asked_for() -> None:
    frames = ramp((5, 4, 6), np.int16, -1000, 3000)
    ds = image_dataset(frames, bits_stored=16)
    assert image_info(ds).frames == 5
    for index in (0, 2, 4):
        assert np.array_equal(decode_frame(ds, index), frames[index])
    assert all(np.array_equal(a, b) for a, b in zip(iter_frames(ds), frames, strict=True))


def test_ybr_full_becomes_rgb() -> None:
    rgb = ramp((8, 8, 3), np.uint8, 0, 255)
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    ds = image_dataset(ybr, photometric="YBR_FULL")
    decoded = decode_frame(ds)
    assert np.abs(decoded.astype(int) - rgb.astype(int)).max() <= 2


def test_palette_color_becomes_rgb() -> None:
    indices = ramp((6, 7), np.uint8, 0, 3)
    ds = image_dataset(indices, photometric="PALETTE COLOR")
    red, green, blue = [0, 65535, 0, 1000], [0, 0, 65535, 2000], [65535, 0, 0, 3000]
    for n, lut in enumerate((red, green, blue)):
        ds.add_new(0x00281101 + n, "US", [4, 0, 16])
        ds.add_new(0x00281201 + n, "OW", np.array(lut, "<u2").tobytes())
    ds = reread(ds)
    decoded = decode_frame(ds)
    expected = np.stack([np.array(c)[indices] for c in (red, green, blue)], axis=-1)
    assert decoded.shape == (6, 7, 3)
    assert np.array_equal(decoded, expected)


def test_files_without_a_transfer_syntax_are_read_as_parsed() -> None:
    array = ramp((5, 5), np.int16, -100, 100)
    ds = image_dataset(array, syntax="1.2.840.10008.1.2", bits_stored=16)
    del ds.file_meta.TransferSyntaxUID
    assert np.array_equal(decode_frame(ds), array)


def test_missing_pixel_representation_and_samples_default() -> None:
    array = ramp((4, 4), np.uint16, 0, 1000)
    ds = image_dataset(array, bits_stored=16)
    del ds.PixelRepresentation
    del ds.SamplesPerPixel
    del ds.PhotometricInterpretation
    assert np.array_equal(decode_frame(ds), array)


# -- encapsulated syntaxes -------------------------------------------------------------------


DEPTHS = [(np.uint8, 8, 0, 255), (np.uint16, 12, 0, 4095), (np.int16, 16, -3000, 3000)]
ENCAPSULATED_CASES = [
    (syntax, *depth)
    for syntax in [*sorted(ENCODERS), "1.2.840.10008.1.2.5"]
    for depth in DEPTHS
    # JPEG baseline is 8-bit, JPEG extended exercised at 12 bits.
    if not (syntax == "1.2.840.10008.1.2.4.50" and depth[1] != 8)
    and not (syntax == "1.2.840.10008.1.2.4.51" and depth[1] != 12)
]


@pytest.mark.parametrize(("syntax", "dtype", "bits", "low", "high"), ENCAPSULATED_CASES)
def test_encapsulated_grayscale(syntax: str, dtype: type, bits: int, low: int, high: int) -> None:
    frames = ramp((3, 16, 24), dtype, low, high)
    if syntax in LOSSY:
        frames = np.repeat(np.repeat(frames[:, ::4, ::4], 4, axis=1), 4, axis=2)  # smooth
    ds = image_dataset(frames, syntax=syntax, bits_stored=bits)
    for index in (0, 2):
        decoded = decode_frame(ds, index)
        assert decoded.shape == (16, 24)
        assert decoded.dtype == np.dtype(dtype)
        if syntax in LOSSY:
            error = np.abs(decoded.astype(float) - frames[index]).mean()
            assert error < (high - low) * 0.02
        else:
            assert np.array_equal(decoded, frames[index]), syntax


@pytest.mark.parametrize(
    "syntax", ["1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.5"]
)
def test_encapsulated_rgb(syntax: str) -> None:
    array = ramp((2, 10, 12, 3), np.uint8, 0, 255)
    ds = image_dataset(array, syntax=syntax)
    assert np.array_equal(decode_frame(ds, 1), array[1])


def test_jpeg_baseline_ycbcr_comes_back_as_rgb() -> None:
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:, :8] = (200, 30, 30)
    rgb[:, 8:] = (30, 30, 200)
    ds = image_dataset(rgb, syntax="1.2.840.10008.1.2.4.50", photometric="YBR_FULL_422")
    decoded = decode_frame(ds)
    assert np.abs(decoded.astype(int) - rgb).mean() < 6


def test_fragmented_frames() -> None:
    array = ramp((2, 16, 16), np.uint16, 0, 4095)
    codestreams = [ENCODERS["1.2.840.10008.1.2.4.90"](frame) for frame in array]
    ds = image_dataset(array, syntax="1.2.840.10008.1.2.4.90", bits_stored=12)
    # Each frame split in two fragments, with a basic offset table.
    fragments = [[c[: len(c) // 4 * 2], c[len(c) // 4 * 2 :]] for c in codestreams]
    ds.PixelData = _encapsulate_fragments(fragments)
    ds = reread(ds)
    assert np.array_equal(decode_frame(ds, 1), array[1])
    assert raw_frame(ds, 1)[: len(codestreams[1])] == codestreams[1]  # + even-length padding


def _encapsulate_fragments(frames: list[list[bytes]]) -> bytes:
    from pydicom.encaps import itemize_fragment

    items = []
    offsets = []
    position = 0
    for fragments in frames:
        offsets.append(position)
        for fragment in fragments:
            padded = fragment + b"\x00" * (len(fragment) % 2)
            item = itemize_fragment(padded)
            items.append(item)
            position += len(item)
    table = b"".join(o.to_bytes(4, "little") for o in offsets)
    bot = b"\xfe\xff\x00\xe0" + len(table).to_bytes(4, "little") + table
    return bot + b"".join(items) + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


# -- raw frames ------------------------------------------------------------------------------


def test_raw_native_frames() -> None:
    frames = ramp((3, 4, 5), np.uint16, 0, 65535)
    ds = image_dataset(frames, bits_stored=16)
    assert raw_frame(ds, 2) == frames[2].tobytes()
    assert raw_frame_media_type("1.2.840.10008.1.2.1") == "application/octet-stream"


def test_raw_encapsulated_frames_are_the_codestreams() -> None:
    frames = ramp((2, 8, 8), np.uint8, 0, 255)
    codestreams = [ENCODERS["1.2.840.10008.1.2.4.50"](f) for f in frames]
    ds = image_dataset(frames, syntax="1.2.840.10008.1.2.4.50", encoded=codestreams)
    assert raw_frame(ds, 1).rstrip(b"\x00") == codestreams[1].rstrip(b"\x00")
    assert raw_frame_media_type("1.2.840.10008.1.2.4.50") == "image/jpeg"
    assert raw_frame_media_type("1.2.840.10008.1.2.4.90") == "image/jp2"


def test_raw_one_bit_frames_not_on_byte_boundaries() -> None:
    bits = ramp((3, 3, 5), np.uint8, 0, 1)  # 15 bits a frame
    ds = image_dataset(bits)
    ds.BitsAllocated = ds.BitsStored = 1
    ds.HighBit = 0
    ds.PixelData = np.packbits(bits.reshape(-1), bitorder="little").tobytes()
    ds = reread(ds)
    assert np.array_equal(decode_frame(ds, 1), bits[1])
    unpacked = np.unpackbits(np.frombuffer(raw_frame(ds, 1), np.uint8), bitorder="little")
    assert np.array_equal(unpacked[:15].reshape(3, 5), bits[1])


# -- failures ---------------------------------------------------------------------------------


def _status(error: pytest.ExceptionInfo[PharosError]) -> int:
    return error.value.http_status


def test_no_pixel_data() -> None:
    ds = image_dataset(ramp((4, 4), np.uint8, 0, 9))
    del ds.PixelData
    with pytest.raises(PharosError, match="no pixel data") as error:
        decode_frame(ds)
    assert _status(error) == 415
    with pytest.raises(PharosError, match="no pixel data"):
        raw_frame(ds, 0)


def test_truncated_native_pixel_data() -> None:
    ds = image_dataset(ramp((8, 8), np.uint16, 0, 9), bits_stored=16)
    ds.PixelData = ds.PixelData[:50]
    with pytest.raises(PharosError, match="too short") as error:
        decode_frame(ds)
    assert _status(error) == 415


def test_garbage_in_encapsulated_pixel_data() -> None:
    ds = image_dataset(ramp((8, 8), np.uint8, 0, 9), syntax="1.2.840.10008.1.2.4.90")
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51 this is not a codestream"])
    with pytest.raises(PharosError, match="Cannot decode") as error:
        decode_frame(reread(ds))
    assert _status(error) == 415


@pytest.mark.parametrize(
    ("keyword", "value", "message"),
    [
        ("Rows", 0, "Invalid image size"),
        ("Columns", 65535, "too large"),
        ("SamplesPerPixel", 2, "samples per pixel"),
        ("BitsAllocated", 12, "bits allocated"),
    ],
)
def test_impossible_geometry(keyword: str, value: int, message: str) -> None:
    ds = image_dataset(ramp((8, 8), np.uint8, 0, 9))
    if keyword == "Columns":
        ds.Rows = 65535
    setattr(ds, keyword, value)
    with pytest.raises(PharosError, match=message) as error:
        decode_frame(ds)
    assert _status(error) == 415


def test_frame_out_of_range() -> None:
    ds = image_dataset(ramp((2, 4, 4), np.uint8, 0, 9))
    for index in (2, -1):
        with pytest.raises(PharosError, match="has 2 frame") as error:
            decode_frame(ds, index)
        assert _status(error) == 400
        with pytest.raises(PharosError):
            raw_frame(ds, index)


def test_broken_palette() -> None:
    ds = image_dataset(ramp((4, 4), np.uint8, 0, 3), photometric="PALETTE COLOR")
    with pytest.raises(PharosError, match="palette") as error:
        decode_frame(ds)
    assert _status(error) == 415


# -- real files: pydicom's own decode is the reference ---------------------------------------

PYDICOM_FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "JPEG2000.dcm",
    "JPEGLSNearLossless_16.dcm",
    "SC_rgb_rle.dcm",
    "SC_rgb_rle_16bit_2frame.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "SC_rgb_small_odd.dcm",
    "SC_rgb_small_odd_big_endian.dcm",
    "SC_ybr_full_422_uncompressed.dcm",
    "image_dfl.dcm",
    "liver_1frame.dcm",
    "rtdose.dcm",
    "rtdose_rle.dcm",
    "examples_palette.dcm",
    "examples_ybr_color.dcm",
    "693_J2KI.dcm",
    "GDCMJ2K_TextGBR.dcm",
]


def _reference_frames(path: Path | str) -> np.ndarray:
    """pydicom's whole-object decode with its own defaults (palettes applied)."""
    ds = pydicom.dcmread(path, force=True)
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2")
    array = ds.pixel_array
    if str(ds.get("PhotometricInterpretation", "")) == "PALETTE COLOR":
        array = apply_color_lut(array, ds)
    frames = int(ds.get("NumberOfFrames") or 1)
    return array if frames > 1 else array[np.newaxis]


def _check_against_reference(path: Path | str) -> None:
    ds = pydicom.dcmread(path, force=True)
    info = image_info(ds)
    reference = _reference_frames(path)
    for index in sorted({0, info.frames - 1}):
        decoded = decode_frame(ds, index, info)
        assert decoded.shape == reference[index].shape, path
        assert np.array_equal(decoded, reference[index]), path


@pytest.mark.parametrize("name", ["JPEG-lossy.dcm", "JPGExtended.dcm"])
def test_twelve_bit_jpeg_that_pydicom_plugins_refuse(name: str) -> None:
    """GDCM and Pillow refuse 12-bit JPEG extended; imagecodecs decodes it. Checked against
    the values of pydicom's pixel reference data (JPGE_16_12_1_0_1F_M2)."""
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} is not shipped with this pydicom")
    ds = pydicom.dcmread(path)
    decoded = decode_frame(ds)
    assert decoded.shape == (ds.Rows, ds.Columns)
    assert decoded.dtype == np.uint16
    assert decoded[420, 140] == 244
    assert decoded[230, 120] == 95


@pytest.mark.parametrize("name", PYDICOM_FILES)
def test_pydicom_files_decode_as_pydicom_does(name: str) -> None:
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} is not shipped with this pydicom")
    _check_against_reference(path)


def _corpus_images() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    paths = sorted((CORPUS / "TransferSyntaxes").glob("*.dcm"))
    paths += sorted((CORPUS / "Formats").glob("*.dcm"))
    for name in (
        "Implicit-vr-us-palette.dcm",
        "2022-11-14-RLEPlanarConfiguration.dcm",
        "2023-04-21-RLEPlanarConfigurationYBR_FULL.dcm",
        "ColorTestMalaterre.dcm",
        "SignedCT.dcm",
        "Issue16.dcm",
        "Issue19.dcm",
        "DicomSeg.dcm",
        "MultiframeWindowing.dcm",
        "2021-02-19-MalaterreCP246.dcm",
    ):
        paths.append(CORPUS / name)
    return paths


# A second decoder for the lossless encapsulated syntaxes: a different library must agree.
SECOND_OPINION = {
    "1.2.840.10008.1.2.4.90": "gdcm",
    "1.2.840.10008.1.2.4.91": "gdcm",
    "1.2.840.10008.1.2.5": "pydicom",
}


@pytest.mark.corpus
@pytest.mark.parametrize("path", _corpus_images(), ids=lambda p: p.name)
def test_corpus_images_decode_exactly(path: Path) -> None:
    ds = pydicom.dcmread(path, force=True)
    syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
    if syntax == "1.2.840.10008.1.2.4.51":
        # No pydicom plugin decodes 12-bit JPEG here: our imagecodecs path against GDCM-free
        # knowledge of the file (12 bits stored, a CT-like range).
        decoded = decode_frame(ds)
        assert decoded.shape == (ds.Rows, ds.Columns)
        assert decoded.min() >= 0 and decoded.max() < 4096 and decoded.std() > 100
        return
    if "PixelRepresentation" not in ds or "SamplesPerPixel" not in ds:
        ds.PixelRepresentation = ds.get("PixelRepresentation", 0)
        ds.SamplesPerPixel = ds.get("SamplesPerPixel", 1)
        decoded = decode_frame(ds, 1)
        assert np.array_equal(decoded, pixel_array(ds, index=1))
        return
    _check_against_reference(path)
    plugin = SECOND_OPINION.get(syntax)
    if plugin and str(ds.PhotometricInterpretation) != "YBR_ICT":
        other = pixel_array(path, index=0, decoding_plugin=plugin)
        assert np.array_equal(decode_frame(ds, 0), other)


@pytest.mark.corpus
@pytest.mark.parametrize(
    "name", ["2026-05-26-oob-monochrome-46341.dcm", "Issue22-NoPixelData.dcm", "sample-pdf.dcm"]
)
def test_corpus_files_without_a_decodable_image(name: str) -> None:
    if not CORPUS.is_dir():
        pytest.skip("corpus not available")
    ds = pydicom.dcmread(CORPUS / name, force=True)
    with pytest.raises(PharosError) as error:
        decode_frame(ds)
    assert error.value.http_status == 415
