"""Pharos: a lightweight, RESTful DICOM server that speaks Orthanc's API."""

__version__ = "0.1.0"

# The Orthanc release whose REST API Pharos implements; Orthanc clients gate features on it.
ORTHANC_API_COMPATIBILITY = "1.10.1"
ORTHANC_API_VERSION = 16
