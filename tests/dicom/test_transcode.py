"""Transcoding between transfer syntaxes: lossless round trips are pixel-exact, the file meta and
the encoding flags follow, and what cannot be done is refused clearly."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels.encoders import JPEG2000LosslessEncoder, JPEGLSLosslessEncoder
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)
from pynetdicom.dsutils import decode, encode

from pharos.dicom.transcode import TranscodingError, can_transcode, transcode
from tests.dicomgen import make_dataset

UNCOMPRESSED = [
    ImplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
]
LOSSLESS = [
    *UNCOMPRESSED,
    RLELossless,
    pytest.param(
        JPEG2000Lossless,
        marks=pytest.mark.skipif(
            not JPEG2000LosslessEncoder.is_available, reason="no JPEG 2000 encoder installed"
        ),
    ),
]


def sample(name: str) -> Dataset:
    path = get_testdata_file(name)
    assert path is not None, name
    return pydicom.dcmread(path)


def written(ds: Dataset) -> Dataset:
    """`ds` saved as a file and read back (what a peer receives)."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    return pydicom.dcmread(buffer)


def rgb_dataset() -> Dataset:
    ds = make_dataset(rows=32, columns=36)
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    rng = np.random.default_rng(3)
    ds.PixelData = rng.integers(0, 256, (32, 36, 3), dtype=np.uint8).tobytes()
    return written(ds)


@pytest.mark.parametrize("target", LOSSLESS)
@pytest.mark.parametrize("make", [lambda: written(make_dataset(rows=40, columns=33)), rgb_dataset])
def test_lossless_round_trip_is_pixel_exact(make: object, target: str) -> None:
    original = make()  # type: ignore[operator]
    pixels = original.pixel_array.copy()
    converted = transcode(original, target)
    assert converted.file_meta.TransferSyntaxUID == target
    received = written(converted)
    assert received.file_meta.TransferSyntaxUID == target
    assert np.array_equal(received.pixel_array, pixels)
    # ... and back.
    back = transcode(received, ExplicitVRLittleEndian)
    assert np.array_equal(back.pixel_array, pixels)
    if target in UNCOMPRESSED:  # the very same bytes (encoders keep only the BitsStored bits)
        assert back.PixelData == original.PixelData
    assert back.SOPInstanceUID == original.SOPInstanceUID
    assert back.PatientName == original.PatientName
    # The source is left alone.
    assert original.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert np.array_equal(original.pixel_array, pixels)


def test_big_endian_swaps_the_pixel_words() -> None:
    original = sample("MR_small.dcm")
    big = transcode(original, ExplicitVRBigEndian)
    assert big.original_encoding == (False, False)
    words = np.frombuffer(original.PixelData, dtype="<u2")
    assert big.PixelData == words.byteswap().tobytes()
    received = written(big)
    assert np.array_equal(received.pixel_array, original.pixel_array)
    # A big endian file in, little endian out: the same as pydicom's own little endian copy.
    from_big = transcode(sample("MR_small_bigendian.dcm"), ImplicitVRLittleEndian)
    assert from_big.original_encoding == (True, True)
    assert np.array_equal(written(from_big).pixel_array, original.pixel_array)


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_RLE.dcm",  # RLE Lossless
        "MR_small_jp2klossless.dcm",  # JPEG 2000 Lossless
        "SC_rgb_jpeg_gdcm.dcm",  # JPEG Lossless SV1, color
        "SC_rgb_rle_2frame.dcm",  # multi-frame
    ],
)
@pytest.mark.parametrize("target", UNCOMPRESSED)
def test_compressed_sources_decompress(name: str, target: str) -> None:
    source = sample(name)
    pixels = source.pixel_array.copy()
    converted = transcode(source, target)
    assert converted.file_meta.TransferSyntaxUID == target
    assert "PixelData" in converted and not converted["PixelData"].is_undefined_length
    assert converted.SOPInstanceUID == source.SOPInstanceUID  # lossless: the same instance
    assert np.array_equal(written(converted).pixel_array, pixels)


def test_lossy_source_decompresses_to_what_it_shows() -> None:
    source = sample("JPEG2000.dcm")  # JPEG 2000 (lossy)
    converted = transcode(source, ExplicitVRLittleEndian)
    assert np.array_equal(written(converted).pixel_array, source.pixel_array)


def test_compressed_to_compressed() -> None:
    source = sample("MR_small_RLE.dcm")
    converted = (
        transcode(source, JPEG2000Lossless) if JPEG2000LosslessEncoder.is_available else None
    )
    if converted is not None:
        assert converted.file_meta.TransferSyntaxUID == JPEG2000Lossless
        assert np.array_equal(written(converted).pixel_array, source.pixel_array)


def test_without_pixel_data_only_the_syntax_changes() -> None:
    plan = sample("rtplan.dcm")  # implicit VR, no image
    converted = transcode(plan, ExplicitVRBigEndian)
    received = written(converted)
    assert received.file_meta.TransferSyntaxUID == ExplicitVRBigEndian
    assert received.BeamSequence[0].BeamName == plan.BeamSequence[0].BeamName
    assert len(received.BeamSequence) == len(plan.BeamSequence)


def test_same_syntax_is_a_copy() -> None:
    source = sample("MR_small.dcm")
    copy = transcode(source, ExplicitVRLittleEndian)
    assert copy is not source
    copy.PatientName = "Changed"
    assert source.PatientName != "Changed"


def test_refusals() -> None:
    source = sample("MR_small.dcm")
    with pytest.raises(TranscodingError, match=r"JPEG Baseline.*lossy, not asked for"):
        transcode(source, JPEGBaseline8Bit)  # lossy: never implicitly
    with pytest.raises(TranscodingError, match="not supported"):
        transcode(source, "1.2.3.4")
    assert not can_transcode(ExplicitVRLittleEndian, JPEGBaseline8Bit)
    assert can_transcode(JPEGBaseline8Bit, JPEGBaseline8Bit)
    assert can_transcode(JPEGBaseline8Bit, ImplicitVRLittleEndian)
    if not JPEGLSLosslessEncoder.is_available:
        with pytest.raises(TranscodingError, match="Cannot compress to JPEG-LS"):
            transcode(source, JPEGLSLossless)


def test_undecodable_source() -> None:
    broken = sample("MR_small_RLE.dcm")
    # A valid encapsulation whose fragment is garbage: no decoder can make pixels of it.
    broken.PixelData = b"\xfe\xff\x00\xe0\x00\x00\x00\x00\xfe\xff\x00\xe0\x08\x00\x00\x00" + (
        b"\x01\x00\x00\x00\x00\x00\x00\x00"
    )
    with pytest.raises(TranscodingError, match="Cannot decompress RLE Lossless"):
        transcode(broken, ExplicitVRLittleEndian)


def test_no_transfer_syntax() -> None:
    ds = make_dataset()
    del ds.file_meta
    with pytest.raises(TranscodingError, match="no transfer syntax"):
        transcode(ds, ImplicitVRLittleEndian)


def test_sequence_items_are_re_encoded_for_the_network() -> None:
    """Items read in explicit VR must not reach an implicit VR stream as their raw bytes
    (pynetdicom encodes the dataset itself; dcmtk's storescp aborted on such items)."""
    source = Dataset()
    source.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    source.SOPInstanceUID = "1.2.3.4"
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    item.ReferencedSOPInstanceUID = "1.2.3.5"
    source.SourceImageSequence = [item]
    source.file_meta = FileMetaDataset()
    source.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    source.save_as(buffer, enforce_file_format=True)
    read = pydicom.dcmread(io.BytesIO(buffer.getvalue()))  # items hold raw explicit VR bytes

    for syntax, implicit in ((ImplicitVRLittleEndian, True), (ExplicitVRLittleEndian, False)):
        converted = transcode(read, syntax)
        back = decode(io.BytesIO(encode(converted, implicit, True)), implicit, True)
        assert back.SourceImageSequence[0].ReferencedSOPInstanceUID == "1.2.3.5"
