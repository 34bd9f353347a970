"""The grayscale pipeline, color to RGB, resizing, truncation, numpy/Matlab; image encoders."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset

from pharos.dicom import image_formats, rendering
from pharos.dicom.image_formats import ImageFormat, negotiate
from pharos.dicom.pixels import decode_frame, image_info
from pharos.dicom.rendering import RenderOptions, Window
from pharos.model.errors import PharosError
from tests.dicom.imagegen import image_dataset, ramp, reread


def render(ds: Dataset, index: int = 0, **kwargs: float) -> np.ndarray:
    info = image_info(ds)
    return rendering.render_grayscale(decode_frame(ds, index, info), ds, info, index, **kwargs)


def ct(values: list[list[int]], **tags: object) -> Dataset:
    return image_dataset(np.array(values, np.int16), bits_stored=16, **tags)


# -- windowing --------------------------------------------------------------------------------


def test_rescale_then_the_files_window() -> None:
    # Stored + (-1024) = HU; window 40/400 shows [-160, 240].
    ds = ct(
        [[864, 1064], [1264, 0]],
        RescaleSlope=1,
        RescaleIntercept=-1024,
        WindowCenter=40,
        WindowWidth=400,
    )
    image = render(ds)
    assert image.dtype == np.uint8
    assert image[0, 0] == 0  # -160 HU: the bottom of the window
    assert image[0, 1] == 128  # 40 HU: the center
    assert image[1, 0] == 255  # 240 HU
    assert image[1, 1] == 0  # -1024 HU: below


def test_first_of_several_windows() -> None:
    ds = ct([[0, 100], [200, 50]], WindowCenter=[100, 1000], WindowWidth=[200, 10])
    image = render(ds)
    assert image[0, 0] == 0 and image[1, 0] == 255 and image[0, 1] == 128


def test_window_from_the_request_wins() -> None:
    ds = ct([[0, 100], [200, 50]], WindowCenter=1000, WindowWidth=10)
    image = render(ds, center=100, width=200)
    assert image.tolist() == [[0, 128], [255, 64]]


def test_half_a_window_from_the_request_completes_with_the_full_range() -> None:
    ds = ct([[0, 100], [200, 50]])
    # Center 100 from the range, then width 200 from it (PS3.3 C.11.2.1.2.1 rounding).
    assert render(ds, width=100).tolist() == [[0, 129], [255, 0]]
    assert render(ds, center=50).tolist() == [[64, 192], [255, 128]]


def test_full_range_without_a_window() -> None:
    ds = ct([[-500, 0], [1500, 500]])
    image = render(ds)
    assert image.tolist() == [[0, 64], [255, 128]]


def test_constant_image_is_black_not_an_error() -> None:
    assert render(ct([[7, 7], [7, 7]])).tolist() == [[0, 0], [0, 0]]


def test_monochrome1_is_inverted() -> None:
    values = [[0, 100], [200, 50]]
    normal = render(ct(values))
    inverted = render(ct(values, photometric="MONOCHROME1"))
    assert np.array_equal(inverted, 255 - normal)


def test_signed_pixels_with_slope() -> None:
    ds = ct([[-2000, 0], [2000, 1000]], RescaleSlope=0.5, RescaleIntercept=0)
    # HU -1000..1000, no window: full range.
    assert render(ds).tolist() == [[0, 128], [255, 191]]


def test_sigmoid_and_linear_exact() -> None:
    values = [[0, 100], [200, 100]]
    sigmoid = render(ct(values, WindowCenter=100, WindowWidth=50, VOILUTFunction="SIGMOID"))
    assert sigmoid[0, 1] == 128 and sigmoid[0, 0] < 5 and sigmoid[1, 0] > 250
    exact = render(ct(values, WindowCenter=100, WindowWidth=200, VOILUTFunction="LINEAR_EXACT"))
    assert exact.tolist() == [[0, 128], [255, 128]]


def test_invalid_window_in_the_file_falls_back_to_full_range() -> None:
    ds = ct([[0, 10], [20, 5]], WindowCenter=10, WindowWidth=0)
    assert rendering.window_of(ds) is None
    assert render(ds).tolist() == [[0, 128], [255, 64]]


def test_modality_lut_sequence() -> None:
    ds = image_dataset(np.array([[0, 1], [2, 3]], np.uint16), bits_stored=16)
    item = Dataset()
    item.add_new(0x00283002, "US", [4, 0, 16])  # LUTDescriptor
    item.ModalityLUTType = "HU"
    item.add_new(0x00283006, "US", [0, 1000, 3000, 4000])  # LUTData
    ds.ModalityLUTSequence = [item]
    ds = reread(ds)
    values = rendering.modality_values(np.array([0, 1, 2, 3], np.uint16), ds)
    assert values.tolist() == [0, 1000, 3000, 4000]
    assert render(ds).tolist() == [[0, 64], [191, 255]]


def test_voi_lut_sequence() -> None:
    ds = image_dataset(np.array([[0, 1], [2, 3]], np.uint16), bits_stored=16)
    item = Dataset()
    item.add_new(0x00283002, "US", [4, 0, 8])
    item.add_new(0x00283006, "US", [255, 0, 100, 200])
    ds.VOILUTSequence = [item]
    ds = reread(ds)
    assert render(ds).tolist() == [[255, 0], [100, 200]]


def test_per_frame_functional_groups() -> None:
    frames = np.array([[[0, 100]], [[0, 100]]], np.uint16)
    ds = image_dataset(frames, bits_stored=16)
    groups = []
    for center, intercept in ((50, 0), (1050, 1000)):
        voi, transform, group = Dataset(), Dataset(), Dataset()
        voi.WindowCenter, voi.WindowWidth = center, 100
        transform.RescaleSlope, transform.RescaleIntercept = 1, intercept
        group.FrameVOILUTSequence = [voi]
        group.PixelValueTransformationSequence = [transform]
        groups.append(group)
    ds.PerFrameFunctionalGroupsSequence = groups
    ds = reread(ds)
    assert rendering.window_of(ds, 1) == Window(1050.0, 100.0)
    assert rendering.rescale_of(ds, 1) == (1.0, 1000.0)
    assert render(ds, 0).tolist() == render(ds, 1).tolist() == [[0, 255]]


def test_float_and_32_bit_pixels_render_without_a_table() -> None:
    frame = np.array([[0, 1 << 20], [1 << 21, 1 << 19]], np.uint32)
    ds = image_dataset(frame)
    assert render(ds).tolist() == [[0, 128], [255, 64]]


def test_color_is_untouched_by_windowing() -> None:
    rgb = ramp((4, 4, 3), np.uint8, 0, 255)
    ds = image_dataset(rgb, WindowCenter=10, WindowWidth=2)
    info = image_info(ds)
    frame = decode_frame(ds)
    assert np.array_equal(rendering.preview(frame, ds, info), rgb)
    options = RenderOptions(window_center=10, window_width=2)
    assert np.array_equal(rendering.rendered(frame, ds, info, 0, options), rgb)


def test_sixteen_bit_color_is_scaled_to_eight() -> None:
    rgb = np.array([[[0, 4095, 2048]]], np.uint16)
    ds = image_dataset(rgb, bits_stored=12)
    info = image_info(ds)
    assert rendering.preview(decode_frame(ds), ds, info).tolist() == [[[0, 255, 128]]]


# -- resizing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ((None, None), (200, 100)),
        ((100, None), (100, 50)),
        ((None, 50), (100, 50)),
        ((100, 100), (100, 50)),
        ((400, 100), (200, 100)),
        ((0, 0), (200, 100)),
    ],
)
def test_target_size_keeps_the_aspect_ratio(
    box: tuple[int | None, int | None], expected: tuple[int, int]
) -> None:
    assert rendering.target_size(200, 100, *box) == expected


@pytest.mark.parametrize("smooth", [False, True])
def test_rendered_resizes(smooth: bool) -> None:
    ds = image_dataset(ramp((40, 80), np.uint16, 0, 4095), bits_stored=12)
    info = image_info(ds)
    options = RenderOptions(width=20, smooth=smooth)
    image = rendering.rendered(decode_frame(ds), ds, info, 0, options)
    assert image.shape == (10, 20) and image.dtype == np.uint8


def test_crop_to_a_region_keeps_at_least_a_pixel() -> None:
    image = np.arange(8 * 10, dtype=np.uint8).reshape(8, 10)
    assert np.array_equal(rendering.crop(image, (0.0, 0.0, 0.5, 0.25)), image[0:2, 0:5])
    assert np.array_equal(rendering.crop(image, (0.25, 0.5, 1.0, 1.0)), image[4:8, 2:10])
    assert rendering.crop(image, (0.99, 0.99, 1.0, 1.0)).shape == (1, 1)


def test_region_is_cropped_before_the_resize() -> None:
    ds = image_dataset(ramp((40, 80), np.uint16, 0, 4095), bits_stored=12)
    info = image_info(ds)
    options = RenderOptions(width=80, region=(0.0, 0.0, 0.5, 0.5))
    image = rendering.rendered(decode_frame(ds), ds, info, 0, options)
    assert image.shape == (40, 80)  # a 40 x 20 region, enlarged to the width asked


def test_annotations_are_burnt_where_asked() -> None:
    ds = image_dataset(np.zeros((128, 128), np.uint16), bits_stored=12)
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "P1"
    ds.Modality = "CT"
    ds.InstanceNumber = 3
    info = image_info(ds)
    frame = decode_frame(ds)
    plain = rendering.rendered(frame, ds, info, 0, RenderOptions())
    patient = rendering.rendered(frame, ds, info, 0, RenderOptions(annotation=("patient",)))
    technique = rendering.rendered(frame, ds, info, 0, RenderOptions(annotation=("technique",)))
    assert patient.shape == technique.shape == plain.shape
    # The patient's lines in the upper half, the technique's in the lower one.
    assert patient[:64].any() and not patient[64:].any()
    assert technique[64:].any() and not technique[:64].any()


# -- image-uint8/16/int16, numpy, Matlab --------------------------------------------------------


def test_truncation_to_each_type() -> None:
    frame = np.array([[-5, 300], [70000 // 2, 12]], np.int32)
    ds = image_dataset(np.zeros((2, 2), np.int16))
    info = image_info(ds)
    assert rendering.truncate(frame, info, np.uint8).tolist() == [[0, 255], [255, 12]]
    assert rendering.truncate(frame, info, np.uint16).tolist() == [[0, 300], [35000, 12]]
    assert rendering.truncate(frame, info, np.int16).tolist() == [[-5, 300], [32767, 12]]


def test_color_exists_in_eight_bits_only() -> None:
    ds = image_dataset(ramp((2, 2, 3), np.uint8, 0, 255))
    info = image_info(ds)
    frame = decode_frame(ds)
    assert np.array_equal(rendering.truncate(frame, info, np.uint8), frame)
    with pytest.raises(PharosError, match="Color") as error:
        rendering.truncate(frame, info, np.uint16)
    assert error.value.http_status == 415


@pytest.mark.parametrize(
    ("dtype", "rescale", "expected"),
    [
        (np.int16, False, np.int16),
        (np.uint16, False, np.uint16),
        (np.uint8, False, np.uint8),
        (np.int16, True, np.float32),
    ],
)
def test_numpy_frames(dtype: type, rescale: bool, expected: type) -> None:
    ds = image_dataset(np.array([[1, 2, 3]], dtype), RescaleSlope=2, RescaleIntercept=-1)
    info = image_info(ds)
    array = rendering.numpy_frame(decode_frame(ds), ds, info, 0, rescale)
    assert array.shape == (1, 3, 1) and array.dtype == np.dtype(expected)
    assert array[0, :, 0].tolist() == ([1, 3, 5] if rescale else [1, 2, 3])


def test_numpy_color_frame() -> None:
    rgb = ramp((2, 3, 3), np.uint8, 0, 255)
    ds = image_dataset(rgb)
    array = rendering.numpy_frame(decode_frame(ds), ds, image_info(ds), 0, rescale=True)
    assert array.shape == (2, 3, 3) and array.dtype == np.uint8


def test_matlab() -> None:
    ds = image_dataset(np.array([[1, -2], [3, 4]], np.int16))
    info = image_info(ds)
    assert rendering.matlab(decode_frame(ds), info) == "double([ 1 -2 ; 3 4 ])"
    rgb = np.arange(12, dtype=np.uint8).reshape(1, 4, 3)
    ds = image_dataset(rgb)
    text = rendering.matlab(decode_frame(ds), image_info(ds))
    assert text == ("double(permute(reshape([ 0 1 2 3 4 5 6 7 8 9 10 11 ], [ 3 4 1 ]), [ 3 2 1 ]))")


# -- encoders ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("array", "mode"),
    [
        (ramp((31, 17), np.uint8, 0, 255), "L"),
        (ramp((9, 13, 3), np.uint8, 0, 255), "RGB"),
        (ramp((11, 7), np.uint16, 0, 65535), "I;16"),
    ],
)
def test_png_round_trips_through_pillow(array: np.ndarray, mode: str) -> None:
    image = Image.open(io.BytesIO(image_formats.encode_png(array)))
    image.load()
    assert image.size == (array.shape[1], array.shape[0])
    assert image.mode.startswith(mode[0])
    assert np.array_equal(np.asarray(image).astype(array.dtype), array)


def test_int16_png_holds_twos_complement() -> None:
    array = np.array([[-1, 0, 32767, -32768]], np.int16)
    image = Image.open(io.BytesIO(image_formats.encode_png(array)))
    assert np.asarray(image).astype(np.uint16).view(np.int16).tolist() == array.tolist()


def test_jpeg() -> None:
    array = ramp((20, 30), np.uint8, 0, 255)
    small = image_formats.encode_jpeg(array, quality=10)
    large = image_formats.encode_jpeg(array, quality=100)
    assert Image.open(io.BytesIO(large)).size == (30, 20)
    assert len(small) < len(large)
    with pytest.raises(PharosError, match="8-bit") as error:
        image_formats.encode_jpeg(array.astype(np.uint16))
    assert error.value.http_status == 406


def test_pam() -> None:
    data = image_formats.encode_pam(np.array([[1, 258]], np.uint16))
    assert data == (
        b"P7\nWIDTH 2\nHEIGHT 1\nDEPTH 1\nMAXVAL 65535\nTUPLTYPE GRAYSCALE\nENDHDR\n"
        b"\x00\x01\x01\x02"
    )
    rgb = image_formats.encode_pam(np.zeros((1, 1, 3), np.uint8))
    assert b"DEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\n" in rgb


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, ImageFormat.PNG),
        ("", ImageFormat.PNG),
        ("image/jpeg", ImageFormat.JPEG),
        ("image/x-portable-arbitrarymap", ImageFormat.PAM),
        ("text/html,application/xhtml+xml,*/*;q=0.8", ImageFormat.PNG),
        ("image/webp, image/jpeg;q=0.9", ImageFormat.JPEG),
    ],
)
def test_negotiation(accept: str | None, expected: ImageFormat) -> None:
    assert negotiate(accept) is expected


def test_negotiation_refuses_what_it_cannot_send() -> None:
    with pytest.raises(PharosError, match="image/png") as error:
        negotiate("application/json")
    assert error.value.http_status == 406


@pytest.mark.parametrize("compress", [False, True])
def test_numpy_files(compress: bool) -> None:
    array = ramp((2, 3, 4, 1), np.int16, -5, 5)
    loaded = np.load(io.BytesIO(image_formats.numpy_file(array, compress)))
    result = loaded["arr_0"] if compress else loaded
    assert result.dtype == array.dtype and np.array_equal(result, array)
