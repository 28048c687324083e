"""Crops around synapses (analysis.synapse_crops) on hand-made volumes with known answers."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.synapse_crops import (
    SEGMENTATION_NEEDS, SEGMENTATION_TYPES, crop_synapses, read_synapse_table, synapse_table, synapses_from_mask,
    synapses_from_tables,
)

VS = (4.0, 2.0, 2.0)  # anisotropic on purpose: z and x must not be confused


def _scene():
    """40 x 80 x 80 voxels at VS: pre segment 1 (x < 40), post 2 (x >= 40); a near and a far
    vesicle cloud in the pre segment, a near and a far cleft, two mitochondria; raw = 1 everywhere."""
    shape = (40, 80, 80)
    z, y, x = np.indices(shape)
    seg = np.where(x < 40, 1, 2).astype(np.uint32)
    ves = np.zeros(shape, np.uint32)
    # near cloud: 3 separate vesicles (radius 2 voxels in y, x) close together left of the centre
    for i, (cy, cx) in enumerate([(38, 30), (42, 30), (40, 26)], 1):
        ves[((z - 20) / 1.0) ** 2 + ((y - cy) / 2.0) ** 2 + ((x - cx) / 2.0) ** 2 <= 1.0] = i
    ves[(np.abs(z - 20) <= 1) & (np.abs(y - 8) <= 2) & (np.abs(x - 8) <= 2)] = 9  # far cloud
    cleft = np.zeros(shape, np.uint32)
    cleft[(np.abs(z - 20) <= 3) & (np.abs(y - 40) <= 6) & (x >= 39) & (x <= 40)] = 1  # at the synapse
    cleft[(np.abs(z - 20) <= 3) & (np.abs(y - 70) <= 3) & (x >= 39) & (x <= 40)] = 2  # far
    mito = np.zeros(shape, np.uint32)
    mito[(np.abs(z - 20) <= 2) & (np.abs(y - 40) <= 3) & (np.abs(x - 50) <= 3)] = 1  # near, post side
    mito[(np.abs(z - 20) <= 2) & (np.abs(y - 70) <= 3) & (np.abs(x - 70) <= 3)] = 2
    labels = {"segments": seg, "vesicles": ves, "cleft": cleft, "mitochondria": mito}
    c = np.array([19.5, 39.5, 39.5]) * VS  # the cube centre: crop voxels land on volume voxels
    syn = synapse_table([c], [c - [0, 0, 20]], [c + [0, 0, 20]], ["s0"])
    return np.ones(shape, np.float32), labels, syn


def _kept(seg_type, **kw):
    raw, labels, syn = _scene()
    # crops on the volume's own grid, so kept voxels map back one to one
    res = crop_synapses(raw, VS, syn, labels=labels, segmentation_type=seg_type, alpha=1.0, grey=0.0,
                        crop_shape=(40, 80, 80), crop_voxel_size_nm=VS, **kw)
    return res.crops[0] > 0.5, labels, res


def test_every_type_keeps_exactly_its_objects():
    _, lab, _ = _scene()
    pre, post = lab["segments"] == 1, lab["segments"] == 2
    near_cloud = np.isin(lab["vesicles"], [1, 2, 3])
    near_cleft, all_cleft = lab["cleft"] == 1, lab["cleft"] > 0
    expected = {
        0: np.ones_like(pre), 1: pre, 2: post, 3: pre | post,
        4: near_cloud | near_cleft, 5: near_cloud | near_cleft | pre | post, 6: near_cloud,
        7: near_cleft, 8: lab["mitochondria"] == 1, 9: (lab["vesicles"] > 0) | all_cleft, 10: near_cleft | pre,
    }
    assert set(expected) == set(SEGMENTATION_TYPES) == set(SEGMENTATION_NEEDS)
    for t, exp in expected.items():
        kept, _, _ = _kept(t)
        assert np.array_equal(kept, exp), f"type {t}: {int((kept != exp).sum())} voxels differ"


def test_vesicle_cloud_volume_is_the_closest_cloud_in_nm3():
    _, lab, res = _kept(6)
    expected = np.isin(lab["vesicles"], [1, 2, 3]).sum() * np.prod(VS)
    assert res.table.vesicle_cloud_volume_nm3[0] == pytest.approx(expected)
    assert (res.table.pre_label[0], res.table.post_label[0]) == (1, 2)


@pytest.mark.parametrize("seg_type", [t for t in SEGMENTATION_NEEDS if SEGMENTATION_NEEDS[t]])
def test_missing_class_is_a_one_line_error_naming_the_type(seg_type):
    raw, labels, syn = _scene()
    need = SEGMENTATION_NEEDS[seg_type][0]
    labels.pop(need)
    with pytest.raises(ValueError, match=rf"segmentation type {seg_type} .*'{need}'") as err:
        crop_synapses(raw, VS, syn, labels=labels, segmentation_type=seg_type, crop_shape=(8, 8, 8))
    assert "\n" not in str(err.value)


def test_alpha_blends_outside_the_mask_toward_grey():
    raw, labels, syn = _scene()
    raw = raw * 3.0
    res = crop_synapses(raw, VS, syn, labels=labels, segmentation_type=1, alpha=0.25, grey=1.0,
                        crop_shape=(40, 80, 80), crop_voxel_size_nm=VS)
    pre = labels["segments"] == 1
    np.testing.assert_allclose(res.crops[0][pre], 3.0)
    np.testing.assert_allclose(res.crops[0][~pre], 0.75 * 3.0 + 0.25 * 1.0)


def test_resampling_follows_nm_coordinates_per_axis():
    """raw = a linear function of the nm position: every crop voxel must equal it at its own nm position."""
    shape = (30, 60, 50)
    z, y, x = np.indices(shape).astype(np.float64)
    raw = (z * VS[0] * 1.0 + y * VS[1] * 10.0 + x * VS[2] * 100.0).astype(np.float32)
    c = np.array([60.0, 61.0, 49.0])
    res = crop_synapses(raw, VS, synapse_table([c]), crop_shape=(5, 7, 9), crop_voxel_size_nm=(6.0, 3.0, 5.0))
    cz, cy, cx = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * v + ci for n, v, ci in
                               zip((5, 7, 9), (6.0, 3.0, 5.0), c)], indexing="ij")
    np.testing.assert_allclose(res.crops[0], cz + 10 * cy + 100 * cx, rtol=1e-5)
    assert not res.table.at_border[0] and res.table.padded_fraction[0] == 0.0
    assert res.voxel_size_nm == (6.0, 3.0, 5.0)


def test_border_crops_are_padded_with_grey_and_flagged():
    raw = np.full((10, 10, 10), 5.0, np.float32)
    syn = synapse_table([[0.0, 0.0, 18.0], [9.0, 9.0, 9.0]])  # a corner; one inside
    res = crop_synapses(raw, (2.0, 2.0, 2.0), syn, crop_shape=(4, 4, 4), crop_voxel_size_nm=(2.0, 2.0, 2.0), grey=-1.0)
    # the first cube samples nm -3, -1, 1, 3 in z and y and 15..21 in x (volume: 0..18 nm):
    # 2 of 4 samples per axis lie inside, 8 of 64 voxels
    assert res.table.at_border.tolist() == [True, False]
    assert res.table.padded_fraction[0] == pytest.approx(1 - 8 / 64)
    assert (res.crops[0] == -1.0).sum() == 56 and (res.crops[0] == 5.0).sum() == 8
    assert (res.crops[1] == 5.0).all()


def test_edge_z_padding_extrudes_thin_volumes_and_flags_it():
    # two sections 5 nm apart, values 1 and 3; a 6-deep cube at 5 nm reaches 12.5 nm beyond each
    raw = np.stack([np.full((10, 10), 1.0), np.full((10, 10), 3.0)]).astype(np.float32)
    raw[:, :, 0] = 7.0  # a marker column at x = 0 in both sections
    syn = synapse_table([[2.5, 22.5, 22.5]])
    kw = dict(crop_shape=(6, 4, 4), crop_voxel_size_nm=(5.0, 5.0, 5.0), grey=-1.0)
    edge = crop_synapses(raw, (5.0, 5.0, 5.0), syn, z_padding="edge", labels={"cleft": (raw == 7).astype(np.uint8)},
                         segmentation_type=7, alpha=0.0, **kw)
    # cube z samples at -10, -5, 0, 5, 10, 15 nm: clamped to sections 0, 0, 0, 1, 1, 1
    np.testing.assert_array_equal(edge.crops[0][:, 0, 1], [1, 1, 1, 3, 3, 3])
    assert edge.table.z_extruded_fraction[0] == pytest.approx(4 / 6) and edge.table.at_border[0]
    assert edge.table.padded_fraction[0] == 0.0 and not (edge.crops[0] == -1.0).any()
    grey = crop_synapses(raw, (5.0, 5.0, 5.0), syn, **kw)
    assert grey.table.padded_fraction[0] == pytest.approx(4 / 6) and grey.table.z_extruded_fraction[0] == 0.0
    np.testing.assert_array_equal(grey.crops[0][:, 0, 1], [-1, -1, 1, 3, -1, -1])
    with pytest.raises(ValueError, match="z_padding"):
        crop_synapses(raw, (5.0, 5.0, 5.0), syn, z_padding="mirror", **kw)


def test_shift_moves_the_cube_toward_the_pre_side():
    x = np.arange(100, dtype=np.float32)
    raw = np.broadcast_to(x, (10, 10, 100)).copy()
    c = np.array([10.0, 10.0, 100.0])
    syn = synapse_table([c], [c - [0, 0, 50]], [c + [0, 0, 50]])
    kw = dict(crop_shape=(3, 3, 3), crop_voxel_size_nm=(2.0, 2.0, 2.0))
    plain = crop_synapses(raw, (2, 2, 2), syn, **kw)
    shifted = crop_synapses(raw, (2, 2, 2), syn, shift_to_pre_nm=20.0, **kw)
    assert shifted.table.crop_center_x_nm[0] == pytest.approx(80.0)
    np.testing.assert_allclose(shifted.crops[0], plain.crops[0] - 10.0)


def test_decide_pre_side_swaps_to_the_side_with_vesicles():
    raw, labels, syn = _scene()
    swapped = syn.copy()
    swapped[["pre_z_nm", "pre_y_nm", "pre_x_nm"]] = syn[["post_z_nm", "post_y_nm", "post_x_nm"]].to_numpy()
    swapped[["post_z_nm", "post_y_nm", "post_x_nm"]] = syn[["pre_z_nm", "pre_y_nm", "pre_x_nm"]].to_numpy()
    kw = dict(labels=labels, segmentation_type=1, grey=0.0, crop_shape=(40, 80, 80), crop_voxel_size_nm=VS)
    wrong = crop_synapses(raw, VS, swapped, **kw)
    fixed = crop_synapses(raw, VS, swapped, decide_pre_side=True, **kw)
    assert (wrong.table.pre_label[0], fixed.table.pre_label[0]) == (2, 1)
    np.testing.assert_array_equal(fixed.crops[0] > 0.5, labels["segments"] == 1)


def test_synapseclusterem_spreadsheet_maps_xyz_voxels_to_zyx_nm(tmp_path):
    df = pd.DataFrame({"bbox_name": ["bbox1"], "Var1": ["syn_7"],
                       "central_coord_1": [10], "central_coord_2": [20], "central_coord_3": [3],
                       "side_1_coord_1": [8], "side_1_coord_2": [20], "side_1_coord_3": [3],
                       "side_2_coord_1": [12], "side_2_coord_2": [21], "side_2_coord_3": [4]})
    path = tmp_path / "synapse_info.xlsx"
    df.to_excel(path, index=False)
    t = read_synapse_table(path, voxel_size_nm=(40.0, 8.0, 8.0))
    assert t.synapse_id[0] == "syn_7" and t.bbox_name[0] == "bbox1"
    assert t[["center_z_nm", "center_y_nm", "center_x_nm"]].iloc[0].tolist() == [120.0, 160.0, 80.0]
    assert t[["pre_z_nm", "pre_y_nm", "pre_x_nm"]].iloc[0].tolist() == [120.0, 160.0, 64.0]
    assert t[["post_z_nm", "post_y_nm", "post_x_nm"]].iloc[0].tolist() == [160.0, 168.0, 96.0]
    t2 = read_synapse_table(path, voxel_size_nm=(40.0, 8.0, 8.0), pre_side="side_2")
    assert t2.pre_x_nm[0] == 96.0
    with pytest.raises(ValueError, match="voxel size"):
        read_synapse_table(path)


def test_partner_and_object_tables(tmp_path):
    partners = pd.DataFrame({"synapse_id": [1], "pre_label": [3], "post_label": [4],
                             "pre_z_nm": [0.0], "pre_y_nm": [10.0], "pre_x_nm": [20.0],
                             "post_z_nm": [0.0], "post_y_nm": [30.0], "post_x_nm": [20.0]})
    t = read_synapse_table(partners)
    assert t.center_y_nm[0] == 20.0 and t.pre_label[0] == 3
    clefts = pd.DataFrame({"label": [1, 2], "centroid_z_nm": [100.0, 100.0], "centroid_y_nm": [100.0, 5000.0],
                           "centroid_x_nm": [100.0, 100.0]})
    vesicles = pd.DataFrame({"label": [1, 2, 3], "center_z_nm": [100.0, 100.0, 100.0],
                             "center_y_nm": [100.0, 100.0, 9000.0], "center_x_nm": [40.0, 60.0, 0.0]})
    clefts.to_csv(tmp_path / "clefts.csv", index=False)
    s = synapses_from_tables(tmp_path / "clefts.csv", vesicles, cloud_radius_nm=300.0)
    assert s[["pre_z_nm", "pre_y_nm", "pre_x_nm"]].iloc[0].tolist() == [100.0, 100.0, 50.0]
    assert s[["post_z_nm", "post_y_nm", "post_x_nm"]].iloc[0].tolist() == [100.0, 100.0, 150.0]
    assert s.n_cloud_vesicles.tolist() == [2, 0] and np.isnan(s.pre_x_nm[1])


@pytest.mark.parametrize("bad, match", [
    (dict(segmentation_type=11), "0..10"), (dict(alpha=1.5), r"\[0, 1\]"),
    (dict(labels={"segments": np.zeros((2, 2, 2), np.uint8)}), "same shape"),
    (dict(labels={"neurons": np.zeros((10, 10, 10), np.uint8)}), "unknown keys"),
])
def test_bad_arguments_are_one_line_errors(bad, match):
    raw = np.zeros((10, 10, 10), np.float32)
    with pytest.raises(ValueError, match=match):
        crop_synapses(raw, (1, 1, 1), synapse_table([[5.0, 5.0, 5.0]]), **bad)


def test_unknown_table_layout_names_the_columns():
    with pytest.raises(ValueError, match="no synapse coordinates"):
        read_synapse_table(pd.DataFrame({"a": [1]}))


def test_synapses_from_mask_one_per_3d_component_in_nm():
    m = np.zeros((4, 20, 20), bool)
    m[1:3, 2:4, 2:4] = True          # drawn on two consecutive sections: one synapse, 8 voxels
    m[2, 10:12, 15:16] = True        # touches nothing: a second synapse, 2 voxels
    m[3, 19, 0] = True               # a speck, dropped by the size limit
    lab, t = synapses_from_mask(m, (50.0, 5.0, 5.0), min_volume_nm3=2 * 1250.0, id_prefix="s")
    assert t.synapse_id.tolist() == ["s1", "s2"]
    np.testing.assert_allclose(t[["center_z_nm", "center_y_nm", "center_x_nm"]].to_numpy(),
                               [[75.0, 12.5, 12.5], [100.0, 52.5, 75.0]])
    assert t.synapse_volume_nm3.tolist() == [8 * 1250.0, 2 * 1250.0]
    assert set(np.unique(lab)) == {0, 1, 2} and (lab == 1).sum() == 8 and lab[3, 19, 0] == 0
    assert t[["pre_z_nm", "post_x_nm"]].isna().all().all()
    empty_lab, empty = synapses_from_mask(np.zeros((2, 4, 4)), (1, 1, 1))
    assert len(empty) == 0 and not empty_lab.any()


DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not (DATA / "drosophila_vnc").is_dir(), reason=f"real data absent: {DATA}/drosophila_vnc")
def test_real_vnc_synapses_are_cropped_around_their_annotation():
    """drosophila_vnc stack 1 (50 x 4.6 x 4.6 nm): every annotated synapse is one component, and the
    cleft-only crop (type 7) keeps that synapse's own annotation at the cube centre."""
    import tifffile
    from PIL import Image

    root = DATA / "drosophila_vnc" / "stack1"
    vs = (50.0, 4.6, 4.6)
    mask = np.stack([np.asarray(Image.open(p)) > 0 for p in sorted((root / "synapses").glob("*.png"))])
    lab, table = synapses_from_mask(mask, vs, min_volume_nm3=200 * 50 * 4.6 * 4.6, id_prefix="vnc")
    assert 30 <= len(table) <= 80 and (table.synapse_volume_nm3 > 0).all()
    raw = np.stack([tifffile.imread(p) for p in sorted((root / "raw").glob("*.tif"))[:16]])
    some = table.iloc[:4]
    kw = dict(crop_shape=(40, 40, 40), crop_voxel_size_nm=(10.0, 10.0, 10.0), grey=-1.0)
    res = crop_synapses(raw, vs, some, labels={"cleft": lab}, segmentation_type=7, alpha=1.0, **kw)
    assert res.crops.shape == (4, 40, 40, 40)
    for i in range(4):
        kept = res.crops[i] != -1.0  # alpha 1: everything outside the closest cleft is the grey
        own = crop_synapses((lab == i + 1).astype(np.float32), vs, some.iloc[[i]], **kw).crops[0] > 0
        assert kept.sum() > 100 and kept.mean() < 0.3
        assert (kept & own).sum() >= 0.9 * kept.sum()  # the kept region is this synapse's own annotation


@pytest.mark.skipif(not (DATA / "epfl_hippocampus").is_dir(), reason=f"real data absent: {DATA}/epfl_hippocampus")
def test_real_epfl_sparse_sections_are_extruded_not_padded():
    """A run of four consecutive 5 nm EPFL sections is 20 nm deep against a 400 nm cube: with
    z_padding='edge' the cube repeats the outer sections, so no voxel is grey padding in z."""
    from PIL import Image

    root = DATA / "epfl_hippocampus"
    names = [f"training{n:04d}.png" for n in range(161, 165)]
    raw = np.stack([np.asarray(Image.open(root / "slices" / n))[..., 0] for n in names]).astype(np.float32)
    psd = np.stack([np.asarray(Image.open(root / "PSD" / n))[..., 0] > 127 for n in names])
    ves = np.stack([np.asarray(Image.open(root / "vesicles" / n))[..., 0] > 127 for n in names])
    _, syn = synapses_from_mask(psd, (5.0, 5.0, 5.0), min_volume_nm3=100 * 125.0, id_prefix="psd")
    _, vt = synapses_from_mask(ves, (5.0, 5.0, 5.0), min_volume_nm3=4 * 125.0)
    syn = synapses_from_tables(syn, vt, cloud_radius_nm=500.0)
    assert len(syn) >= 2 and (syn.n_cloud_vesicles > 0).any()  # PSDs have vesicle clouds across the cleft
    res = crop_synapses(raw, (5.0, 5.0, 5.0), syn, z_padding="edge", crop_shape=(80, 80, 80),
                        crop_voxel_size_nm=(5.0, 5.0, 5.0), shift_to_pre_nm=100.0)
    # 4 of 80 cube planes fall inside the run (the centre plane lies between sections 1 and 2)
    assert res.table.z_extruded_fraction.min() >= 0.9 and res.table.at_border.all()
    interior = ~res.table.padded_fraction.gt(0).to_numpy()
    assert interior.any()
    for i in np.flatnonzero(interior):
        np.testing.assert_array_equal(res.crops[i][0], res.crops[i][30])  # repeated section 0
        assert res.crops[i].std() > 0
