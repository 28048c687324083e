"""The one voxel-size check (postprocessing._units.check_voxel_size) and its callers' errors."""

import math

import numpy as np
import pytest

from analysis._checks import voxel_size_for
from postprocessing._units import as_voxel_size, check_voxel_size
from synapse_bmz.errors import InputError
from synapse_bmz.io._units import checked_voxel_size, is_valid_size


def test_accepts_one_positive_finite_size_per_axis():
    assert check_voxel_size([40, 4, 4], 3) == (40.0, 4.0, 4.0)
    assert check_voxel_size(np.array([5.0, 5.0]), 2) == (5.0, 5.0)
    assert as_voxel_size(5, 3) == (5.0, 5.0, 5.0)  # recipes: a scalar is isotropic
    np.testing.assert_array_equal(voxel_size_for((2, 1, 1), 3), np.array([2.0, 1.0, 1.0]))


@pytest.mark.parametrize("bad,words", [((5.0, 5.0), "3 axes"), ((0.0, 5.0, 5.0), "> 0"),
                                       ((math.nan, 5.0, 5.0), "finite"), ((-1.0, 5.0, 5.0), "> 0"),
                                       ((None, 5.0, 5.0), "numbers"), (None, "numbers")])
def test_rejections_read_the_same_in_every_layer(bad, words):
    with pytest.raises(ValueError, match=words):
        check_voxel_size(bad, 3)
    with pytest.raises(ValueError, match=words):
        voxel_size_for(bad, 3)
    assert not is_valid_size(bad, 3)
    if bad is not None:
        with pytest.raises(InputError, match=words) as info:
            checked_voxel_size("v.tif", bad, 3, source="the caller")
        assert str(info.value).startswith("v.tif: voxel size from the caller")
