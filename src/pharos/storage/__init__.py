"""The storage area: where attachment files (the DICOM files first of all) live."""
