"""The modality worklist (DICOM MWL): open requests awaiting images, as Scheduled Procedure Steps.

teleread writes one worklist item file per such request (:mod:`.items`, :mod:`.folder`) into the
folder Orthanc's ModalityWorklists plugin answers worklist C-FIND from, on the DICOM port and AE
title modalities already send to; :mod:`.publisher` keeps the folder equal to the database.
docs/integration.md describes it for a hospital's IT team.
"""
