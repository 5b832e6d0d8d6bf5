"""DICOM concepts used across the flow, one module per concept: checking Part-10 files, the
C-STORE sender, a study's DICOM JSON metadata, and whether two records name the same patient.
"""
