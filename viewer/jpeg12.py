"""A pydicom decoder plugin for 12-bit JPEG Extended (Process 2+4) frames, through GDCM.

pylibjpeg-libjpeg (the pinned decoder, ``viewer.frames.DECODERS``) refuses some real 12-bit
streams that dcmtk decodes: pydicom's own ``JPEG-lossy.dcm`` has a sequential scan whose
spectral selection is not 0..63, which libjpeg 9 rejects ("scan start must be zero and scan stop
must be 63") and dcmtk and GDCM only warn about. pydicom's GDCM plugin refuses every 12-bit
JPEG Extended stream up front, although GDCM carries a 12-bit IJG libjpeg and decodes this one
value for value as dcmtk's ``dcmdjpeg`` (tests/test_viewer_errors.py). This plugin is that GDCM
call without the refusal; ``viewer.frames`` uses it only when the pinned decoder fails.

The plugin interface is pydicom's (``is_available``, ``DECODER_DEPENDENCIES`` and the frame
function; pydicom's decoder plugin guide).
"""

from __future__ import annotations

from typing import Any

from pydicom.uid import JPEGExtended12Bit

LABEL = "gdcm-jpeg12"
DECODER_DEPENDENCIES = {JPEGExtended12Bit: ("gdcm>=3.0.10",)}


def is_available(uid: str) -> bool:
    """Whether GDCM is importable and ``uid`` is JPEG Extended (Process 2+4)."""
    try:
        import gdcm  # noqa: F401
    except ImportError:
        return False
    return uid == JPEGExtended12Bit


def decode_frame(src: bytes, runner: Any) -> bytes:
    """One encoded frame ``src`` decoded by GDCM; the runner gives the Image Pixel module."""
    import gdcm

    fragment = gdcm.Fragment()
    fragment.SetByteStringValue(src)
    fragments = gdcm.SequenceOfFragments.New()
    fragments.AddFragment(fragment)
    element = gdcm.DataElement(gdcm.Tag(0x7FE0, 0x0010))
    element.SetValue(fragments.__ref__())
    image = gdcm.Image()
    image.SetNumberOfDimensions(2)
    image.SetDimensions((runner.columns, runner.rows, 1))
    image.SetDataElement(element)
    kind = gdcm.PhotometricInterpretation.GetPIType(runner.photometric_interpretation)
    image.SetPhotometricInterpretation(gdcm.PhotometricInterpretation(kind))
    if runner.samples_per_pixel > 1:
        image.SetPlanarConfiguration(runner.planar_configuration)
    image.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.GetTSType(JPEGExtended12Bit)))
    stored = runner.bits_stored
    image.SetPixelFormat(
        gdcm.PixelFormat(
            runner.samples_per_pixel,
            runner.bits_allocated,
            stored,
            stored - 1,
            runner.pixel_representation,
        )
    )
    decoded = image.GetBuffer().encode("utf-8", "surrogateescape")
    if not decoded:
        raise ValueError("GDCM could not decode the JPEG Extended frame")
    return decoded
