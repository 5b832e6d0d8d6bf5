"""A key image's figure (viewer/key_image.py) is the viewer's pipeline: the window of
``render.display``, then the viewport's geometry, then the measurements; and the report's other
renderings of it: canonical form, PDF layout (pure, no Orthanc)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from service.reports.canonical import canonical_bytes, canonical_fields
from service.reports.document import ReportFigure
from service.reports.pdf import render_report_pdf
from service.reports.pdf_figures import figure_flowables
from viewer import Window, display
from viewer.frames import Frame
from viewer.key_image import KeyImageView, Measurement, figure_pixels, figure_png

from .test_report_documents import sample

WINDOW = Window(100, 200)


def frame(rows: int = 64, columns: int = 96, **changes) -> Frame:
    values = (np.arange(rows * columns, dtype=np.int16).reshape(rows, columns) % 251) - 20
    return Frame(pixels=values, **changes)


def one_to_one(f: Frame, **changes) -> KeyImageView:
    """A viewport exactly the image's size at one display pixel per image pixel."""
    return KeyImageView(viewport=(f.columns, f.rows), window=WINDOW, scale=1.0, **changes)


def grey(figure: np.ndarray) -> np.ndarray:
    assert (figure[..., 0] == figure[..., 1]).all() and (figure[..., 1] == figure[..., 2]).all()
    return figure[..., 0]


class TestFigurePixels:
    def test_at_one_to_one_the_figure_is_the_servers_windowed_frame(self):
        """No geometry, no measurements: every pixel is render.display's."""
        f = frame()
        out = figure_pixels(f, one_to_one(f), long_side=f.columns)
        assert np.array_equal(grey(out), display(f, WINDOW))

    def test_invert_and_monochrome1_each_swap_the_windows_ends(self):
        f = frame()
        inverted = grey(figure_pixels(f, one_to_one(f, invert=True), long_side=f.columns))
        assert np.array_equal(inverted, display(dataclasses.replace(f, inverse=True), WINDOW))
        mono1 = frame(inverse=True)
        both = grey(figure_pixels(mono1, one_to_one(mono1, invert=True), long_side=f.columns))
        assert np.array_equal(both, display(f, WINDOW))

    @pytest.mark.parametrize(
        ("changes", "expected"),
        [
            ({"flip_h": True}, lambda a: a[:, ::-1]),
            ({"flip_v": True}, lambda a: a[::-1, :]),
            ({"rotation": 2}, lambda a: a[::-1, ::-1]),
        ],
    )
    def test_flips_and_half_turns_move_whole_pixels(self, changes, expected):
        f = frame()
        out = grey(figure_pixels(f, one_to_one(f, **changes), long_side=f.columns))
        assert np.array_equal(out, expected(display(f, WINDOW)))

    def test_a_quarter_turn_is_clockwise_as_in_the_viewer(self):
        f = frame(rows=64, columns=64)
        out = grey(figure_pixels(f, one_to_one(f, rotation=1), long_side=64))
        assert np.array_equal(out, np.rot90(display(f, WINDOW), k=-1))

    def test_zoom_and_pan_show_what_the_viewport_showed(self):
        """At 4x, panned so the image's top-left pixel sits at the viewport's centre."""
        f = frame()
        view = KeyImageView(
            viewport=(40, 40), window=WINDOW, scale=4.0, pan=(f.columns * 2, f.rows * 2)
        )
        out = grey(figure_pixels(f, view, long_side=40))
        expected = display(f, WINDOW)
        assert (out[:20, :20] == 0).all()  # outside the image: black
        assert (out[20:24, 20:24] == expected[0, 0]).all()
        assert (out[20:24, 24:28] == expected[0, 1]).all()

    def test_fit_scales_the_image_into_the_viewport(self):
        f = frame(rows=50, columns=100)
        out = figure_pixels(f, KeyImageView(viewport=(200, 200), window=WINDOW), long_side=200)
        rows = np.nonzero(grey(out).any(axis=1))[0]
        assert out.shape == (200, 200, 3)
        assert rows.min() >= 49 and rows.max() <= 150  # 200x100 band, centred

    def test_overlays_are_burnt_in_white_only_when_shown(self):
        mask = np.zeros((64, 96), dtype=bool)
        mask[5:9, 10:30] = True
        f = frame(overlay=mask)
        hidden = grey(figure_pixels(f, one_to_one(f), long_side=f.columns))
        shown = grey(figure_pixels(f, one_to_one(f, overlays=True), long_side=f.columns))
        expected = display(f, WINDOW)
        assert np.array_equal(hidden, expected)
        expected[mask] = 255
        assert np.array_equal(shown, expected)

    def test_measurements_are_drawn_in_the_viewers_colour(self):
        f = frame()
        m = Measurement("length", ((10, 10), (80, 50)), "Length 12.0 mm")
        out = figure_pixels(f, one_to_one(f, measurements=(m,)), long_side=f.columns * 4)
        assert ((out == (79, 195, 247)).all(axis=2)).sum() > 50

    def test_the_png_is_lossless(self):
        f = frame()
        view = one_to_one(f)
        png = figure_png(f, view, long_side=f.columns)
        decoded = np.asarray(Image.open(io.BytesIO(png)))
        assert np.array_equal(decoded, figure_pixels(f, view, long_side=f.columns))


def figure(n: int) -> ReportFigure:
    pixels = np.full((300, 400, 3), 40 * n, dtype=np.uint8)
    pixels[::7, :, 1] = 255
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    png = buffer.getvalue()
    return ReportFigure(png, f"caption {n}", f"Se 1 Im {n}", hashlib.sha256(png).hexdigest())


class TestReportWithFigures:
    def test_without_figures_the_canonical_form_is_unchanged(self):
        doc = sample()
        assert "figures" not in canonical_fields(doc)
        assert b"figures" not in canonical_bytes(doc)
        assert figure_flowables(doc, {}) == []

    def test_the_canonical_form_lists_the_figures_digests(self):
        doc = sample(figures=(figure(1), figure(2)))
        assert canonical_fields(doc)["figures"] == [figure(1).sha256, figure(2).sha256]

    @pytest.mark.parametrize("count", [1, 2, 4, 5])
    def test_the_pdf_embeds_at_most_four_figures_losslessly(self, count, tmp_path):
        figures = tuple(figure(n) for n in range(1, count + 1))
        path = tmp_path / "report.pdf"
        path.write_bytes(render_report_pdf(sample(figures=figures)))
        found = embedded(path, tmp_path)
        assert len(found) == min(count, 4)
        for image, fig in zip(found, figures, strict=False):
            assert np.array_equal(image, np.asarray(Image.open(io.BytesIO(fig.png))))


def embedded(path: Path, directory: Path) -> list[np.ndarray]:
    """The PDF's images of figure size, read back with poppler's pdfimages."""
    rows = subprocess.run(
        ["pdfimages", "-list", str(path)], capture_output=True, text=True, check=True
    ).stdout.splitlines()[2:]
    subprocess.run(["pdfimages", "-png", str(path), str(directory / "img")], check=True)
    return [
        np.asarray(Image.open(directory / f"img-{n:03d}.png").convert("RGB"))
        for n, row in enumerate(rows)
        if int(row.split()[3]) == 400
    ]
