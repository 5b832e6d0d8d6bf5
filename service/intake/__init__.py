"""Intake, the first step of the flow: studies arriving in Orthanc (C-STORE, uploads, STOW-RS)
and requests filed by users become consultations. Also who may send: facilities' AE titles
registered with Orthanc. Next in the flow: the worklist (service.worklist).
"""
