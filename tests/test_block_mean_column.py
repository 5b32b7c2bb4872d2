"""block_mean sums a box column in uint16 while ``factor * 255`` fits, else in uint32: both sides of the edge."""

import numpy as np
import pytest

from nersemble_zarr.levels.resample import block_mean
from tests.test_block_mean import numpy_box_mean


@pytest.mark.parametrize("factor", [257, 258])  # 257 * 255 = 65535, the largest uint16 column sum
@pytest.mark.parametrize("fill", ["white", "random"])
def test_block_mean_column_sums_do_not_overflow(factor, fill):
    shape = (1, factor + 3, 2 * factor + 1, 3)
    frames = (np.full(shape, 255, dtype=np.uint8) if fill == "white"
              else np.random.default_rng(factor).integers(0, 256, shape, dtype=np.uint8))
    np.testing.assert_array_equal(block_mean(frames, factor), numpy_box_mean(frames, factor))
