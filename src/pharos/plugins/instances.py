"""Build what instance hooks receive from the received bytes, only when a plugin wants it."""

from __future__ import annotations

import io
from typing import Any

import pydicom
from pydicom import Dataset

from pharos.dicom.orthanc_json import TagFormat, dataset_to_json
from pharos.plugins.types import IncomingInstance


def read_dataset(data: bytes) -> Dataset:
    """The dataset without its pixel data (plugins look at tags; the bytes stay available)."""
    return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)


def simplified_tags(data: bytes, default_encoding: str = "Latin1") -> dict[str, Any]:
    """Orthanc's /instances/{id}/simplified-tags of the file `data`."""
    return dataset_to_json(
        read_dataset(data), TagFormat.SIMPLIFY, default_encoding=default_encoding
    )


def incoming_instance(
    data: bytes, origin: dict[str, str], default_encoding: str = "Latin1"
) -> IncomingInstance:
    dataset = read_dataset(data)
    tags = dataset_to_json(dataset, TagFormat.SIMPLIFY, default_encoding=default_encoding)
    return IncomingInstance(dataset=dataset, simplified_tags=tags, origin=origin, data=data)
