"""New DICOM instances built from JSON, as Orthanc's `/tools/create-dicom` builds them.

Tags are given by keyword or "gggg,eeee" (sequences as arrays of objects); the content is a
data URI: a PNG (stored as native pixels), a JPEG (kept as is, JPEG baseline), or a PDF
(Encapsulated PDF Storage). Everything here is pure: the service adds parents and storing.
"""

from __future__ import annotations

import base64
import binascii
import copy
import io
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from PIL import Image, JpegImagePlugin, UnidentifiedImageError
from pydicom.datadict import dictionary_VR, private_dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID, ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid

from pharos.dicom.charset import CHARACTER_SET_TERMS
from pharos.model.errors import ErrorCode, PharosError

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
IMPLEMENTATION_CLASS_UID = "1.2.826.0.1.3680043.8.498.1"

PIXEL_DATA = 0x7FE00010
SPECIFIC_CHARACTER_SET = 0x00080005
# Orthanc lets a request set these although a new file already has them (the identifiers
# and the SOP class need `Force`, as does any tag copied from a parent).
_ALWAYS_SETTABLE = frozenset(
    Tag(keyword)
    for keyword in (
        "PatientID",
        "AcquisitionDate",
        "AcquisitionTime",
        "ContentDate",
        "ContentTime",
        "InstanceCreationDate",
        "InstanceCreationTime",
        "SeriesDate",
        "SeriesTime",
        "StudyDate",
        "StudyTime",
    )
)
_KNOWN_TERMS = frozenset(CHARACTER_SET_TERMS.values()) | {"ISO 2022 IR 6", "GBK", "ISO 2022 IR 100"}
_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_INTEGER_VRS = frozenset({"US", "SS", "UL", "SL", "UV", "SV"})
_FLOAT_VRS = frozenset({"FL", "FD"})
_DATA_URI = re.compile(r"^data:/?([^;,]*);base64,([A-Za-z0-9+/=\s]*)$", re.DOTALL)
_HEX_TAG = re.compile(r"^\s*([0-9A-Fa-f]{4}),([0-9A-Fa-f]{4})\s*$")
_SOF_MARKERS = frozenset({*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), 0xCD})
_SOF_MARKERS |= {0xCE, 0xCF}
# What Pillow raises on a broken or hostile image (a decompression bomb included).
_UNDECODABLE = (
    UnidentifiedImageError,
    Image.DecompressionBombError,
    OSError,
    ValueError,
    SyntaxError,
)
_MAX_ITEMS = 10_000  # a bound on sequence items and series sizes from one request


def bad_request(details: str) -> PharosError:
    return PharosError(ErrorCode.BAD_REQUEST, details)


@dataclass(frozen=True, slots=True)
class Content:
    """A decoded data URI."""

    mime: str
    data: bytes


@dataclass(frozen=True, slots=True)
class SeriesItem:
    content: Content
    tags: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """The body of `POST /tools/create-dicom`, checked."""

    tags: dict[str, Any]
    content: Content | list[SeriesItem] | None
    parent: str | None
    force: bool
    interpret_binary: bool
    private_creator: str


def parse_request(body: Any) -> CreateRequest:
    """Orthanc's V2 request (with `Tags`); the fields are type-checked here, the tags when
    they are applied."""
    if not isinstance(body, dict):
        raise bad_request("The body must be a JSON object")
    tags = body.get("Tags")
    if not isinstance(tags, dict):
        raise bad_request('"Tags" must be a JSON object of DICOM tags (keyword or "gggg,eeee")')
    parent = body.get("Parent")
    if parent is not None and not isinstance(parent, str):
        raise bad_request('"Parent" must be the Orthanc identifier of a patient, study or series')
    creator = body.get("PrivateCreator", "")
    if not isinstance(creator, str):
        raise bad_request('"PrivateCreator" must be a string')
    content: Content | list[SeriesItem] | None = None
    raw = body.get("Content")
    if isinstance(raw, list):
        if len(raw) > _MAX_ITEMS:
            raise bad_request(f'"Content" has more than {_MAX_ITEMS} items')
        content = [_series_item(item, i) for i, item in enumerate(raw)] or None
    elif raw is not None:
        content = decode_data_uri(raw, '"Content"')
    return CreateRequest(
        tags=tags,
        content=content,
        parent=parent,
        force=_flag(body, "Force", False),
        interpret_binary=_flag(body, "InterpretBinaryTags", True),
        private_creator=creator,
    )


def _flag(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise bad_request(f'"{name}" must be true or false')
    return value


def _series_item(item: Any, index: int) -> SeriesItem:
    where = f'"Content"[{index}]'
    if isinstance(item, dict):
        if "Content" not in item:
            raise bad_request(f'{where} has no "Content" (each item needs its data URI)')
        tags = item.get("Tags", {})
        if not isinstance(tags, dict):
            raise bad_request(f'{where}."Tags" must be a JSON object')
        return SeriesItem(decode_data_uri(item["Content"], f"{where}.Content"), tags)
    return SeriesItem(decode_data_uri(item, where), {})


def decode_data_uri(value: Any, where: str) -> Content:
    """`data:<mime>;base64,<data>`, as Orthanc's Toolbox::DecodeDataUriScheme reads it."""
    if not isinstance(value, str):
        raise bad_request(f"{where} must be a data URI string (data:<mime>;base64,...)")
    match = _DATA_URI.match(value)
    if match is None:
        raise bad_request(f"{where} is not a base64 data URI (data:<mime>;base64,...)")
    try:
        data = base64.b64decode(re.sub(r"\s+", "", match.group(2)), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad_request(f"{where}: invalid base64 data: {exc}") from None
    return Content(match.group(1).strip().lower(), data)


# -- the new dataset -------------------------------------------------------------------------


def character_set(encoding: str) -> str:
    """The Specific Character Set of an Orthanc encoding name (DefaultEncoding)."""
    return CHARACTER_SET_TERMS.get(encoding, "ISO_IR 100")


def check_character_set(value: Any) -> str:
    if not isinstance(value, str) or value.strip() not in _KNOWN_TERMS:
        raise PharosError(
            ErrorCode.PARAMETER_OUT_OF_RANGE, f"Unknown specific character set: {value!r}"
        )
    return value.strip()


def new_dataset(charset: str) -> Dataset:
    """An empty Secondary Capture instance with new identifiers (Orthanc's ParsedDicomFile)."""
    ds = Dataset()
    ds.SpecificCharacterSet = charset
    ds.PatientID = str(uuid.uuid4())
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.SOPClassUID = SECONDARY_CAPTURE
    return ds


def set_dates(ds: Dataset, now: datetime, new_series: bool, new_study: bool) -> None:
    """Orthanc's time stamps (UTC): instance always, series and study when created here."""
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    prefixes = ["Acquisition", "Content", "InstanceCreation"]
    prefixes += ["Series"] * new_series + ["Study"] * new_study
    for prefix in prefixes:
        setattr(ds, f"{prefix}Date", date)
        setattr(ds, f"{prefix}Time", time)


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_instance_of(base: Dataset) -> Dataset:
    """A copy of `base` with its own SOP Instance UID (one instance of a created series)."""
    ds = copy.deepcopy(base)
    ds.SOPInstanceUID = generate_uid()
    return ds


# -- tags ----------------------------------------------------------------------------------


def parse_tag(name: str) -> BaseTag:
    """A keyword or "gggg,eeee"; Orthanc's UnknownDicomTag otherwise."""
    match = _HEX_TAG.match(name)
    if match is not None:
        return Tag(int(match.group(1), 16), int(match.group(2), 16))
    number = tag_for_keyword(name.strip())
    if number is None:
        raise PharosError(ErrorCode.UNKNOWN_DICOM_TAG, f"Unknown DICOM tag: {name!r}")
    return Tag(number)


def inject_tags(
    ds: Dataset,
    tags: dict[str, Any],
    interpret_binary: bool,
    private_creator: str,
    force: bool,
) -> None:
    """Add the request's tags. Without `force`, a tag the new file already has (identifiers,
    SOP class, tags copied from the parent) cannot be replaced, as in Orthanc."""
    for name, value in tags.items():
        tag = parse_tag(name)
        if tag == SPECIFIC_CHARACTER_SET:
            continue  # chosen before the dataset was created
        if tag == PIXEL_DATA:
            raise bad_request('Pixel data cannot be given in "Tags": use "Content"')
        if not force and tag not in _ALWAYS_SETTABLE and tag in ds:
            raise bad_request(
                f"Tag {name!r} is set by the server (identifiers, SOP class, or copied from the "
                'parent): use "Force": true to replace it'
            )
        ds[tag] = _element(tag, value, interpret_binary, private_creator, ds, depth=0)


def _element(
    tag: BaseTag, value: Any, interpret_binary: bool, creator: str, ds: Dataset, depth: int
) -> DataElement:
    name = f"({tag.group:04X},{tag.element:04X})"
    vr = _vr_of(tag, creator, ds, value)
    if vr == "SQ":
        if not isinstance(value, list):
            raise bad_request(f"Tag {name} is a sequence: its value must be an array of objects")
        if depth > 16 or len(value) > _MAX_ITEMS:
            raise bad_request(f"Sequence {name} is nested too deeply or has too many items")
        items = []
        for item in value:
            if not isinstance(item, dict):
                raise bad_request(f"The items of sequence {name} must be JSON objects")
            child = Dataset()
            for key, member in item.items():
                child_tag = parse_tag(key)
                child[child_tag] = _element(
                    child_tag, member, interpret_binary, creator, child, depth + 1
                )
            items.append(child)
        return DataElement(tag, vr, Sequence(items))
    if isinstance(value, list | dict | bool):
        raise bad_request(f"Tag {name} is not a sequence: its value must be a string")
    if value is None:
        return DataElement(tag, vr, None)
    text = value if isinstance(value, str) else str(value)
    data: bytes | None = None
    if interpret_binary and text.startswith("data:"):
        data = decode_data_uri(text, f"Tag {name}").data
    if vr in _BINARY_VRS:
        payload = data if data is not None else text.encode("utf-8")
        return DataElement(tag, vr, payload + b"\0" * (len(payload) % 2))
    if data is not None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise bad_request(f"Tag {name} has VR {vr}: its binary value must be UTF-8") from None
    return DataElement(tag, vr, typed_value(text, vr, name))


def typed_value(text: str, vr: str, name: str) -> Any:
    """The value of a tag given as text (numbers and tags of numeric VRs parsed); 400 if bad."""
    if vr not in _INTEGER_VRS and vr not in _FLOAT_VRS and vr != "AT":
        return text
    parts = [part.strip() for part in text.split("\\") if part.strip()]
    try:
        if vr in _INTEGER_VRS:
            values: list[Any] = [int(part) for part in parts]
        elif vr in _FLOAT_VRS:
            values = [float(part) for part in parts]
        else:
            values = [parse_tag(part) for part in parts]
    except (ValueError, PharosError):
        raise bad_request(f"Tag {name} has VR {vr}: {text!r} is not a valid value") from None
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def _vr_of(tag: BaseTag, creator: str, ds: Dataset, value: Any) -> str:
    if not tag.is_private:
        try:
            return str(dictionary_VR(tag)).split(" or ")[0]
        except KeyError:
            raise PharosError(
                ErrorCode.UNKNOWN_DICOM_TAG, f"Unknown DICOM tag: {tag.group:04x},{tag.element:04x}"
            ) from None
    if tag.is_private_creator:
        return "LO"
    if not creator:
        raise bad_request(
            f"Private tag {tag.group:04x},{tag.element:04x} needs a private creator: "
            'give "PrivateCreator"'
        )
    _reserve_block(ds, tag, creator)
    try:
        return str(private_dictionary_VR(tag, creator)).split(" or ")[0]
    except KeyError:
        if isinstance(value, list):
            return "SQ"
        return "UN" if isinstance(value, str) and value.startswith("data:") else "LO"


def _reserve_block(ds: Dataset, tag: BaseTag, creator: str) -> None:
    """The private creator element of the tag's block: added, or checked to be `creator`."""
    slot = Tag(tag.group, tag.element >> 8)
    if tag.element >> 8 < 0x10:
        raise bad_request(f"Private tag {tag.group:04x},{tag.element:04x} has no private block")
    if slot in ds:
        if str(ds[slot].value).strip() != creator:
            raise bad_request(
                f"Private block {slot.group:04x},{slot.element:04x} belongs to "
                f"{ds[slot].value!r}, not to {creator!r}"
            )
        return
    ds.add_new(slot, "LO", creator)


# -- content -----------------------------------------------------------------------------------


def embed(ds: Dataset, content: Content) -> None:
    """Orthanc's EmbedContent: a PNG or JPEG image, or a PDF document."""
    if content.mime == "image/png":
        _embed_pixels(ds, _decode_image(content.data, "PNG"))
    elif content.mime in ("image/jpeg", "image/jpg"):
        _embed_jpeg(ds, content.data)
    elif content.mime == "application/pdf":
        _embed_pdf(ds, content.data)
    else:
        raise bad_request(
            f"Unsupported MIME type for the content of a new DICOM file: {content.mime!r} "
            "(image/png, image/jpeg or application/pdf)"
        )


def _decode_image(data: bytes, kind: str) -> np.ndarray:
    """Pixels of a PNG (or a JPEG that cannot be kept as is): gray 8/16 bits, or RGB."""
    try:
        with Image.open(io.BytesIO(data), formats=[kind]) as image:
            image.load()
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(image)
                if array.dtype != np.uint16:
                    array = np.clip(array, 0, 65535).astype(np.uint16)
                return array
            if image.mode in ("1", "L", "LA"):
                return np.asarray(image.convert("L"))
            return np.asarray(image.convert("RGB"))  # RGBA loses its alpha, as in Orthanc
    except _UNDECODABLE as exc:
        raise PharosError(
            ErrorCode.BAD_FILE_FORMAT, f"Cannot decode the {kind} image: {exc}"
        ) from None


def _embed_pixels(ds: Dataset, array: np.ndarray) -> None:
    color = array.ndim == 3
    bits = array.dtype.itemsize * 8
    _pixel_module(ds, array.shape[0], array.shape[1], 3 if color else 1, bits)
    ds.PhotometricInterpretation = "RGB" if color else "MONOCHROME2"
    ds.PixelData = np.ascontiguousarray(array).astype(f"<u{array.dtype.itemsize}").tobytes()
    ds["PixelData"].VR = "OW" if bits == 16 else "OB"
    ds.file_meta = _file_meta(ds, ExplicitVRLittleEndian)


def _pixel_module(ds: Dataset, rows: int, columns: int, samples: int, bits: int) -> None:
    ds.SamplesPerPixel = samples
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if samples == 3:
        ds.PlanarConfiguration = 0
    elif "PlanarConfiguration" in ds:
        del ds.PlanarConfiguration


def _embed_jpeg(ds: Dataset, data: bytes) -> None:
    """A baseline JPEG is encapsulated as it is (no recompression); other processes
    (progressive, 12-bit...) are decoded and stored as native pixels."""
    if _start_of_frame(data) != 0xC0:
        _embed_pixels(ds, _decode_image(data, "JPEG"))
        return
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
            image.load()  # an undecodable codestream is refused now, not at display time
            mode, size = image.mode, image.size
            sampling = JpegImagePlugin.get_sampling(image)
            adobe_rgb = image.info.get("adobe_transform") == 0
    except _UNDECODABLE as exc:
        raise PharosError(
            ErrorCode.BAD_FILE_FORMAT, f"Cannot decode the JPEG image: {exc}"
        ) from None
    if mode not in ("L", "RGB"):
        raise PharosError(
            ErrorCode.BAD_FILE_FORMAT, f"Unsupported JPEG color model {mode} (gray or color only)"
        )
    color = mode == "RGB"
    _pixel_module(ds, size[1], size[0], 3 if color else 1, 8)
    if not color:
        ds.PhotometricInterpretation = "MONOCHROME2"
    elif adobe_rgb:
        ds.PhotometricInterpretation = "RGB"
    else:
        ds.PhotometricInterpretation = "YBR_FULL" if sampling == 0 else "YBR_FULL_422"
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    ds.PixelData = encapsulate([data])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta = _file_meta(ds, JPEGBaseline8Bit)


def _start_of_frame(data: bytes) -> int | None:
    """The SOFn marker of a JPEG codestream (0xC0: baseline), None if there is none."""
    if data[:2] != b"\xff\xd8":
        return None
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:
            position += 1  # fill byte
            continue
        if marker in _SOF_MARKERS:
            return marker
        if marker in (0xD9, 0xDA):
            return None  # end of image, or scan data before any frame header
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        position += 2 + length
    return None


def _embed_pdf(ds: Dataset, data: bytes) -> None:
    if not data.startswith(b"%PDF-"):
        raise PharosError(
            ErrorCode.BAD_FILE_FORMAT, "The content is not a PDF document (no %PDF- header)"
        )
    ds.SOPClassUID = ENCAPSULATED_PDF
    ds.Modality = "OT"
    ds.ConversionType = "WSD"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(data)
    ds.add_new(0x00420011, "OB", data + b"\0" * (len(data) % 2))  # EncapsulatedDocument
    ds.file_meta = _file_meta(ds, ExplicitVRLittleEndian)


# -- the file ----------------------------------------------------------------------------------


def _file_meta(ds: Dataset, syntax: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(str(ds.SOPClassUID))
    meta.MediaStorageSOPInstanceUID = UID(str(ds.SOPInstanceUID))
    meta.TransferSyntaxUID = UID(syntax)
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    return meta


def to_file(ds: Dataset) -> bytes:
    """The Part 10 file: explicit VR little endian unless the pixels are a JPEG."""
    meta = getattr(ds, "file_meta", None)
    syntax = (
        str(meta.TransferSyntaxUID)
        if meta is not None and "TransferSyntaxUID" in meta
        else ExplicitVRLittleEndian
    )
    ds.file_meta = _file_meta(ds, syntax)
    buffer = io.BytesIO()
    try:
        ds.save_as(buffer, enforce_file_format=True, little_endian=True, implicit_vr=False)
    except (ValueError, TypeError, OverflowError) as exc:
        raise bad_request(f"Cannot write the new DICOM file: {exc}") from None
    return buffer.getvalue()
