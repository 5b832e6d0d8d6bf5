"""The pixel pipeline's parts that dcmtk parity does not reach: VOI functions, colour, overlays,
viewports, modality values and the frame cache."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.pixels import apply_modality_lut, apply_windowing, convert_color_space, pixel_array
from pydicom.uid import JPEGBaseline8Bit

from service.demo.synthetic import StudySpec, dataset_bytes, make_study
from viewer import (
    DECODERS,
    RenderOptions,
    Window,
    apply_window,
    decode_frame,
    display,
    modality_values,
    parse_window,
    render,
    render_array,
)
from viewer.cache import FrameCache
from viewer.frames import pyramid

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def sample_file(name: str) -> bytes:
    return next(TEST_FILES.rglob(name)).read_bytes()


@pytest.mark.parametrize(
    ("text", "window"),
    [
        ("40,80", Window(40, 80)),
        (" -600 , 1500 ", Window(-600, 1500)),
        ("40,80,sigmoid", Window(40, 80, "SIGMOID")),
        ("0.5,1,LINEAR_EXACT", Window(0.5, 1, "LINEAR_EXACT")),
    ],
)
def test_parse_window_reads_centre_width_and_function(text, window):
    assert parse_window(text) == window


@pytest.mark.parametrize("text", ["40", "a,b", "40,0", "40,-5", "40,0.5", "40,80,CUBIC", "nan,4"])
def test_parse_window_refuses_what_the_standard_does_not_allow(text):
    with pytest.raises(ValueError):
        parse_window(text)


def test_linear_exact_and_sigmoid_follow_ps3_3_c_11_2_1_3():
    """LINEAR_EXACT: the window's edges map exactly to 0 and 255; SIGMOID: the centre to half."""
    x = np.array([-10.0, 0.0, 50.0, 100.0, 110.0])
    exact = apply_window(x, Window(50, 100, "LINEAR_EXACT"))
    assert exact.tolist() == [0, 0, 127, 255, 255]
    sigmoid = apply_window(np.array([50.0, -1e6, 1e6]), Window(50, 100, "SIGMOID"))
    assert sigmoid.tolist() == [127, 0, 255]


def test_pydicom_agrees_on_the_linear_window_within_one():
    """An independent implementation (pydicom's float64 windowing) as a second opinion."""
    ds = pydicom.dcmread(io.BytesIO(sample_file("CT_small.dcm")))
    ds.WindowCenter, ds.WindowWidth = 40, 400
    windowed = apply_windowing(apply_modality_lut(ds.pixel_array, ds), ds)
    theirs = (windowed - windowed.min()) / (windowed.max() - windowed.min()) * 255
    frame = decode_frame(sample_file("CT_small.dcm"), 0)
    mine = render_array(frame, RenderOptions(Window(40, 400)))
    assert np.abs(mine.astype(int) - theirs).max() <= 1


def test_a_voi_lut_sequence_is_applied_when_there_is_no_window():
    """VOI LUT Sequence (C.11.2.1.1): pydicom's table look-up, scaled to 8 bits."""
    ds = pydicom.dcmread(io.BytesIO(sample_file("CT_small.dcm")))
    ds.VOILUTSequence = [pydicom.Dataset()]
    item = ds.VOILUTSequence[0]
    item.LUTDescriptor = [256, -1024, 8]
    item.add_new("LUTData", "US", list(range(256)))
    frame = decode_frame(dataset_bytes(ds), 0)
    out = render_array(frame, RenderOptions())
    values = apply_modality_lut(ds.pixel_array, ds)
    expected = np.clip(np.floor(values).astype(int) + 1024, 0, 255)
    assert np.array_equal(out.astype(int), expected)


def rgb_bytes(photometric: str = "RGB") -> tuple[bytes, np.ndarray]:
    [ds] = make_study(StudySpec("P", "A^B", "CR", "HAND", rows=16))
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    rgb[..., 0], rgb[:8, :, 1], rgb[:, :8, 2] = 200, 120, 60
    stored = rgb if photometric == "RGB" else convert_color_space(rgb, "RGB", "YBR_FULL")
    ds.set_pixel_data(stored, photometric, 8, generate_instance_uid=False)
    return dataset_bytes(ds), rgb


@pytest.mark.parametrize("photometric", ["RGB", "YBR_FULL"])
def test_colour_images_render_as_rgb(photometric):
    data, rgb = rgb_bytes(photometric)
    frame = decode_frame(data, 0)
    assert frame.colour
    out = render_array(frame, RenderOptions(format="png"))
    assert np.abs(out.astype(int) - rgb.astype(int)).max() <= 1  # YCbCr round trip
    with pytest.raises(ValueError):  # colour has no modality values to window
        modality_values(frame)


def test_palette_colour_uses_the_lookup_tables():
    ds = pydicom.dcmread(io.BytesIO(sample_file("examples_palette.dcm")))
    frame = decode_frame(sample_file("examples_palette.dcm"), 0)
    expected = pydicom.pixels.apply_color_lut(ds.pixel_array, ds)
    if expected.dtype != np.uint8:
        expected = (expected >> 8).astype(np.uint8)
    assert np.array_equal(render_array(frame, RenderOptions()), expected)


@pytest.mark.parametrize("name", ["examples_ybr_color.dcm", "SC_ybr_full_422_uncompressed.dcm"])
def test_ybr_422_files_render_as_pydicoms_rgb(name):
    """Subsampled YBR, compressed (JPEG baseline) or not, comes out as RGB."""
    plugin = DECODERS[JPEGBaseline8Bit]
    expected = pixel_array(io.BytesIO(sample_file(name)), decoding_plugin=plugin, index=0)
    out = render_array(decode_frame(sample_file(name), 0), RenderOptions(format="png"))
    assert out.shape == expected.shape
    assert np.array_equal(out, expected)


def test_overlays_are_burnt_in_only_on_request():
    data = sample_file("examples_overlay.dcm")
    ds = pydicom.dcmread(io.BytesIO(data))
    overlay = ds.overlay_array(0x6000).astype(bool)
    frame = decode_frame(data, 0)
    black = Window(1e6, 1)  # every value below the window: all black
    plain = render_array(frame, RenderOptions(black))
    burnt = render_array(frame, RenderOptions(black, overlays=True))
    assert not plain.any()
    assert (burnt[overlay] == 255).all() and overlay.any()
    assert np.array_equal(burnt[~overlay], plain[~overlay])


def test_a_viewport_fits_the_image_antialiased_from_the_pyramid():
    """3000² CR into 1000x800: 800x800, resampled from the 1000² level, not by nearest pixel."""
    [ds] = make_study(StudySpec("P", "A^B", "CR", "CHEST", rows=3000))
    frame = decode_frame(dataset_bytes(ds), 0)
    assert [level.shape[0] for level in frame.levels] == [1500, 1000, 750]
    small = render_array(frame, RenderOptions(Window(2048, 3600), viewport=(1000, 800)))
    assert small.shape == (800, 800)
    full = render_array(frame, RenderOptions(Window(2048, 3600)))
    reference = np.asarray(Image.fromarray(full).resize((800, 800), Image.Resampling.BOX))
    assert np.abs(small.astype(int) - reference.astype(int)).mean() < 2.0


def test_pyramid_levels_are_block_means_by_integer_factors():
    pixels = np.arange(12 * 12, dtype=np.uint16).reshape(12, 12)
    big = np.tile(pixels, (200, 200))  # 2400² > the pyramid threshold
    levels = pyramid(big)
    assert [level.shape for level in levels] == [(1200, 1200), (800, 800), (600, 600)]
    assert all(level.dtype == np.uint16 for level in levels)
    assert levels[0][0, 0] == 7  # (0 + 1 + 12 + 13) / 4 = 6.5, rounded half up
    assert levels[1][0, 0] == round(sum(r * 12 + c for r in range(3) for c in range(3)) / 9)


def test_a_viewport_of_an_exact_level_needs_no_resampling():
    """The 1000² level windowed is the 1000-pixel render, pixel for pixel."""
    [ds] = make_study(StudySpec("P", "A^B", "CR", "CHEST", rows=3000))
    frame = decode_frame(dataset_bytes(ds), 0)
    window = Window(2048, 3600)
    rendered = render_array(frame, RenderOptions(window, viewport=(1000, 1000)))
    assert np.array_equal(rendered, display(frame, window, frame.levels[1]))


def test_modality_values_are_int16_hu_for_ct_and_float32_for_fractional_rescale():
    [ds] = make_study(StudySpec("P", "A^B", "CT", "HEAD", rows=32))
    data, dtype = modality_values(decode_frame(dataset_bytes(ds), 0))
    assert dtype == "int16"
    expected = apply_modality_lut(ds.pixel_array, ds)
    assert np.array_equal(np.frombuffer(data, "<i2").reshape(32, 32), expected)
    ds.RescaleSlope = "0.5"
    data, dtype = modality_values(decode_frame(dataset_bytes(ds), 0))
    assert dtype == "float32"
    expected = apply_modality_lut(ds.pixel_array, ds)
    assert np.allclose(np.frombuffer(data, "<f4").reshape(32, 32), expected)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_every_format_encodes_and_decodes_to_the_frames_size(fmt):
    [ds] = make_study(StudySpec("P", "A^B", "CT", "HEAD", rows=48))
    body = render(decode_frame(dataset_bytes(ds), 0), RenderOptions(format=fmt, quality=80))
    image = Image.open(io.BytesIO(body))
    assert image.format == {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}[fmt]
    assert image.size == (48, 48)


def test_one_frame_of_a_multiframe_object_is_decoded_alone():
    """A frame index reads that frame: frame 3 of a 5-frame stack is slice 3."""
    slices = make_study(StudySpec("P", "A^B", "CT", "HEAD", instances=5, rows=32))
    stack = pydicom.dcmread(io.BytesIO(dataset_bytes(slices[0])))
    stack.NumberOfFrames = 5
    stack.set_pixel_data(
        np.stack([s.pixel_array for s in slices]), "MONOCHROME2", 12, generate_instance_uid=False
    )
    frame = decode_frame(dataset_bytes(stack), 2)
    assert np.array_equal(frame.pixels, slices[2].pixel_array)
    with pytest.raises(IndexError):
        decode_frame(dataset_bytes(stack), 5)


def test_the_frame_cache_drops_the_least_recently_used_past_its_size():
    [ds] = make_study(StudySpec("P", "A^B", "CT", "HEAD", rows=512))
    frame = decode_frame(dataset_bytes(ds), 0)  # 512 KiB
    cache = FrameCache(1.2)  # room for two
    cache.put("a", frame)
    cache.put("b", frame)
    assert cache.get("a") is frame  # a is now the most recent
    cache.put("c", frame)
    assert "b" not in cache and "a" in cache and "c" in cache
    assert cache.stats()["evictions"] == 1 and cache.used <= cache.limit
    tiny = FrameCache(0.1)
    tiny.put("big", frame)
    assert len(tiny) == 0
