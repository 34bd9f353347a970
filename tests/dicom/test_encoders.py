"""The compressed targets of transcoding: lossless ones round-trip pixel-exact (every frame,
8/12/16-bit, signed, colour by plane or by pixel), lossy ones stay within a bound and are
marked as DCMTK marks them; what a target cannot hold is refused with the reason."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from pharos.dicom.encoders import DEFAULT_QUALITY, LOSSY_TARGETS
from pharos.dicom.transcode import TranscodingError, can_transcode, transcode
from tests.dicom.imagegen import image_dataset, ramp, reread

LOSSLESS = [RLELossless, JPEGLSLossless, JPEG2000Lossless, JPEGLosslessSV1, JPEGLossless]


def smooth(shape: tuple[int, ...], high: int, seed: int = 0) -> np.ndarray:
    """A gradient with a little noise: what lossy codecs are made for."""
    rows, columns = shape[-2], shape[-1]
    y, x = np.mgrid[0:rows, 0:columns]
    base = (x + y) * (high / (rows + columns))
    noise = np.random.default_rng(seed).normal(0, high / 200, shape)
    return np.clip(base + noise, 0, high)


def psnr(a: np.ndarray, b: np.ndarray, peak: int) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(peak**2 / mse)


IMAGES = {
    # 3 frames of 12-bit signed CT in 16-bit words
    "ct12-signed-multiframe": lambda: image_dataset(
        ramp((3, 40, 33), np.int16, -2048, 2047), bits_stored=12
    ),
    "16-bit-unsigned": lambda: image_dataset(ramp((32, 35), np.uint16, 0, 65535)),
    "16-bit-signed": lambda: image_dataset(ramp((34, 32), np.int16, -32768, 32767)),
    "8-bit-grey": lambda: image_dataset(ramp((33, 37), np.uint8, 0, 255)),
    "rgb-by-plane": lambda: image_dataset(ramp((2, 32, 34, 3), np.uint8, 0, 255), planar=1),
    "rgb-by-pixel": lambda: image_dataset(ramp((36, 32, 3), np.uint8, 0, 255)),
}


@pytest.mark.parametrize("target", LOSSLESS)
@pytest.mark.parametrize("image", sorted(IMAGES))
def test_lossless_targets_are_pixel_exact(image: str, target: str) -> None:
    original = IMAGES[image]()
    pixels = original.pixel_array.copy()
    converted = reread(transcode(original, target))
    assert converted.file_meta.TransferSyntaxUID == target
    assert converted["PixelData"].is_undefined_length  # encapsulated
    assert np.array_equal(converted.pixel_array, pixels)
    assert converted.SOPInstanceUID == original.SOPInstanceUID
    assert "LossyImageCompression" not in converted
    if int(original.SamplesPerPixel) == 3:
        assert converted.PlanarConfiguration == 0
    back = reread(transcode(converted, ExplicitVRLittleEndian))
    assert np.array_equal(back.pixel_array, pixels)
    assert can_transcode(ExplicitVRLittleEndian, target)


def test_jpeg_baseline_grey_and_colour() -> None:
    grey = image_dataset(
        smooth((2, 64, 48), 255).astype(np.uint8), ImageType=["ORIGINAL", "PRIMARY"]
    )
    pixels = grey.pixel_array.copy()
    converted = reread(transcode(grey, JPEGBaseline8Bit, allow_lossy=True))
    assert converted.file_meta.TransferSyntaxUID == JPEGBaseline8Bit
    assert converted.PhotometricInterpretation == "MONOCHROME2"
    assert converted.pixel_array.shape == pixels.shape
    assert psnr(converted.pixel_array, pixels, 255) > 35
    assert converted.LossyImageCompression == "01"
    assert converted.LossyImageCompressionMethod == "ISO_10918_1"
    assert float(converted.LossyImageCompressionRatio) > 1
    assert converted.ImageType[0] == "DERIVED"
    assert "quality 90" in converted.DerivationDescription
    # A new instance, which points at the one it came from (as DCMTK does).
    assert converted.SOPInstanceUID != grey.SOPInstanceUID
    assert converted.file_meta.MediaStorageSOPInstanceUID == converted.SOPInstanceUID
    source = converted.SourceImageSequence[-1]
    assert source.ReferencedSOPInstanceUID == grey.SOPInstanceUID
    assert source.PurposeOfReferenceCodeSequence[0].CodeValue == "121320"

    planes = smooth((3, 48, 64), 255).transpose(1, 2, 0).astype(np.uint8)
    colour = image_dataset(np.ascontiguousarray(planes), planar=1)
    converted = reread(transcode(colour, JPEGBaseline8Bit, allow_lossy=True, quality=95))
    assert converted.PhotometricInterpretation == "YBR_FULL_422"
    assert converted.PlanarConfiguration == 0
    assert psnr(converted.pixel_array, planes, 255) > 30  # pydicom converts back to RGB


def test_jpeg_extended_12_bit() -> None:
    ct = image_dataset(smooth((2, 64, 48), 4095).astype(np.uint16), bits_stored=12)
    pixels = ct.pixel_array.copy()
    converted = reread(transcode(ct, JPEGExtended12Bit, allow_lossy=True))
    assert converted.file_meta.TransferSyntaxUID == JPEGExtended12Bit
    assert converted.LossyImageCompressionMethod == "ISO_10918_1"
    # pydicom's plugins cannot decode 12-bit JPEG: transcoding back uses Pharos's decoding.
    back = reread(transcode(converted, ExplicitVRLittleEndian))
    assert back.pixel_array.shape == pixels.shape
    assert psnr(back.pixel_array, pixels, 4095) > 40
    grey8 = image_dataset(smooth((40, 40), 255).astype(np.uint8))
    converted = reread(transcode(grey8, JPEGExtended12Bit, allow_lossy=True))
    assert psnr(converted.pixel_array, grey8.pixel_array, 255) > 35


def test_lower_quality_gives_smaller_files() -> None:
    grey = image_dataset(smooth((128, 128), 255).astype(np.uint8))
    sizes = [
        len(transcode(grey, JPEGBaseline8Bit, allow_lossy=True, quality=q).PixelData)
        for q in (30, 90)
    ]
    assert sizes[0] < sizes[1]


def test_keep_instance_uid() -> None:
    grey = image_dataset(smooth((32, 40), 255).astype(np.uint8))
    kept = transcode(grey, JPEG2000, allow_lossy=True, keep_instance_uid=True)
    assert kept.SOPInstanceUID == grey.SOPInstanceUID
    assert "SourceImageSequence" not in kept


def test_jpeg_ls_near_lossless_error_bound() -> None:
    original = image_dataset(ramp((2, 40, 33), np.uint16, 0, 4095), bits_stored=12)
    pixels = original.pixel_array.astype(np.int32)
    converted = reread(transcode(original, JPEGLSNearLossless, allow_lossy=True))
    assert converted.file_meta.TransferSyntaxUID == JPEGLSNearLossless
    assert np.abs(converted.pixel_array.astype(np.int32) - pixels).max() <= 2
    assert converted.LossyImageCompressionMethod == "ISO_14495_1"


def test_jpeg_2000_lossy() -> None:
    ct = image_dataset(smooth((2, 64, 64), 4000).astype(np.int16), bits_stored=12)
    pixels = ct.pixel_array.copy()
    converted = reread(transcode(ct, JPEG2000, allow_lossy=True))
    assert converted.file_meta.TransferSyntaxUID == JPEG2000
    assert psnr(converted.pixel_array, pixels, 4095) > 40
    assert converted.LossyImageCompressionMethod == "ISO_15444_1"


@pytest.mark.parametrize(
    "pixels",
    [
        ramp((2, 16, 12), np.int16, -2048, 2047),
        ramp((8, 9, 3), np.uint8, 0, 255),
        ramp((1, 31), np.uint16, 0, 65535),
    ],
)
def test_jpeg_2000_of_small_images(pixels: np.ndarray) -> None:
    """Under 32 pixels a side (too few for pydicom's encoder): fewer resolution levels."""
    original = image_dataset(pixels, bits_stored=12 if pixels.dtype == np.int16 else None)
    expected = original.pixel_array.copy()
    lossless = reread(transcode(original, JPEG2000Lossless))
    assert np.array_equal(lossless.pixel_array, expected)
    small = image_dataset(smooth((20, 24), 4000).astype(np.uint16), bits_stored=12)
    lossy = reread(transcode(small, JPEG2000, allow_lossy=True))
    assert lossy.file_meta.TransferSyntaxUID == JPEG2000
    assert psnr(lossy.pixel_array, small.pixel_array, 4095) > 45
    assert lossy.LossyImageCompression == "01"


def test_lossy_history_is_appended() -> None:
    grey = image_dataset(smooth((32, 32), 255).astype(np.uint8))
    once = reread(transcode(grey, JPEG2000, allow_lossy=True))
    twice = reread(transcode(once, JPEGBaseline8Bit, allow_lossy=True))
    assert list(twice.LossyImageCompressionMethod) == ["ISO_15444_1", "ISO_10918_1"]
    assert len(twice.LossyImageCompressionRatio) == 2
    assert len(twice.SourceImageSequence) == 2


@pytest.mark.parametrize("target", sorted(LOSSY_TARGETS))
def test_lossy_only_when_asked(target: str) -> None:
    grey = image_dataset(smooth((16, 16), 255).astype(np.uint8))
    with pytest.raises(TranscodingError, match="lossy, not asked for"):
        transcode(grey, target)
    assert not can_transcode(ExplicitVRLittleEndian, target)  # the DICOM client never picks it


def refusal_cases() -> list[tuple[Dataset, str, str]]:
    ct16 = image_dataset(ramp((16, 16), np.int16, -1000, 1000), bits_stored=12)
    signed8 = image_dataset(ramp((16, 16), np.int8, -100, 100))
    signed16 = image_dataset(ramp((16, 16), np.int16, -1000, 1000))
    palette = image_dataset(ramp((16, 16), np.uint8, 0, 255), photometric="PALETTE COLOR")
    return [
        (ct16, JPEGBaseline8Bit, "8-bit samples only, not 12-bit"),
        (signed8, JPEGBaseline8Bit, "unsigned samples only"),
        (palette, JPEGBaseline8Bit, "cannot hold a PALETTE COLOR image"),
        (signed16, JPEGLSNearLossless, "unsigned samples only"),
        (ct16, JPEGExtended12Bit, "JPEG extended holds unsigned samples only"),
        (image_dataset(ramp((16, 16), np.uint16, 0, 65535)), JPEGExtended12Bit, "not 16-bit"),
        (
            image_dataset(ramp((16, 16, 3), np.uint16, 0, 4095), bits_stored=12),
            JPEGExtended12Bit,
            "colour images of 8-bit samples only",
        ),
    ]


def test_what_a_target_cannot_hold_is_refused() -> None:
    for source, target, reason in refusal_cases():
        before = source.PixelData
        with pytest.raises(TranscodingError, match=f"Cannot compress to JPEG.*{reason}"):
            transcode(source, target, allow_lossy=True)
        assert source.PixelData == before  # the source is left alone
        assert source.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian


def test_bad_quality() -> None:
    grey = image_dataset(smooth((16, 16), 255).astype(np.uint8))
    for quality in (0, 101):
        with pytest.raises(TranscodingError, match="between 1 and 100"):
            transcode(grey, JPEGBaseline8Bit, allow_lossy=True, quality=quality)
    assert DEFAULT_QUALITY == 90
