"""The ways in over HTTP: Orthanc's REST API (`rest/`), later DICOMweb and the web UI."""
