"""IMOD model files: round trips and a cross-check with the `imodmodel` package."""

import imodmodel
import numpy as np
import pytest
from imodmodel.models import ImodModel as ExternalModel

from analysis import imod
from analysis.synthetic import draw_spheres

VOXEL = (3.0, 1.5, 1.5)


def test_point_model_round_trip_and_imodmodel_agrees(tmp_path):
    centers = np.array([[6.0, 30.0, 45.0], [12.0, 7.5, 1.5], [0.0, 0.0, 0.0]])
    radii = np.array([15.0, 18.0, 21.0])
    path = imod.write_point_model(tmp_path / "v.mod", centers, radii, VOXEL, (10, 40, 50))
    table = imod.points_table(imod.read_model(path))
    np.testing.assert_allclose(table[["point_z_nm", "point_y_nm", "point_x_nm"]], centers, atol=1e-4)
    np.testing.assert_allclose(table["radius_nm"], radii, rtol=1e-6)
    external = imodmodel.read(path)
    pixels = centers / VOXEL
    np.testing.assert_allclose(external[["x", "y", "z"]], pixels[:, ::-1], atol=1e-5)
    model = ExternalModel.from_file(path)
    assert model.header.xmax == 50 and model.header.ymax == 40 and model.header.zmax == 10
    assert model.header.pixelsize == pytest.approx(1.5) and model.header.units == -9
    assert model.header.zscale == pytest.approx(2.0)
    assert model.objects[0].header.flags.scattered
    np.testing.assert_allclose(model.objects[0].contours[0].point_sizes, radii / 1.5, rtol=1e-6)


def test_flip_y(tmp_path):
    path = imod.write_point_model(tmp_path / "v.mod", np.array([[0.0, 3.0, 0.0]]), [3.0], VOXEL, (4, 10, 10), flip_y=True)
    assert imodmodel.read(path)["y"].iloc[0] == pytest.approx(10 - 1 - 2)
    back = imod.points_table(imod.read_model(path), flip_y=True)
    assert back["point_y_nm"].iloc[0] == pytest.approx(3.0)


def test_contour_model_round_trip(tmp_path):
    labels = draw_spheres((6, 40, 40), np.array([[9.0, 30.0, 30.0]]), [7.5], VOXEL)
    labels[2:4, 5:10, 5:15] = 2  # a box: contours at known positions
    path = imod.write_contour_model(tmp_path / "seg.mod", labels, VOXEL)
    model = imod.read_model(path)
    assert [o.name for o in model.objects] == ["label 1", "label 2"]
    box = model.objects[1]
    assert len(box.contours) == 2 and not box.scattered
    for z, contour in zip((2, 3), box.contours):
        assert np.all(contour[:, 2] == z)
        assert contour[:, 0].min() == pytest.approx(4.5) and contour[:, 0].max() == pytest.approx(14.5)
        assert contour[:, 1].min() == pytest.approx(4.5) and contour[:, 1].max() == pytest.approx(9.5)
    external = imodmodel.read(path)
    assert len(external) == sum(len(c) for o in model.objects for c in o.contours)
    np.testing.assert_allclose(external[external.object_id == 1][["x", "y", "z"]], np.concatenate(box.contours), atol=1e-5)
    # every sphere slice has a contour, centred on the sphere
    sphere = model.objects[0]
    assert {int(c[0, 2]) for c in sphere.contours} == set(np.flatnonzero((labels == 1).any(axis=(1, 2))))
    np.testing.assert_allclose(np.concatenate(sphere.contours)[:, :2].mean(axis=0), [20.0, 20.0], atol=0.5)


def test_rejects_non_imod_file(tmp_path):
    path = tmp_path / "x.mod"
    path.write_bytes(b"nothing here")
    with pytest.raises(ValueError, match="not an IMOD"):
        imod.read_model(path)
