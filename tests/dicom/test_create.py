"""Building new instances from JSON: the request, tags, PNG/JPEG/PDF content, the file."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset

from pharos.dicom import create
from pharos.dicom.parse import parse_instance
from pharos.model.errors import ErrorCode, PharosError


def image_bytes(array: np.ndarray, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **options)
    return buffer.getvalue()


def data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def gray(rows: int = 30, columns: int = 40) -> np.ndarray:
    return (np.add.outer(np.arange(rows) * 3, np.arange(columns) * 5) % 256).astype(np.uint8)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares its size but holds no pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data).to_bytes(4, "big")
        return len(data).to_bytes(4, "big") + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def built(content: create.Content, **tags: Any) -> Dataset:
    """A new instance with `content`, written and read back."""
    ds = create.new_dataset("ISO_IR 192")
    create.inject_tags(ds, tags, True, "", False)
    create.embed(ds, content)
    return pydicom.dcmread(io.BytesIO(create.to_file(ds)))


def refused(code: ErrorCode, call: Any, *args: Any) -> str:
    with pytest.raises(PharosError) as caught:
        call(*args)
    assert caught.value.code is code, caught.value
    assert caught.value.details
    return caught.value.details


# -- the request ---------------------------------------------------------------------------


def test_request_fields_are_checked() -> None:
    uri = data_uri("image/png", image_bytes(gray(), "PNG"))
    request = create.parse_request({"Tags": {}, "Content": uri, "Force": True, "Parent": "x"})
    assert isinstance(request.content, create.Content)
    assert request.content.mime == "image/png" and request.force and request.parent == "x"
    assert request.interpret_binary and request.private_creator == ""

    bad = ErrorCode.BAD_REQUEST
    refused(bad, create.parse_request, [])
    refused(bad, create.parse_request, {"Content": uri})  # no Tags (Orthanc's old V1 format)
    refused(bad, create.parse_request, {"Tags": []})
    refused(bad, create.parse_request, {"Tags": {}, "Force": "yes"})
    refused(bad, create.parse_request, {"Tags": {}, "InterpretBinaryTags": 1})
    refused(bad, create.parse_request, {"Tags": {}, "Parent": 12})
    refused(bad, create.parse_request, {"Tags": {}, "PrivateCreator": 1})
    refused(bad, create.parse_request, {"Tags": {}, "Content": 3})
    refused(bad, create.parse_request, {"Tags": {}, "Content": "iVBORw0KGgo="})
    refused(bad, create.parse_request, {"Tags": {}, "Content": "data:image/png;base64,@@@"})
    refused(bad, create.parse_request, {"Tags": {}, "Content": [{"Tags": {}}]})
    refused(bad, create.parse_request, {"Tags": {}, "Content": [{"Content": uri, "Tags": 1}]})


def test_series_content_takes_strings_and_objects() -> None:
    uri = data_uri("image/png", image_bytes(gray(), "PNG"))
    request = create.parse_request(
        {"Tags": {}, "Content": [uri, {"Content": uri, "Tags": {"ImageComments": "2"}}]}
    )
    assert isinstance(request.content, list) and len(request.content) == 2
    assert request.content[1].tags == {"ImageComments": "2"}
    # An empty array is no content, as in Orthanc.
    assert create.parse_request({"Tags": {}, "Content": []}).content is None


def test_data_uri() -> None:
    assert create.decode_data_uri("data:Image/PNG;base64,AAEC", "x") == create.Content(
        "image/png", b"\0\1\2"
    )
    assert create.decode_data_uri("data:/application/pdf;base64,", "x").data == b""
    refused(ErrorCode.BAD_REQUEST, create.decode_data_uri, "data:image/png,AAEC", "x")


# -- tags ------------------------------------------------------------------------------------


def test_tags_by_keyword_or_number() -> None:
    assert create.parse_tag("PatientName") == 0x00100010
    assert create.parse_tag("0010,0020") == 0x00100020
    assert create.parse_tag("7fe0,0010") == 0x7FE00010
    refused(ErrorCode.UNKNOWN_DICOM_TAG, create.parse_tag, "NoSuchKeyword")
    refused(ErrorCode.UNKNOWN_DICOM_TAG, create.parse_tag, "0010-0010")


def test_new_dataset_has_identifiers_and_secondary_capture() -> None:
    ds = create.new_dataset("ISO_IR 100")
    assert ds.SpecificCharacterSet == "ISO_IR 100"
    assert ds.SOPClassUID == create.SECONDARY_CAPTURE
    assert ds.PatientID and ds.StudyInstanceUID and ds.SeriesInstanceUID and ds.SOPInstanceUID
    other = create.new_dataset("ISO_IR 100")
    assert other.StudyInstanceUID != ds.StudyInstanceUID and other.PatientID != ds.PatientID
    copy = create.new_instance_of(ds)
    assert copy.SeriesInstanceUID == ds.SeriesInstanceUID
    assert copy.SOPInstanceUID != ds.SOPInstanceUID


def test_character_sets() -> None:
    assert create.character_set("Latin1") == "ISO_IR 100"
    assert create.character_set("Utf8") == "ISO_IR 192"
    assert create.check_character_set("ISO_IR 192") == "ISO_IR 192"
    refused(ErrorCode.PARAMETER_OUT_OF_RANGE, create.check_character_set, "KLINGON")
    refused(ErrorCode.PARAMETER_OUT_OF_RANGE, create.check_character_set, 5)


def test_dates_follow_what_is_created() -> None:
    now = datetime(2024, 2, 29, 13, 5, 9, tzinfo=UTC)
    ds = Dataset()
    create.set_dates(ds, now, new_series=True, new_study=False)
    assert ds.ContentDate == "20240229" and ds.ContentTime == "130509"
    assert ds.InstanceCreationDate == "20240229" and ds.AcquisitionTime == "130509"
    assert ds.SeriesDate == "20240229" and "StudyDate" not in ds


def test_inject_values_of_every_kind() -> None:
    ds = create.new_dataset("ISO_IR 192")
    tags = {
        "PatientName": "Müller^Jürgen",
        "PatientID": "given",  # replaceable without Force, as in Orthanc
        "Rows": "12",
        "0018,0050": 2.5,  # a JSON number becomes its text
        "PixelSpacing": "0.5\\0.25",
        "ImageComments": None,
        "ReferencedSeriesSequence": [{"SeriesInstanceUID": "1.2.3"}, {"0020,000e": "1.2.4"}],
        "0009,0010": "ACME 1.0",
        "ImagesInAcquisition": "4",
        "IconImageSequence": [],
        "RedPaletteColorLookupTableData": "data:application/octet-stream;base64,AAECAw==",
        "StudyDescription": "data:application/octet-stream;base64,aMOpbGxv",  # "héllo"
    }
    create.inject_tags(ds, tags, True, "", False)
    read = pydicom.dcmread(io.BytesIO(create.to_file(ds)))
    assert read.PatientName == "Müller^Jürgen" and read.PatientID == "given"
    assert read.Rows == 12 and float(read.SliceThickness) == 2.5
    assert [float(v) for v in read.PixelSpacing] == [0.5, 0.25]
    assert read.ImageComments in (None, "")
    assert [item.SeriesInstanceUID for item in read.ReferencedSeriesSequence] == ["1.2.3", "1.2.4"]
    assert read[0x00090010].value == "ACME 1.0"
    assert len(read.IconImageSequence) == 0
    assert read.RedPaletteColorLookupTableData == b"\0\1\2\3"
    assert read.StudyDescription == "héllo"


def test_binary_values_kept_as_text_when_asked() -> None:
    ds = create.new_dataset("ISO_IR 192")
    text = "data:application/octet-stream;base64,aMOpbGxv"
    create.inject_tags(ds, {"StudyDescription": text}, False, "", False)
    assert ds.StudyDescription == text


def test_private_tags_need_a_creator() -> None:
    ds = create.new_dataset("ISO_IR 192")
    create.inject_tags(ds, {"0019,1001": "hello", "0019,1002": "x"}, True, "Lunit", False)
    assert ds[0x00190010].value == "Lunit" and ds[0x00191001].value == "hello"
    refused(
        ErrorCode.BAD_REQUEST,
        create.inject_tags,
        create.new_dataset("ISO_IR 192"),
        {"0019,1001": "x"},
        True,
        "",
        False,
    )
    # A block of another creator is not taken over.
    refused(ErrorCode.BAD_REQUEST, create.inject_tags, ds, {"0019,1003": "x"}, True, "Other", True)


@pytest.mark.parametrize(
    ("tags", "code"),
    [
        ({"NoSuchTag": "x"}, ErrorCode.UNKNOWN_DICOM_TAG),
        ({"0010,9999": "x"}, ErrorCode.UNKNOWN_DICOM_TAG),
        ({"PixelData": "x"}, ErrorCode.BAD_REQUEST),
        ({"StudyInstanceUID": "1.2.3"}, ErrorCode.BAD_REQUEST),  # needs Force
        ({"SOPInstanceUID": "1.2.3"}, ErrorCode.BAD_REQUEST),
        ({"SOPClassUID": "1.2.3"}, ErrorCode.BAD_REQUEST),
        ({"PatientName": ["a"]}, ErrorCode.BAD_REQUEST),
        ({"PatientName": {"a": 1}}, ErrorCode.BAD_REQUEST),
        ({"PatientName": True}, ErrorCode.BAD_REQUEST),
        ({"ReferencedSeriesSequence": "x"}, ErrorCode.BAD_REQUEST),
        ({"ReferencedSeriesSequence": ["x"]}, ErrorCode.BAD_REQUEST),
        ({"ReferencedSeriesSequence": [{"Nope": "x"}]}, ErrorCode.UNKNOWN_DICOM_TAG),
        ({"Rows": "twelve"}, ErrorCode.BAD_REQUEST),
        ({"StudyDescription": "data:application/octet-stream;base64,/w=="}, ErrorCode.BAD_REQUEST),
    ],
)
def test_bad_tags_are_refused(tags: dict[str, Any], code: ErrorCode) -> None:
    refused(code, create.inject_tags, create.new_dataset("ISO_IR 192"), tags, True, "", False)


def test_force_replaces_identifiers() -> None:
    ds = create.new_dataset("ISO_IR 192")
    create.inject_tags(ds, {"StudyInstanceUID": "1.2.3", "SOPClassUID": "1.2.4"}, True, "", True)
    assert ds.StudyInstanceUID == "1.2.3" and ds.SOPClassUID == "1.2.4"


# -- content ---------------------------------------------------------------------------------


def test_png_gray_8_bits() -> None:
    pixels = gray()
    ds = built(create.Content("image/png", image_bytes(pixels, "PNG")))
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert (ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsStored) == (30, 40, 1, 8)
    assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.PixelRepresentation == 0
    assert np.array_equal(ds.pixel_array, pixels)


def test_png_gray_16_bits() -> None:
    pixels = (np.arange(20 * 10, dtype=np.uint16).reshape(20, 10) * 300).astype(np.uint16)
    ds = built(create.Content("image/png", image_bytes(pixels, "PNG")))
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (16, 16, 15)
    assert ds["PixelData"].VR == "OW"
    assert np.array_equal(ds.pixel_array, pixels)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P"])
def test_png_color_becomes_rgb(mode: str) -> None:
    rgb = np.stack([gray(), gray()[::-1], 255 - gray()], axis=-1)
    image = Image.fromarray(rgb)
    if mode == "RGBA":
        image = image.convert("RGBA")
        image.putalpha(7)  # the alpha channel is dropped, as Orthanc drops it
    elif mode == "P":
        image = image.quantize(colors=16)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    ds = built(create.Content("image/png", buffer.getvalue()))
    assert ds.SamplesPerPixel == 3 and ds.PhotometricInterpretation == "RGB"
    assert ds.PlanarConfiguration == 0
    assert np.array_equal(ds.pixel_array, np.asarray(image.convert("RGB")))


def test_jpeg_baseline_is_kept_as_is() -> None:
    rgb = np.stack([gray(), gray()[::-1], 255 - gray()], axis=-1)
    data = image_bytes(rgb, "JPEG", quality=90)
    ds = built(create.Content("image/jpeg", data))
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    assert ds.PhotometricInterpretation == "YBR_FULL_422" and ds.LossyImageCompression == "01"
    frame = next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
    assert frame.rstrip(b"\0") == data.rstrip(b"\0")
    # Parsed by the store path, decoded like any JPEG baseline file.
    parse_instance(create.to_file(ds), "Latin1")
    assert ds.pixel_array.shape == (30, 40, 3)


def test_jpeg_gray_and_444() -> None:
    ds = built(create.Content("image/jpeg", image_bytes(gray(), "JPEG")))
    assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.SamplesPerPixel == 1
    rgb = np.stack([gray()] * 3, axis=-1)
    ds = built(create.Content("image/jpeg", image_bytes(rgb, "JPEG", subsampling=0)))
    assert ds.PhotometricInterpretation == "YBR_FULL"


def test_progressive_jpeg_is_stored_as_pixels() -> None:
    data = image_bytes(gray(), "JPEG", progressive=True)
    ds = built(create.Content("image/jpeg", data))
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert np.array_equal(ds.pixel_array, np.asarray(Image.open(io.BytesIO(data))))


def test_pdf_is_encapsulated() -> None:
    pdf = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF"  # odd length: padded
    ds = built(create.Content("application/pdf", pdf))
    assert ds.SOPClassUID == create.ENCAPSULATED_PDF and ds.Modality == "OT"
    assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert ds.EncapsulatedDocumentLength == len(pdf)
    assert ds.EncapsulatedDocument[: len(pdf)] == pdf
    assert "PixelData" not in ds


@pytest.mark.parametrize(
    ("mime", "data", "code"),
    [
        ("image/gif", b"GIF89a", ErrorCode.BAD_REQUEST),
        ("text/plain", b"hello", ErrorCode.BAD_REQUEST),
        ("image/png", b"\x89PNG\r\n\x1a\nbroken", ErrorCode.BAD_FILE_FORMAT),
        ("image/png", image_bytes(gray(), "JPEG"), ErrorCode.BAD_FILE_FORMAT),
        ("image/png", png_header_only(60_000, 60_000), ErrorCode.BAD_FILE_FORMAT),
        ("image/png", png_header_only(30, 30), ErrorCode.BAD_FILE_FORMAT),  # no pixel data
        ("image/jpeg", b"\xff\xd8\xff\xc0\x00\x11broken", ErrorCode.BAD_FILE_FORMAT),
        ("image/jpeg", b"not a jpeg", ErrorCode.BAD_FILE_FORMAT),
        ("application/pdf", b"<html>", ErrorCode.BAD_FILE_FORMAT),
    ],
)
def test_bad_content_is_refused(mime: str, data: bytes, code: ErrorCode) -> None:
    refused(code, create.embed, create.new_dataset("ISO_IR 192"), create.Content(mime, data))
