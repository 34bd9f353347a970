"""`pharos import`: bulk import of DICOM files, folders and archives, into a running server
(HTTP) or the local store."""
