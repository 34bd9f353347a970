"""Pure functions over DICOM data (pydicom datasets and bytes): no I/O, no database."""

from pydicom import config as _pydicom_config

# Real-world files carry invalid values; reading them must never warn or raise on the value
# itself. Pharos validates structure in `structure.py` and decodes values leniently.
_pydicom_config.settings.reading_validation_mode = _pydicom_config.IGNORE
