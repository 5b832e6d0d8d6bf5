"""Decoder benchmark: every installed pydicom plugin per transfer syntax, time and agreement.

Run from the repository root::

    .venv/bin/python bench/decoders.py [--repeat 20]

A synthetic 512x512 CT slice is compressed into each syntax pydicom can encode (RLE, JPEG-LS
lossless and near-lossless, JPEG 2000 lossless and lossy); JPEG baseline and lossless come from
pydicom's own test files. Each plugin decodes the same bytes; the median time is printed beside
whether its samples equal the first plugin's. The pins in ``viewer.frames.DECODERS`` follow this
table (the fastest of the plugins that agree). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pydicom
from pydicom.pixels import pixel_array
from pydicom.uid import (
    JPEG2000,
    JPEG2000Lossless,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.demo.synthetic import StudySpec, dataset_bytes, make_study  # noqa: E402
from viewer.frames import DECODERS  # noqa: E402

PLUGINS = ("pylibjpeg", "pyjpegls", "gdcm", "pillow", "pydicom")
TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def samples() -> list[tuple[str, str, bytes]]:
    raw = dataset_bytes(make_study(StudySpec("P", "A^B", "CT", "HEAD", rows=512))[0])
    out = []
    for syntax, options in (
        (RLELossless, {}),
        (JPEGLSLossless, {}),
        (JPEGLSNearLossless, {"jls_error": 2}),
        (JPEG2000Lossless, {}),
        (JPEG2000, {"j2k_cr": [20]}),
    ):
        ds = pydicom.dcmread(io.BytesIO(raw))
        ds.compress(syntax, generate_instance_uid=False, **options)
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        out.append((syntax, "CT 512x512", buffer.getvalue()))
    for name in ("SC_rgb_jpeg_dcmtk.dcm", "JPGExtended.dcm", "JPEG-LL.dcm"):
        found = list(TEST_FILES.rglob(name))
        if found:
            syntax = pydicom.dcmread(found[0], stop_before_pixels=True).file_meta.TransferSyntaxUID
            out.append((str(syntax), name, found[0].read_bytes()))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    print(f"{'transfer syntax':<44}{'sample':<22}{'plugin':<11}{'ms':>8}  agrees  pinned")
    for syntax, label, data in samples():
        reference = None
        for plugin in PLUGINS:
            try:
                decoded = pixel_array(io.BytesIO(data), decoding_plugin=plugin, index=0)
            except Exception:
                continue  # not a plugin of this syntax, or it cannot decode this file
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                pixel_array(io.BytesIO(data), decoding_plugin=plugin, index=0)
                times.append((time.perf_counter() - start) * 1000)
            agrees = "-" if reference is None else str(np.array_equal(reference, decoded))
            reference = decoded if reference is None else reference
            pinned = "*" if DECODERS.get(str(syntax), "") in (plugin, "") and plugin else ""
            name = pydicom.uid.UID(str(syntax)).name[:42]
            print(
                f"{name:<44}{label:<22}{plugin:<11}{statistics.median(times):>8.2f}"
                f"  {agrees:<6}  {pinned}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
