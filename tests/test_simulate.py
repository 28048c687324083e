"""Tests of the synapse simulators: determinism, label consistency, physics."""

from __future__ import annotations

import edt
import numpy as np
import pytest
import tifffile

from synapse_bmz.simulate import (
    PARTNER_COLUMNS,
    VESICLE_COLUMNS,
    simulate_cryo_tomogram,
    simulate_sstem_neuropil,
    simulate_tomogram,
    training_pairs,
    write_simulation,
)
from synapse_bmz.simulate.tilt import backproject_tilt_series, project_tilt_series, ramp_filter, tilt_angles_deg

SHAPE = (40, 128, 128)
VOXEL_NM = (1.5, 1.5, 1.5)


@pytest.fixture(scope="module")
def sim():
    return simulate_tomogram(SHAPE, VOXEL_NM, seed=3)


@pytest.fixture(scope="module")
def neuropil():
    return simulate_sstem_neuropil((8, 160, 160), seed=2)


def test_same_seed_same_arrays(sim):
    again = simulate_tomogram(SHAPE, VOXEL_NM, seed=3)
    np.testing.assert_array_equal(sim.raw, again.raw)
    for name in sim.labels:
        np.testing.assert_array_equal(sim.labels[name], again.labels[name])
    assert sim.vesicles.equals(again.vesicles)
    other = simulate_tomogram(SHAPE, VOXEL_NM, seed=4)
    assert not np.array_equal(sim.raw, other.raw)


def test_raw_and_labels_shapes(sim):
    assert sim.raw.shape == SHAPE and sim.raw.dtype == np.float32
    assert np.isfinite(sim.raw).all()
    assert sim.voxel_size_nm == VOXEL_NM
    for name, label in sim.labels.items():
        assert label.shape == SHAPE, name
    for name in ("vesicles", "compartments", "mitochondria", "dense_core_vesicles"):
        assert sim.labels[name].dtype == np.uint32
    for name in ("active_zone", "psd", "membrane", "ribbon", "presynaptic_density"):
        assert sim.labels[name].dtype == bool


def test_vesicle_table_matches_labels(sim):
    table = sim.vesicles
    assert list(table.columns) == list(VESICLE_COLUMNS)
    ids = np.unique(sim.labels["vesicles"])
    ids = ids[ids > 0]
    assert len(table) == len(ids) > 5
    assert sorted(table["label"]) == sorted(ids)
    assert table["radius_nm"].between(17.5, 25.0).all()
    assert {"docked", "tethered", "distant"} <= set(table["pool"])
    # centres lie in the labelled vesicle, inside the pre-synaptic compartment
    for row in table.itertuples():
        idx = tuple(int(c / v) for c, v in zip((row.center_z_nm, row.center_y_nm, row.center_x_nm), VOXEL_NM))
        assert sim.labels["vesicles"][idx] == row.label
        assert sim.labels["compartments"][idx] == 1
    # the labelled extent agrees with the radius (vesicles not cut by the volume border)
    row = table.iloc[int(np.argmin(np.abs(table["center_z_nm"] - SHAPE[0] * VOXEL_NM[0] / 2)))]
    if row.center_z_nm - row.radius_nm > 0 and row.center_z_nm + row.radius_nm < SHAPE[0] * VOXEL_NM[0]:
        volume_nm3 = (sim.labels["vesicles"] == row.label).sum() * np.prod(VOXEL_NM)
        assert volume_nm3 == pytest.approx(4 / 3 * np.pi * row.radius_nm**3, rel=0.15)


def test_docked_vesicles_touch_active_zone(sim):
    dist_to_az = edt.edt(~sim.labels["active_zone"], anisotropy=VOXEL_NM, black_border=False)
    docked = sim.vesicles[sim.vesicles["pool"] == "docked"]
    assert len(docked) >= 1
    for row in docked.itertuples():
        gap_nm = dist_to_az[sim.labels["vesicles"] == row.label].min()
        assert gap_nm <= 4.0, (row.label, gap_nm)
    distant = sim.vesicles[sim.vesicles["pool"] == "distant"]
    for row in distant.itertuples():
        assert dist_to_az[sim.labels["vesicles"] == row.label].min() > 40.0


def test_psd_faces_active_zone_across_cleft(sim):
    az, psd = sim.labels["active_zone"], sim.labels["psd"]
    assert az.sum() > 100 and psd.sum() > 100
    assert np.all(sim.labels["compartments"][az] == 1)
    assert np.all(sim.labels["compartments"][psd] == 2)
    dist_to_psd = edt.edt(~psd, anisotropy=VOXEL_NM, black_border=False)
    median_nm = np.median(dist_to_psd[az])
    # AZ voxels sit on the inner half of the membrane: cleft (20 nm) + membrane
    assert 18.0 <= median_nm <= 30.0


def test_missing_wedge_depletes_fourier_space(sim):
    def wedge_ratio(volume):
        spectrum = np.abs(np.fft.fftshift(np.fft.fft2(volume - volume.mean(), axes=(0, 2)), axes=(0, 2))) ** 2
        power = spectrum.mean(axis=1)  # (kz, kx)
        kz = np.fft.fftshift(np.fft.fftfreq(volume.shape[0], VOXEL_NM[0]))[:, None]
        kx = np.fft.fftshift(np.fft.fftfreq(volume.shape[2], VOXEL_NM[2]))[None, :]
        angle = np.degrees(np.arctan2(np.abs(kx), np.abs(kz)))  # 0 = along kz (beam)
        radius = np.hypot(kz, kx)
        band = (radius > 0.05) & (radius < 0.2)
        return power[band & (angle < 20)].mean() / power[band & (angle > 40)].mean()

    assert wedge_ratio(sim.raw) < 0.3 * wedge_ratio(sim.density)


def test_fbp_recovers_in_plane_structure():
    volume = np.zeros((32, 4, 96), np.float32)
    volume[:, :, 40:44] = 1.0  # wall along z, fully sampled
    angles = tilt_angles_deg(60.0, 2.0)
    rec = backproject_tilt_series(ramp_filter(project_tilt_series(volume, angles), angles), angles, 32)
    profile = rec[16, 0]
    assert 40 <= int(np.argmax(profile)) <= 43
    assert profile[41] > 5 * np.abs(profile[:30]).max()


def test_ribbon_variant_labels():
    rib = simulate_tomogram((40, 128, 128), VOXEL_NM, seed=1, ribbon=True)
    assert rib.labels["ribbon"].sum() > 0 and rib.labels["presynaptic_density"].sum() > 0
    assert not np.any(rib.labels["ribbon"] & rib.labels["presynaptic_density"])
    assert np.all(rib.labels["compartments"][rib.labels["ribbon"]] == 1)
    assert "ribbon" in set(rib.vesicles["pool"])


def test_cryo_contrast_is_inverted():
    cryo = simulate_cryo_tomogram((32, 128, 128), seed=3)
    rt = simulate_tomogram((32, 128, 128), (1.2, 1.2, 1.2), seed=3)
    assert cryo.modality == "cryo" and cryo.voxel_size_nm == (1.2, 1.2, 1.2)
    membrane = cryo.labels["membrane"]
    assert cryo.raw[membrane].mean() > 0 > rt.raw[membrane].mean()


def test_neuropil_partner_table_matches_labels(neuropil):
    table, vox = neuropil.partners, neuropil.voxel_size_nm
    assert list(table.columns) == list(PARTNER_COLUMNS)
    assert len(table) >= 2
    neurons = neuropil.labels["neurons"]
    for row in table.itertuples():
        pre_idx = tuple(int(round(c / v)) for c, v in zip((row.pre_z_nm, row.pre_y_nm, row.pre_x_nm), vox))
        post_idx = tuple(int(round(c / v)) for c, v in zip((row.post_z_nm, row.post_y_nm, row.post_x_nm), vox))
        assert neurons[pre_idx] == row.pre_label
        assert neurons[post_idx] == row.post_label
        assert neuropil.labels["tbar"][pre_idx]
        assert row.pre_label != row.post_label
    # polyadic: every synapse has one pre-synaptic and at least two partners
    per_synapse = table.groupby("synapse_id").agg(n_pre=("pre_label", "nunique"), n_post=("post_label", "nunique"))
    assert (per_synapse["n_pre"] == 1).all() and (per_synapse["n_post"] >= 2).all()
    assert neuropil.raw.dtype == np.uint8 and neuropil.raw.shape == neurons.shape


def test_write_simulation_roundtrip(sim, tmp_path):
    paths = write_simulation(sim, tmp_path / "out")
    names = {p.name for p in paths}
    assert {"raw.tif", "vesicles.tif", "active_zone.tif", "vesicles.csv"} <= names
    with tifffile.TiffFile(tmp_path / "out" / "raw.tif") as tif:
        np.testing.assert_array_equal(tif.asarray(), sim.raw)
        assert tif.imagej_metadata["spacing"] == pytest.approx(VOXEL_NM[0])
        assert tif.imagej_metadata["unit"] == "nm"
        num, den = tif.pages[0].tags["XResolution"].value
        assert den / num == pytest.approx(VOXEL_NM[2], rel=1e-4)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "vesicles.tif"), sim.labels["vesicles"])


def test_training_pairs_yield_targets():
    pairs = list(training_pairs("sstem", seeds=[0], shape=(4, 96, 96)))
    assert len(pairs) == 1
    raw, targets = pairs[0]
    assert raw.shape == (4, 96, 96) and raw.dtype == np.float32
    assert targets["neurons_boundaries"].dtype == np.float32
    with pytest.raises(ValueError, match="kind"):
        next(training_pairs("nope", [0], (4, 32, 32)))


def test_lumen_density_fills_vesicles_and_keeps_the_phantom():
    """A stained lumen (FIB-SEM look) darkens vesicle interiors; labels stay those of the seed."""
    from synapse_bmz.simulate import simulate_tomogram

    plain = simulate_tomogram((24, 96, 96), voxel_size_nm=(2.0, 2.0, 2.0), seed=4)
    filled = simulate_tomogram((24, 96, 96), voxel_size_nm=(2.0, 2.0, 2.0), seed=4, lumen_density=0.9)
    drawn = simulate_tomogram((24, 96, 96), voxel_size_nm=(2.0, 2.0, 2.0), seed=4, lumen_density=(0.5, 0.9))
    np.testing.assert_array_equal(plain.labels["vesicles"], filled.labels["vesicles"])
    np.testing.assert_array_equal(plain.labels["vesicles"], drawn.labels["vesicles"])
    inside = plain.labels["vesicles"] > 0
    assert filled.raw[inside].mean() < plain.raw[inside].mean()
    assert 0.5 <= drawn.params["lumen_density"] <= 0.9


def test_neuropil_defaults_are_the_original_simulator():
    """Every new keyword at its default gives the volumes the partner packages were trained and
    scored on (sha256 of seed 2 from the simulator before the keywords existed, git 56c2b8f)."""
    import hashlib

    r = simulate_sstem_neuropil((8, 160, 160), seed=2, n_synapses=6)
    h = hashlib.sha256()
    for part in (r.raw, r.labels["synapses"], r.labels["membrane"]):
        h.update(part.tobytes())
    h.update(r.partners.to_csv(index=False).encode())
    assert h.hexdigest() == "cdbc2f3c07caff5c2a0e70ffe2dcaea8075698497a2540ac36b260fdfbff1fe6"


def test_vnc_like_neuropil_has_wider_membranes_larger_neurites_and_synapses():
    from scipy import ndimage

    from synapse_bmz.simulate.sstem import VNC_LIKE

    base = simulate_sstem_neuropil((8, 256, 256), seed=4, n_synapses=8)
    vnc = simulate_sstem_neuropil((8, 256, 256), seed=4, n_synapses=8, **VNC_LIKE)
    def band_width_px(r):  # membrane pixels per pixel of neuron boundary
        n = r.labels["neurons"]
        edge = np.zeros(n.shape, bool)
        edge[:, 1:] |= n[:, 1:] != n[:, :-1]
        return r.labels["membrane"].sum() / edge.sum()

    assert band_width_px(vnc) > 2 * band_width_px(base)
    assert vnc.params["n_neurons"] < base.params["n_neurons"]
    # synapses span synapse_sections sections and carry more mask per synapse
    lab, n = ndimage.label(vnc.labels["synapses"])
    spans = [s[0].stop - s[0].start for s in ndimage.find_objects(lab)]
    assert n >= 1 and max(spans) >= 3
    per_syn = lambda r: r.labels["synapses"].sum() / max(r.partners["synapse_id"].nunique(), 1)
    assert per_syn(vnc) > 2 * per_syn(base)
    # the partner table still points at the labelled neurons
    for row in vnc.partners.itertuples():
        idx = tuple(int(round(c / v)) for c, v in zip((row.post_z_nm, row.post_y_nm, row.post_x_nm), vnc.voxel_size_nm))
        assert vnc.labels["neurons"][idx] == row.post_label
    with pytest.raises(ValueError, match="synapse_sections"):
        simulate_sstem_neuropil((4, 96, 96), synapse_sections=0)


def test_tomogram_defaults_are_the_original_simulator():
    """No ``fibsem``/``lumen_density``: the tomogram vesicles_3d's held-out seeds were scored on
    (sha256 of raw, every label and the vesicle table from the simulator before ``fibsem``, git 456e3cf)."""
    import hashlib

    from synapse_bmz.simulate import simulate_tomogram

    s = simulate_tomogram((24, 96, 96), voxel_size_nm=(2.0, 2.0, 2.0), seed=5)
    h = hashlib.sha256()
    h.update(s.raw.tobytes())
    for name in sorted(s.labels):
        h.update(name.encode())
        h.update(s.labels[name].tobytes())
    h.update(s.vesicles.to_csv(index=False).encode())
    assert h.hexdigest() == "f009bcb0762e29ebce215a9ba633916a836b516ed5ffe0aced2ab7f49152ac29"


def test_fibsem_look_is_the_one_vesicles_3d_trained_on():
    """``fibsem={}`` gives the FIB-SEM-look volumes vesicles_3d's seeds 12-23 were simulated with
    (sha256 from the code before ``extra_training``, git cf8017c, which wrote them as
    ``fibsem={"seeds": [12, 24]}``); the old ``seeds`` key is refused in one line."""
    import hashlib

    from synapse_bmz.simulate import simulate_tomogram

    h = hashlib.sha256()
    for seed in (12, 23):
        s = simulate_tomogram((24, 96, 96), voxel_size_nm=(2.0, 2.0, 2.0), seed=seed, fibsem={})
        h.update(s.raw.tobytes())
        for name in sorted(s.labels):
            h.update(s.labels[name].tobytes())
    assert h.hexdigest() == "5d0c6f9b9cd2dc7d75a9b0acd4f3efbe1319cfb0269e2ebcf1409c38cf6cd200"
    with pytest.raises(ValueError, match="unknown `fibsem` settings \\['seeds'\\]"):
        simulate_tomogram((16, 48, 48), voxel_size_nm=(2.0, 2.0, 2.0), seed=0, fibsem={"seeds": [0, 1]})


def test_fibsem_vesicles_are_filled_dark_blobs():
    """Stained FIB-SEM look: the vesicle lumen is darker than its own membrane ring and the cytosol
    (a hollow tomogram vesicle has a lighter lumen than its ring); restacked sections move labels too."""
    from scipy import ndimage

    from synapse_bmz.simulate import simulate_tomogram

    kw = dict(voxel_size_nm=(2.0, 2.0, 2.0), seed=4)
    hollow = simulate_tomogram((32, 128, 128), **kw)
    stained = simulate_tomogram((32, 128, 128), fibsem={"shuffle_probability": 0.0, "lumen_density": 0.9}, **kw)
    np.testing.assert_array_equal(hollow.labels["vesicles"], stained.labels["vesicles"])
    assert stained.modality == "fibsem" and stained.raw.dtype == np.float32
    ves = hollow.labels["vesicles"] > 0
    depth = ndimage.distance_transform_edt(ves)
    lumen, ring = depth >= 4, ves & (depth <= 2)
    cytosol = (hollow.labels["compartments"] == 1) & ~ndimage.binary_dilation(ves, iterations=4)
    assert hollow.raw[lumen].mean() > hollow.raw[ring].mean()
    assert stained.raw[lumen].mean() < stained.raw[ring].mean() < stained.raw[cytosol].mean()
    shuffled = simulate_tomogram((32, 128, 128), fibsem={"shuffle_probability": 1.0}, **kw)
    order = np.asarray(shuffled.params["fibsem"]["section_order"])
    assert sorted(order.tolist()) == list(range(32)) and not np.array_equal(order, np.arange(32))
    np.testing.assert_array_equal(shuffled.labels["vesicles"], hollow.labels["vesicles"][order])
    with pytest.raises(ValueError, match="unknown `fibsem`"):
        simulate_tomogram((16, 64, 64), fibsem={"blur": 3.0})
