"""Partner extraction (postprocessing.partners): hand-built Synful and polarity outputs,
whole-volume answers known in advance, block-wise tables equal to the whole-volume one."""

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from postprocessing.partners import (
    PARTNER_COLUMNS, extract_partners, extract_partners_blockwise, partner_context_nm, polarity_partners,
    synful_partners,
)
from postprocessing.recipes import apply_recipe, recipe_context_nm

VOX = (40.0, 4.0, 4.0)


def _synful_scene(shape=(12, 96, 96), n=30, seed=0):
    """Post-synaptic blobs (ellipsoids three sections thick) with a constant vector each, and
    neurons: stripes 6 voxels (24 nm) wide along x, so most vectors join two neurons, some not."""
    rng = np.random.default_rng(seed)
    post = np.zeros(shape, np.float32)
    vec = np.zeros((3,) + shape, np.float32)
    zz, yy, xx = np.ogrid[:shape[0], :shape[1], :shape[2]]
    truth = []
    for _ in range(n):
        c = np.array([rng.integers(1, shape[0] - 1), rng.integers(4, shape[1] - 4), rng.integers(4, shape[2] - 4)])
        r = rng.uniform(1.5, 3.5)
        blob = (zz - c[0]) ** 2 + ((yy - c[1]) / r) ** 2 + ((xx - c[2]) / r) ** 2 <= 1.0
        if (post[ndimage.binary_dilation(blob, np.ones((3, 3, 3)))] > 0).any():  # never touching: one component each
            continue
        v = rng.uniform(-60, 60, 3) * np.array([1.0, 1.0, 1.0])
        post[blob] = rng.uniform(0.6, 1.0, blob.sum())
        for a in range(3):
            vec[a][blob] = v[a]
        truth.append((c, v))
    neurons = (xx // 6 + 1) * np.ones(shape, np.uint32)
    return post, vec, neurons, truth


def test_one_component_site_score_and_pre_site_by_hand():
    post = np.zeros((3, 9, 9), np.float32)
    post[1, 2:7, 2:7] = 0.8          # a 5 x 5 square: distance maximum at its centre (1, 4, 4)
    post[1, 4, 4] = 1.0
    vec = np.zeros((3, 3, 9, 9), np.float32)
    vec[:, 1, 4, 4] = (40.0, -8.0, 12.0)
    t = synful_partners(post, vec, VOX)
    assert list(t.columns) == list(PARTNER_COLUMNS)
    assert len(t) == 1
    row = t.iloc[0]
    assert (row.post_z_nm, row.post_y_nm, row.post_x_nm) == (40.0, 16.0, 16.0)
    assert (row.pre_z_nm, row.pre_y_nm, row.pre_x_nm) == (80.0, 8.0, 28.0)
    assert row.score == pytest.approx(24 * 0.8 + 1.0)
    assert row.post_volume_nm3 == 25 * 40 * 4 * 4
    assert t["pre_id"].isna().all() and t["post_id"].isna().all()
    for score, expected in (("mean", (24 * 0.8 + 1.0) / 25), ("max", 1.0), ("count", 25.0)):
        assert synful_partners(post, vec, VOX, score=score).score.iloc[0] == pytest.approx(expected)


def test_center_of_mass_location_and_vector_at_nearest_voxel():
    post = np.zeros((1, 8, 12), np.float32)
    post[0, 2, 2:9] = 0.9            # a line along x: centroid x = 5
    vec = np.zeros((3, 1, 8, 12), np.float32)
    vec[2, 0, 2, :] = np.arange(12) * 10.0
    t = synful_partners(post, vec, (40.0, 4.0, 4.0), location="center_of_mass")
    assert t.post_x_nm.iloc[0] == 20.0 and t.pre_x_nm.iloc[0] == 20.0 + 50.0


def test_threshold_min_volume_and_nms():
    post = np.zeros((1, 20, 40), np.float32)
    yy, xx = np.mgrid[:20, :40]
    # one elongated component with two peaks 24 px (96 nm) apart
    post[0] = np.maximum(0.9 * np.exp(-((yy - 10) ** 2 + (xx - 8) ** 2) / 20.0),
                         0.8 * np.exp(-((yy - 10) ** 2 + (xx - 32) ** 2) / 20.0))
    post[0, 10, 8:33] = np.maximum(post[0, 10, 8:33], 0.6)
    post[0, 1, 1] = 0.7              # one voxel: dropped by min_volume_nm3
    vec = np.zeros((3,) + post.shape, np.float32)
    vox = (40.0, 4.0, 4.0)
    comps = synful_partners(post, vec, vox)
    assert len(comps) == 2
    assert len(synful_partners(post, vec, vox, min_volume_nm3=2 * 640.0)) == 1
    assert len(synful_partners(post, vec, vox, threshold=0.95)) == 0
    nms = synful_partners(post, vec, vox, method="nms", nms_radius_nm=40.0, min_volume_nm3=2 * 640.0)
    assert sorted(nms.post_x_nm.tolist()) == [32.0, 128.0]
    assert sorted(nms.score.round(6).tolist()) == pytest.approx(sorted(nms.score.tolist()))
    assert nms.sort_values("post_x_nm").score.iloc[0] > nms.sort_values("post_x_nm").score.iloc[1]
    # one wide radius suppresses the lower peak
    assert len(synful_partners(post, vec, vox, method="nms", nms_radius_nm=120.0, min_volume_nm3=2 * 640.0)) == 1


def test_nms_plateau_is_one_peak():
    post = np.zeros((1, 10, 10), np.float32)
    post[0, 3:6, 3:6] = 1.0          # saturated sigmoid: 9 equal maxima
    t = synful_partners(post, np.zeros((3, 1, 10, 10), np.float32), VOX, method="nms", nms_radius_nm=8.0)
    assert len(t) == 1 and (t.post_y_nm.iloc[0], t.post_x_nm.iloc[0]) == (12.0, 12.0)


def test_neuron_ids_and_same_neuron_pairs_dropped():
    post = np.zeros((1, 10, 20), np.float32)
    post[0, 4:6, 2:4] = 0.9          # in neuron 1, vector into neuron 2
    post[0, 4:6, 12:14] = 0.9        # in neuron 2, vector stays in neuron 2
    vec = np.zeros((3, 1, 10, 20), np.float32)
    vec[2, 0, 4:6, 2:4] = 40.0
    vec[2, 0, 4:6, 12:14] = 8.0
    neurons = np.ones((1, 10, 20), np.uint32)
    neurons[..., 10:] = 2
    kept = synful_partners(post, vec, VOX, neurons=neurons)
    assert len(kept) == 1 and (kept.pre_id.iloc[0], kept.post_id.iloc[0]) == (2, 1)
    both = synful_partners(post, vec, VOX, neurons=neurons, drop_same_neuron=False)
    assert len(both) == 2 and set(zip(both.pre_id, both.post_id)) == {(2, 1), (2, 2)}


def test_split_by_neuron_separates_the_partners_of_a_polyadic_synapse():
    # one T-bar in neuron 3 (x >= 14); two post-synaptic neurons 1 (y < 5) and 2 (y >= 5) whose masks
    # touch around it: one component, two partners
    post = np.zeros((1, 10, 20), np.float32)
    post[0, 2:8, 8:12] = 0.9
    post[0, 4:6, 8:12] = 0.95      # a ridge where the two masks meet
    vec = np.zeros((3, 1, 10, 20), np.float32)
    vec[2, 0, 2:8, 8:12] = 32.0    # 8 voxels along x: into neuron 3
    neurons = np.full((1, 10, 20), 3, np.uint32)
    neurons[0, :5, :14] = 1
    neurons[0, 5:, :14] = 2
    merged = synful_partners(post, vec, VOX, neurons=neurons)
    assert len(merged) == 1
    split = synful_partners(post, vec, VOX, neurons=neurons, split_by_neuron=True)
    assert sorted(zip(split.post_id, split.pre_id)) == [(1, 3), (2, 3)]
    assert split.post_y_nm.max() >= 5 * 4.0 > split.post_y_nm.min()   # one site in each neuron
    # min_volume_nm3 applies to the pieces: a 2-voxel sliver of neuron 2 is dropped
    post2 = post.copy()
    neurons2 = neurons.copy()
    neurons2[0, 5:, :14] = 1
    neurons2[0, 7, 8:10] = 2
    t = synful_partners(post2, vec, VOX, neurons=neurons2, split_by_neuron=True, min_volume_nm3=3 * 640.0)
    assert t.post_id.tolist() == [1]
    # without a segmentation the option changes nothing
    pd.testing.assert_frame_equal(synful_partners(post, vec, VOX, split_by_neuron=True), synful_partners(post, vec, VOX))
    # polarity: the post-synaptic region is split, the pre-synaptic one stays whole
    pre = np.zeros_like(post)
    pre[0, 3:7, 15:18] = 0.9
    union = np.zeros_like(post)
    union[0, 1:9, 7:19] = 0.8
    pol = polarity_partners(pre, post, union, VOX, neurons=neurons, split_by_neuron=True)
    assert sorted(zip(pol.post_id, pol.pre_id)) == [(1, 3), (2, 3)]
    assert len(polarity_partners(pre, post, union, VOX, neurons=neurons)) == 1


@pytest.mark.parametrize("block_shape", [(4, 32, 32), (5, 23, 41), (1, 12, 12)])
def test_split_by_neuron_blockwise_equals_whole_volume(block_shape):
    post, vec, _, _ = _synful_scene()
    shape = post.shape
    _, yy, xx = np.ogrid[:shape[0], :shape[1], :shape[2]]
    neurons = ((xx // 5) % 4 + 1 + 4 * (yy // 9 % 3)) * np.ones(shape, np.uint32)  # blobs cut by several ids
    pred = np.concatenate([post[None], vec])
    p = {"max_extent_nm": 120.0, "split_by_neuron": True}
    whole = extract_partners("synful_partners", pred, VOX, p, neurons=neurons)
    plain = extract_partners("synful_partners", pred, VOX, {"max_extent_nm": 120.0}, neurons=neurons)
    assert len(whole) > len(plain)
    blocks = extract_partners_blockwise("synful_partners", pred, VOX, p, block_shape, neurons=neurons)
    pd.testing.assert_frame_equal(blocks, whole)


def test_pre_site_outside_the_volume_gets_the_border_neuron():
    post = np.zeros((1, 6, 6), np.float32)
    post[0, 2:4, 2:4] = 0.9
    vec = np.zeros((3, 1, 6, 6), np.float32)
    vec[2] = 400.0                   # far beyond x = 5
    neurons = np.zeros((1, 6, 6), np.uint32)
    neurons[..., 5] = 7
    t = synful_partners(post, vec, VOX, neurons=neurons)
    assert t.pre_id.iloc[0] == 7 and t.pre_x_nm.iloc[0] > 20


def test_polarity_pairs_within_union_components():
    shape = (2, 30, 60)
    pre, post, union = (np.zeros(shape, np.float32) for _ in range(3))
    # synapse A: one pre, two posts (polyadic), joined by the union channel
    pre[0, 10:14, 10:14] = 0.9
    post[0, 4:7, 18:21] = 0.9
    post[0, 17:20, 18:21] = 0.9
    union[0, 4:20, 10:21] = 0.9
    # synapse B: pre and post 8 nm apart (2 voxels), no union: needs the dilation
    pre[1, 10:13, 40:43] = 0.9
    post[1, 10:13, 45:48] = 0.9
    t = polarity_partners(pre, post, union, VOX, dilation_nm=0.0)
    assert len(t) == 2 and set(t.post_y_nm / 4) == {5.0, 18.0}
    t = polarity_partners(pre, post, union, VOX, dilation_nm=8.0)
    assert len(t) == 3
    b = t[t.post_z_nm == 40.0].iloc[0]
    assert (b.pre_y_nm, b.pre_x_nm, b.post_x_nm) == (44.0, 164.0, 184.0)
    assert b.score == pytest.approx(0.9)   # mean of the two component means (mean score)


def test_recipe_names_and_checks():
    with pytest.raises(KeyError, match="synful_partners"):
        extract_partners("nope", np.zeros((4, 2, 4, 4)), VOX)
    with pytest.raises(ValueError, match="channels"):
        extract_partners("synful_partners", np.zeros((2, 2, 4, 4)), VOX)
    with pytest.raises(ValueError, match="vectors"):
        synful_partners(np.zeros((2, 4, 4)), np.zeros((3, 2, 4, 5)), VOX)
    with pytest.raises(ValueError, match="voxel_size_nm"):
        synful_partners(np.zeros((2, 4, 4)), np.zeros((3, 2, 4, 4)), (4.0, 4.0))
    with pytest.raises(ValueError, match="location"):
        synful_partners(np.zeros((2, 4, 4)), np.zeros((3, 2, 4, 4)), VOX, location="peak")
    with pytest.raises(ValueError, match="neurons"):
        synful_partners(np.zeros((2, 4, 4)), np.zeros((3, 2, 4, 4)), VOX, neurons=np.zeros((2, 4, 5)))
    assert partner_context_nm("synful_partners", {}) == recipe_context_nm("synful_partners", {}) == 600.0
    assert partner_context_nm("polarity_partners", {"dilation_nm": 20, "max_extent_nm": 300}) == 340.0
    empty = extract_partners("polarity_partners", np.zeros((3, 2, 8, 8), np.float32), VOX)
    assert empty.empty and list(empty.columns) == list(PARTNER_COLUMNS)


def test_site_labels_recipe():
    post, vec, _, _ = _synful_scene()
    labels = apply_recipe("synful_partners", np.concatenate([post[None], vec]), VOX, {"method": "nms"})
    assert labels.max() == len(synful_partners(post, vec, VOX))


SYNFUL_PARAMS = [
    {},
    {"location": "center_of_mass", "score": "mean"},
    {"method": "nms", "nms_radius_nm": 12.0, "score": "sum"},
]


@pytest.mark.parametrize("params", SYNFUL_PARAMS)
@pytest.mark.parametrize("block_shape", [(4, 32, 32), (5, 23, 41), (12, 96, 17), (1, 12, 12)])
def test_synful_blockwise_equals_whole_volume(params, block_shape):
    post, vec, neurons, truth = _synful_scene()
    pred = np.concatenate([post[None], vec])
    p = {**params, "max_extent_nm": 120.0}   # blobs are <= 3 sections and <= 7 px: 120 nm context holds them
    whole = extract_partners("synful_partners", pred, VOX, p, neurons=neurons)
    assert len(whole) >= 8                     # the scene is not trivial: several sites, some dropped as same-neuron
    assert len(extract_partners("synful_partners", pred, VOX, {**p, "drop_same_neuron": False}, neurons=neurons)) > len(whole)
    blocks = extract_partners_blockwise("synful_partners", pred, VOX, p, block_shape, neurons=neurons)
    pd.testing.assert_frame_equal(blocks, whole)


def test_blockwise_refuses_a_context_smaller_than_a_component():
    post, vec, _, _ = _synful_scene()
    pred = np.concatenate([post[None], vec])
    with pytest.raises(ValueError, match="max_extent_nm"):
        extract_partners_blockwise("synful_partners", pred, VOX, {"max_extent_nm": 4.0}, (4, 16, 16))


@pytest.mark.parametrize("block_shape", [(1, 16, 16), (2, 25, 7), (3, 64, 64)])
def test_polarity_blockwise_equals_whole_volume(block_shape):
    rng = np.random.default_rng(3)
    shape = (6, 160, 160)
    pre, post, union = (np.zeros(shape, np.float32) for _ in range(3))
    for k in range(10):
        z, y, x = rng.integers(0, 6), rng.integers(8, 152), rng.integers(8, 152)
        union[z, y - 5:y + 6, x - 5:x + 6] = np.maximum(union[z, y - 5:y + 6, x - 5:x + 6], 0.8)
        pre[z, y - 1:y + 2, x - 5:x - 2] = 0.9
        post[z, y - 5:y - 2, x + 2:x + 5] = 0.7
        post[z, y + 2:y + 5, x + 2:x + 5] = 0.8
    pred = np.stack([pre, post, union])
    p = {"dilation_nm": 8.0, "max_extent_nm": 200.0}
    whole = extract_partners("polarity_partners", pred, VOX, p)
    assert len(whole) >= 15
    blocks = extract_partners_blockwise("polarity_partners", pred, VOX, p, block_shape, n_workers=2)
    pd.testing.assert_frame_equal(blocks, whole)


def _two_synapse_scene():
    """Two T-bars (neurons 1 and 2, thick 13 x 13 pre masks, one pre component) in one synapse
    region, and thin (3-voxel) post masks: neuron 3 next to T-bar 1 in two pieces, neuron 4 next to T-bar 2, and a
    rim of post mask inside neuron 1 (the pre-synaptic neuron)."""
    shape = (1, 40, 80)
    pre, post, union = (np.zeros(shape, np.float32) for _ in range(3))
    neurons = np.full(shape, 9, np.uint32)
    neurons[0, 5:35, 5:30] = 1
    neurons[0, 5:35, 50:75] = 2
    neurons[0, 5:35, 30:40] = 3
    neurons[0, 5:35, 40:50] = 4
    pre[0, 13:26, 15:28] = 0.9          # T-bar 1: inscribed radius ~ 7 voxels = 28 nm
    pre[0, 13:26, 52:65] = 0.9          # T-bar 2
    pre[0, 13:26, 28:31] = 0.9          # T-bar 1's mask leaks a thin rim into neuron 3
    pre[0, 13, 28:52] = 0.9             # and a one-voxel bridge joins both T-bars into one component
    post[0, 8:14, 30:33] = 0.8          # neuron 3, piece a (18 voxels)
    post[0, 20:30, 30:33] = 0.8         # neuron 3, piece b (30 voxels), nearer to T-bar 1
    post[0, 14:24, 47:50] = 0.8         # neuron 4, next to T-bar 2
    post[0, 15:25, 25:28] = 0.8         # a post rim in neuron 1 (the pre-synaptic neuron)
    union[0, 8:30, 15:65] = 0.8         # one synapse region
    return pre, post, union, neurons


def test_polarity_pre_min_radius_keeps_every_thick_pre_piece():
    pre, post, union, neurons = _two_synapse_scene()
    kw = dict(neurons=neurons, split_by_neuron=True, dilation_nm=0.0)
    # the whole pre mask is one component: only its largest piece (neuron 1) is a pre site
    assert set(polarity_partners(pre, post, union, VOX, **kw).pre_id) == {1}
    # both 13 x 13 pieces are thicker than 20 nm in-plane, the one-voxel rim and bridge in neurons 3, 4 are not
    t = polarity_partners(pre, post, union, VOX, pre_min_radius_nm=20.0, **kw)
    assert set(t.pre_id) == {1, 2}
    assert set(polarity_partners(pre, post, union, VOX, pre_min_radius_nm=2.0, **kw).pre_id) == {1, 2, 3, 4}
    # without a segmentation the option changes nothing
    pd.testing.assert_frame_equal(polarity_partners(pre, post, union, VOX, dilation_nm=0.0, pre_min_radius_nm=20.0),
                                  polarity_partners(pre, post, union, VOX, dilation_nm=0.0))


def test_polarity_neuron_pairing_options_by_hand():
    pre, post, union, neurons = _two_synapse_scene()
    kw = dict(neurons=neurons, split_by_neuron=True, dilation_nm=0.0, pre_min_radius_nm=20.0)
    pairs = lambda t: sorted(zip(t.pre_id.tolist(), t.post_id.tolist()))  # noqa: E731
    everything = polarity_partners(pre, post, union, VOX, **kw)
    # all to all: two T-bars x (neuron 3 twice, neuron 4, the rim in neuron 1 with T-bar 2)
    assert pairs(everything) == [(1, 3), (1, 3), (1, 4), (2, 1), (2, 3), (2, 3), (2, 4)]
    # the post rim shares voxels with neuron 1's kept pre piece: it is no post site
    rim = polarity_partners(pre, post, union, VOX, exclude_pre_from_post=True, **kw)
    assert pairs(rim) == [(1, 3), (1, 3), (1, 4), (2, 3), (2, 3), (2, 4)]
    # nearest: each post piece with its nearest T-bar of another neuron
    near = polarity_partners(pre, post, union, VOX, exclude_pre_from_post=True, pairing="nearest", **kw)
    assert pairs(near) == [(1, 3), (1, 3), (2, 4)]
    # one per neuron: neuron 3's two pieces at T-bar 1 are one partner, its larger piece b
    one = polarity_partners(pre, post, union, VOX, exclude_pre_from_post=True, pairing="nearest",
                            one_per_neuron=True, **kw)
    assert pairs(one) == [(1, 3), (2, 4)]
    row = one[one.post_id == 3].iloc[0]
    assert row.post_volume_nm3 == 30 * 40 * 4 * 4 and 20 * 4 <= row.post_y_nm < 30 * 4
    with pytest.raises(ValueError, match="pairing"):
        polarity_partners(pre, post, union, VOX, pairing="closest", **kw)


@pytest.mark.parametrize("block_shape", [(1, 16, 16), (2, 25, 7), (3, 64, 64)])
def test_polarity_neuron_options_blockwise_equals_whole_volume(block_shape):
    rng = np.random.default_rng(5)
    shape = (6, 160, 160)
    pre, post, union = (np.zeros(shape, np.float32) for _ in range(3))
    for k in range(10):
        z, y, x = rng.integers(0, 6), rng.integers(10, 150), rng.integers(10, 150)
        union[z, y - 7:y + 8, x - 7:x + 8] = np.maximum(union[z, y - 7:y + 8, x - 7:x + 8], 0.8)
        pre[z, y - 4:y + 4, x - 7:x + 1] = 0.9
        post[z, y - 7:y - 4, x + 1:x + 7] = 0.7
        post[z, y + 4:y + 7, x - 3:x + 7] = 0.8
    _, yy, xx = np.ogrid[:shape[0], :shape[1], :shape[2]]
    neurons = ((xx // 7) % 5 + 1 + 5 * (yy // 11 % 3)) * np.ones(shape, np.uint32)
    pred = np.stack([pre, post, union])
    p = {"dilation_nm": 8.0, "max_extent_nm": 200.0, "split_by_neuron": True, "pre_min_radius_nm": 8.0,
         "exclude_pre_from_post": True, "pairing": "nearest", "one_per_neuron": True, "min_volume_nm3": 1000.0}
    whole = extract_partners("polarity_partners", pred, VOX, p, neurons=neurons)
    plain = extract_partners("polarity_partners", pred, VOX, {k: v for k, v in p.items() if k in
                                                              ("dilation_nm", "max_extent_nm", "split_by_neuron")},
                             neurons=neurons)
    assert 5 <= len(whole) < len(plain)
    blocks = extract_partners_blockwise("polarity_partners", pred, VOX, p, block_shape, neurons=neurons)
    pd.testing.assert_frame_equal(blocks, whole)
