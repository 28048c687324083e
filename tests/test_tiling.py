import itertools

import numpy as np
import pytest

from synapse_bmz.runner.tiling import iter_tiles, plan_tiles, valid_size


def test_valid_size_is_min_plus_multiple_of_step():
    assert valid_size(10, 32, 4) == 32
    assert valid_size(33, 32, 4) == 36
    assert valid_size(36, 32, 4) == 36


def test_whole_volume_in_one_tile_without_halo_when_it_fits():
    plan = plan_tiles((64, 500, 500), (8, 32, 32), (8, 16, 16), (4, 16, 16),
                      bytes_per_voxel=100, memory_budget_bytes=1e12)
    assert plan.halo == (0, 0, 0)
    assert plan.inner == (64, 500, 500)
    assert plan.tile == (64, 512, 512)


@pytest.mark.parametrize("shape,budget", [((40, 130, 170), 2e6), ((7, 300, 90), 5e5), ((3, 65, 33), 1e5)])
def test_tiles_partition_volume_and_have_valid_sizes(shape, budget):
    mins, steps, halo = (4, 32, 32), (2, 16, 16), (2, 8, 8)
    plan = plan_tiles(shape, mins, steps, halo, bytes_per_voxel=10, memory_budget_bytes=budget)
    assert np.prod(plan.tile) * 10 <= max(budget, np.prod(mins) * 10)
    covered = np.zeros(shape, np.int32)
    for t in iter_tiles(shape, plan):
        covered[t.write] += 1
        for r, p, n, m, s in zip(t.read, t.pad, plan.tile, mins, steps):
            assert (r.stop - r.start) + p[0] + p[1] == n
            assert (n - m) % s == 0
        for c, w in zip(t.crop, t.write):
            assert c.stop - c.start == w.stop - w.start
    assert (covered == 1).all()


def test_batch_of_sections_for_2d_model():
    plan = plan_tiles((256, 256), (32, 32), (16, 16), (16, 16), bytes_per_voxel=100,
                      memory_budget_bytes=100 * 256 * 256 * 10, n_batch_items=50)
    assert plan.tile == (256, 256) and plan.batch_size == 10
