"""``viewer.render.look_up`` windows a frame a band of rows at a time (a smaller temporary than
one ``np.take`` over the whole frame); its output must be ``lut[index]`` for every shape."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.render import BAND_PIXELS, look_up


@pytest.mark.parametrize(
    "shape",
    [(1, 1), (1, 3), (7,), (64, 512), (65, 512), (513, 517), (3, BAND_PIXELS + 1), (2, 3000)],
)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_look_up_is_the_table_indexed(shape: tuple[int, ...], dtype: type) -> None:
    rng = np.random.default_rng(sum(shape))
    bits = np.dtype(dtype).itemsize * 8
    lut = rng.integers(0, 256, 2**bits, dtype=np.uint8)
    index = rng.integers(0, 2**bits, shape, dtype=dtype)
    index.flat[0], index.flat[-1] = 0, 2**bits - 1  # both ends of the table
    out = look_up(lut, index)
    assert out.dtype == np.uint8 and out.shape == index.shape
    assert np.array_equal(out, lut[index])
