"""Reports: authoring, signing, documents (PDF and DICOM), delivery and critical findings."""
