"""Training on simulated tomograms: config checks, exact targets, a tiny run to a package.

Needs no real data: the simulator is part of the product. Volumes are tiny
(16 x 48 x 48) so the file stays within seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from synapse_bmz.errors import InputError
from synapse_bmz.training.config import ExtraTraining, load_train_config
from synapse_bmz.training.data import load_simulation, simulate_volume, simulation_targets
from synapse_bmz.training.pipeline import primary_metric


def _config(folder: Path, *, kind="tomogram", targets=("vesicles",), target="foreground_boundary",
            instances=None, channels=("foreground", "boundary"), recipe="vesicles", n_train=2,
            validation_seeds=(1000,), ndim=3) -> Path:
    sim = {"kind": kind, "shape": [16, 48, 48], "n_train": n_train, "validation_seeds": list(validation_seeds),
           "targets": list(targets)}
    if instances:
        sim["instances"] = instances
    cfg = {
        "seed": 0, "target": target,
        "data": {"simulation": sim, "voxel_size_nm": [3.0, 3.0, 3.0], "licence": "MIT (simulated)"},
        "model": {"ndim": ndim, "base_channels": 4, "depth": 2},
        "train": {"patch": [8, 32, 32], "batch_size": 1, "iterations": 2, "validate_every": 2,
                  "checkpoint_every": 2, "reject_empty_probability": 0.0},
        "package": {"name": "sim_test", "description": "test", "task": "vesicles", "channels": list(channels),
                    "halo": [2, 4, 4], "min_shape": [8, 16, 16], "step": [2, 2, 2],
                    "postprocessing": {"recipe": recipe, "params": {}}, "authors": ["test"]},
    }
    path = folder / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_overlapping_seeds_are_rejected(tmp_path):
    with pytest.raises(InputError, match="overlap the training seeds"):
        load_train_config(_config(tmp_path, n_train=3, validation_seeds=(2,)))


def test_simulation_needs_a_3d_model(tmp_path):
    with pytest.raises(InputError, match="3D models"):
        load_train_config(_config(tmp_path, ndim=2))


def test_foreground_boundary_needs_one_label(tmp_path):
    with pytest.raises(InputError, match="exactly one instance label"):
        load_train_config(_config(tmp_path, targets=("vesicles", "mitochondria")))


def test_split_is_by_seed_and_targets_are_the_exact_labels(tmp_path):
    cfg = load_train_config(_config(tmp_path))
    train, val = load_simulation(cfg)
    assert train.names == ["tomogram seed 0", "tomogram seed 1"] and val.names == ["tomogram seed 1000"]
    sim = simulate_volume(cfg, 1000)
    np.testing.assert_array_equal(val.instances[0], sim.labels["vesicles"])
    np.testing.assert_array_equal(val.targets[0][0], sim.labels["vesicles"] > 0)
    # the boundary channel marks the edge of every vesicle and nothing else
    assert val.targets[0][1].any() and not (val.targets[0][1] > (sim.labels["vesicles"] > 0) + 0).all()
    assert abs(float(val.raw[0].mean())) < 1e-3 and abs(float(val.raw[0].std()) - 1) < 1e-2


def test_mask_targets_one_channel_per_name():
    labels = {"ribbon": np.zeros((4, 8, 8), bool), "compartments": np.zeros((4, 8, 8), np.uint32)}
    labels["ribbon"][1, 2:4, 2:4] = True
    labels["compartments"][:, :, :4] = 1
    labels["compartments"][:, :, 4:] = 2
    t = simulation_targets(labels, ["ribbon", "compartments_boundaries"], "mask")
    assert t.shape == (2, 4, 8, 8) and t.dtype == np.float32
    assert t[0].sum() == 4
    assert t[1][:, :, 3:5].all() and not t[1][:, :, :3].any()
    with pytest.raises(InputError, match="not a label"):
        simulation_targets(labels, ["psd"], "mask")


def test_metric_follows_the_target(tmp_path):
    assert primary_metric(load_train_config(_config(tmp_path))) == "instance_f1"
    ribbon = _config(tmp_path, kind="ribbon", target="mask", targets=("ribbon", "presynaptic_density", "membrane"),
                     channels=("ribbon", "presynaptic_density", "membrane"), recipe="ribbon")
    assert primary_metric(load_train_config(ribbon)) == "foreground_dice"
    comp = _config(tmp_path, target="mask", targets=("membrane",), instances="compartments",
                   channels=("boundary",), recipe="compartments")
    assert primary_metric(load_train_config(comp)) == "instance_f1"


def test_tiny_ribbon_run_writes_a_three_channel_package(tmp_path):
    from synapse_bmz.training.pipeline import train_and_package
    from synapse_bmz.zoo.registry import load_model

    path = _config(tmp_path, kind="ribbon", target="mask", targets=("ribbon", "presynaptic_density", "membrane"),
                   channels=("ribbon", "presynaptic_density", "membrane"), recipe="ribbon")
    rdf = train_and_package(path, out_dir=tmp_path / "pkg", work_dir=tmp_path / "run", progress=False)
    model = load_model(rdf.parent)
    acc = model.config.accuracy
    assert acc["primary_metric"] == "foreground_dice"
    assert {"dice_ribbon", "dice_presynaptic_density", "dice_membrane"} <= set(acc)
    assert "seeds [1000]" in acc["split"]
    card = (rdf.parent / "README.md").read_text()
    assert "Trained on simulation only" in card
    assert np.load(rdf.parent / "test_output.npy").shape[1] == 3


def test_degrade_resolution_removes_detail_and_keeps_shape():
    from synapse_bmz.training.augment import degrade_resolution

    rng = np.random.default_rng(0)
    raw = rng.normal(size=(16, 40, 40)).astype(np.float32)
    out = degrade_resolution(raw, np.random.default_rng(1))
    assert out.shape == raw.shape and out.dtype == np.float32
    assert abs(float(out.mean())) < 1e-4 and abs(float(out.std()) - 1) < 1e-3
    # white noise loses its finest scale: neighbouring voxels become correlated
    corr = np.corrcoef(out[:, :, :-1].ravel(), out[:, :, 1:].ravel())[0, 1]
    assert corr > 0.5 > abs(np.corrcoef(raw[:, :, :-1].ravel(), raw[:, :, 1:].ravel())[0, 1])


def test_zero_degrade_probability_leaves_the_patch_stream_unchanged(tmp_path):
    """Configs without the option reproduce the weights they shipped with."""
    from synapse_bmz.training.data import sample_batch

    cfg = load_train_config(_config(tmp_path))
    train, _ = load_simulation(cfg)
    a = sample_batch(train, [8, 32, 32], 2, np.random.default_rng(3), 0.0)
    b = sample_batch(train, [8, 32, 32], 2, np.random.default_rng(3), 0.0, degrade_probability=0.0)
    np.testing.assert_array_equal(a[0], b[0])
    c = sample_batch(train, [8, 32, 32], 2, np.random.default_rng(3), 0.0, degrade_probability=1.0)
    assert not np.array_equal(a[0], c[0])


#: `sample_batch` of `_config`'s volumes, patch [8, 32, 32], batch 2, rng 3, degrade 0.5, before zoom existed
ZOOMLESS_BATCH_SHA256 = "926ecc2ca8660eb0093fa3af2fb465bd244940c4cda34df59f5e5775b0365710"


def _with(path: Path, section: str, **values) -> Path:
    cfg = yaml.safe_load(path.read_text())
    node = cfg
    for key in section.split("."):
        node = node[key]
    node.update(values)
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_extra_training_adds_seeds_in_their_own_look(tmp_path):
    """``data.simulation.extra_training`` (the same option as partner configs'): more training
    seeds with simulator keywords on top; validation seeds stay in the plain look."""
    cfg = load_train_config(_with(_config(tmp_path, n_train=1), "data.simulation",
                                  extra_training={"seeds": [7, 8], "simulator_params": {"fibsem": {}}}))
    train, val = load_simulation(cfg)
    assert train.names == ["tomogram seed 0", "tomogram seed 7"] and val.names == ["tomogram seed 1000"]
    fibsem = simulate_volume(cfg, 7, {"fibsem": {}})
    assert fibsem.modality == "fibsem" and simulate_volume(cfg, 7).modality == "rt"
    np.testing.assert_array_equal(train.instances[1], fibsem.labels["vesicles"])
    np.testing.assert_array_equal(val.instances[0], simulate_volume(cfg, 1000).labels["vesicles"])
    assert "and 1 more (seeds 7-7) with {'fibsem': {}}" in ExtraTraining.describe(cfg.data.simulation.extra_training)


@pytest.mark.parametrize("seeds, message", [([0, 1], "disjoint"), ([1000, 1001], "disjoint"),
                                            ([5, 5], "low < high")])
def test_extra_training_seeds_are_checked(tmp_path, seeds, message):
    path = _with(_config(tmp_path, n_train=1), "data.simulation", extra_training={"seeds": seeds})
    with pytest.raises(InputError, match=message) as e:
        load_train_config(path)
    assert "\n" not in str(e.value)


def test_zoom_window_changes_object_size():
    """Objects come out ``factor`` times their size; targets stay exact labels (nearest neighbour)."""
    from synapse_bmz.training.augment import zoom_window

    rng = np.random.default_rng(0)
    stripes = (np.arange(96) // 4 % 2).astype(np.float32)  # period 8 px along x
    raw = np.broadcast_to(stripes, (96, 96)).copy() + rng.normal(0, 0.01, (96, 96)).astype(np.float32)
    target = np.stack([np.broadcast_to(stripes, (96, 96))]).astype(np.float32)
    for factor, period in ((2.0, 16), (0.5, 4), (1.0, 8)):
        r, t = zoom_window(raw, target, (32, 32), np.random.default_rng(1), (factor, factor))
        assert r.shape == (32, 32) and t.shape == (1, 32, 32)
        assert set(np.unique(t)) <= {0.0, 1.0}
        transitions = int(np.abs(np.diff(t[0, 0])).sum())
        assert abs(transitions - 32 / (period / 2)) <= 1, (factor, transitions)
        assert abs(float(r.mean())) < 1e-4 and abs(float(r.std()) - 1) < 1e-3
    # a factor below what fits (window larger than the image) is clipped to the image
    r, t = zoom_window(raw[:40, :40], target[:, :40, :40], (32, 32), np.random.default_rng(2), (0.1, 0.1))
    assert r.shape == (32, 32)


def test_zoom_is_off_by_default_and_its_range_is_checked(tmp_path):
    """Without zoom the patch stream is the one before the option existed (sha256 of a batch from
    the code at git cf8017c), so configs without it reproduce their shipped weights."""
    import hashlib

    from synapse_bmz.training.data import sample_batch

    cfg = load_train_config(_config(tmp_path))
    assert cfg.train.zoom_probability == 0.0
    train, _ = load_simulation(cfg)
    x, y = sample_batch(train, [8, 32, 32], 2, np.random.default_rng(3), 0.0, 0.5)
    assert hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest() == ZOOMLESS_BATCH_SHA256
    z = sample_batch(train, [8, 32, 32], 2, np.random.default_rng(3), 0.0, 0.5, zoom_probability=1.0)
    assert z[0].shape == x.shape and not np.array_equal(z[0], x)
    with pytest.raises(InputError, match="zoom_range"):
        load_train_config(_with(_config(tmp_path), "train", zoom_range=[2.0, 1.0]))


def test_primary_metric_override(tmp_path):
    path = _config(tmp_path)
    cfg = yaml.safe_load(path.read_text())
    cfg["package"]["primary_metric"] = "foreground_iou"
    path.write_text(yaml.safe_dump(cfg))
    assert primary_metric(load_train_config(path)) == "foreground_iou"
    cfg["package"]["primary_metric"] = "accuracy"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(InputError, match="primary_metric"):
        load_train_config(path)
