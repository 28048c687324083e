"""Grad-CAM of the VGG3D extractor (synapse_bmz.cluster.gradcam)."""

import numpy as np
import pytest
import torch

from synapse_bmz.cluster.gradcam import grad_cam, multi_layer_cam, top_attended_regions, write_cam_png
from synapse_bmz.models.vgg3d import VGG3D

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return VGG3D().eval()


def _crop():
    rng = np.random.default_rng(0)
    c = rng.normal(0, 0.1, (32, 32, 32)).astype(np.float32)
    c[4:10, 20:28, 20:28] += 3.0  # one bright object off-centre
    return c


def test_cam_has_the_crop_shape_and_one_scale_per_crop(model):
    cam = grad_cam(model, _crop(), "middle")
    assert cam.shape == (32, 32, 32) and cam.dtype == np.float32
    assert cam.min() >= 0 and cam.max() == pytest.approx(1.0)
    # one maximum for the whole crop: slices are not rescaled one by one
    assert sum(np.isclose(cam[k].max(), 1.0) for k in range(32)) <= 2


def test_cam_explains_one_feature_only_where_it_looks():
    """A net whose only feature is the first conv channel at one voxel-wide kernel: the map follows the input."""
    m = VGG3D(extraction="stage_specific", layer_num=0).eval()
    with torch.no_grad():
        m.features[0].weight.zero_()
        m.features[0].bias.zero_()
        m.features[0].weight[0, 0, 1, 1, 1] = 1.0  # channel 0 copies the input
    crop = np.zeros((16, 16, 16), np.float32)
    crop[3, 4, 5] = 1.0
    cam = grad_cam(m, crop, 0, direction=0)
    assert np.unravel_index(int(np.argmax(cam)), cam.shape) == (3, 4, 5)


def test_multi_layer_and_png_with_consistent_grey(model, tmp_path):
    from PIL import Image

    crop = _crop()
    cams = multi_layer_cam(model, crop, ("early", "middle", "late"))
    assert list(cams) == ["features.3", "features.20", "features.27"]
    crop[:, 0, 0] = 7.0  # the same intensity in every slice
    path = write_cam_png(tmp_path / "a.png", crop, cams, n_slices=3)
    img = np.asarray(Image.open(path))
    assert img.shape == (3 * 32, 4 * 32, 3)
    corners = [tuple(img[r * 32, 0]) for r in range(3)]
    assert len(set(corners)) == 1  # one grey window for the whole crop


def test_top_regions_in_nm(model):
    cams = np.zeros((3, 9, 9, 9), np.float32)
    cams[0, 4, 4, 4] = 1.0
    cams[1, 0, 0, 8] = 1.0
    cams[1, 0, 1, 8] = 1.0
    cams[2, 8, 8, 8] = 0.5
    t = top_attended_regions(cams, (2.0, 2.0, 2.0), ["a", "b", "c"], n_top=2, radius_nm=2.0)
    assert list(t.synapse_id) == ["b", "a"]
    assert (t.peak_z_nm[0], t.peak_y_nm[0], t.peak_x_nm[0]) == (-8.0, -8.0, 8.0)


def test_bad_layer_is_refused(model):
    with pytest.raises(ValueError, match="layer_num"):
        grad_cam(model, _crop(), 99)
