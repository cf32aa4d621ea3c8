"""Pure DICOM code of the telemedecine app (no Django import): parsing and validation, upload containers,
de-identification, previews (dicomcore); network transports (dicomnet)."""
