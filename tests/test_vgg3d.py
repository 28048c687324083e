"""VGG3D architecture (synapse_bmz.models.vgg3d) and the simulated synapse classes it trains on."""

import numpy as np
import pytest
import torch

from synapse_bmz.models.vgg3d import VGG3D

torch.set_num_threads(1)


def test_architecture_is_4_2_2_2_convs_with_24_48_96_192_channels():
    m = VGG3D()
    convs = [l for l in m.features if isinstance(l, torch.nn.Conv3d)]
    assert [c.out_channels for c in convs] == [24] * 4 + [48] * 2 + [96] * 2 + [192] * 2
    assert all(c.kernel_size == (3, 3, 3) for c in convs)
    assert sum(isinstance(l, torch.nn.MaxPool3d) for l in m.features) == 4
    assert sum(isinstance(l, torch.nn.BatchNorm3d) for l in m.features) == 10
    # SynapseClusterEM's numbering: features.20 is the first convolution of block 3
    assert isinstance(m.features[20], torch.nn.Conv3d) and m.features[20].out_channels == 96


@pytest.mark.parametrize("pooling, n", [("avg", 192), ("max", 192), ("concat_avg_max", 384), ("spp", 192 * 73)])
def test_pooling_sizes(pooling, n):
    m = VGG3D(pooling=pooling).eval()
    with torch.no_grad():
        y = m(torch.randn(2, 1, 64, 64, 64))
    assert y.shape == (2, n) and m.n_features == n


def test_stage_specific_takes_the_chosen_layer():
    m = VGG3D(extraction="stage_specific", layer_num=20).eval()
    x = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        ref = m.features[:21](x).mean(dim=(2, 3, 4))
        assert torch.allclose(m(x), ref)
    assert m(x).shape == (1, 96)
    with pytest.raises(ValueError, match="layer_num"):
        VGG3D(extraction="stage_specific", layer_num=34)


def test_max_pooling_is_the_global_maximum_of_the_last_block():
    m = VGG3D(pooling="max").eval()
    x = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        assert torch.equal(m(x), m.features(x).amax(dim=(2, 3, 4)))


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="pooling"):
        VGG3D(pooling="median")
    with pytest.raises(ValueError, match="extraction"):
        VGG3D(extraction="all")


def test_class_samples_differ_as_their_classes_say():
    from synapse_bmz.simulate.synapse_classes import SYNAPSE_CLASSES, simulate_class_sample

    a = simulate_class_sample(0, 5, shape=(48, 64, 64))
    b = simulate_class_sample(1, 5, shape=(48, 64, 64))
    c = simulate_class_sample(2, 5, shape=(48, 64, 64))
    d = simulate_class_sample(3, 5, shape=(48, 64, 64))
    assert (b.labels["vesicles"] > 0).mean() > 2 * (a.labels["vesicles"] > 0).mean()  # density
    assert SYNAPSE_CLASSES[2].vesicle_radius_nm > SYNAPSE_CLASSES[1].vesicle_radius_nm
    assert d.labels["dense_core_vesicles"].max() >= 1 and a.labels["dense_core_vesicles"].max() == 0
    assert a.raw.shape == (48, 64, 64) and abs(float(a.raw.mean())) < 1e-3
    again = simulate_class_sample(0, 5, shape=(48, 64, 64))
    np.testing.assert_array_equal(a.raw, again.raw)  # a pure function of (class, seed)
    assert a.synapse.class_id[0] == 0 and np.isfinite(a.synapse[["pre_x_nm", "post_x_nm"]].to_numpy()).all()
    # vesicles lie on the pre side: pre point left of the centre along x, post point right of it
    s = a.synapse.iloc[0]
    assert s.pre_x_nm < s.center_x_nm < s.post_x_nm
    _ = c
