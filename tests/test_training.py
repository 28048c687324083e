"""Training, resume, determinism, 3D training and domain adaptation on tiny crops of the real EM data.

Every run is a few iterations of a 4-channel U-Net, so the file stays well
under a minute and a half on two CPU cores; accuracy is not what is tested.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import yaml

from synapse_bmz.paths import shared_data_dir  # noqa: E402  ($SYNAPSE_BMZ_DATA, default ../shared/data)

SHARED_DATA = shared_data_dir()
EPFL = SHARED_DATA / "epfl_hippocampus"
VNC = SHARED_DATA / "drosophila_vnc"
pytestmark = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"real EM data not found at {SHARED_DATA} (it lives beside the repository)")

EPFL_SLICES = ("training0000.png", "training0001.png", "training0161.png")


def _write_config(folder: Path, data: dict, model: dict, train: dict, package: dict, target: str) -> Path:
    cfg = {"seed": 0, "target": target, "data": data, "model": model,
           "train": {"batch_size": 2, "iterations": 4, "validate_every": 2, "checkpoint_every": 2,
                     "learning_rate": 0.002, **train},
           "package": {"authors": ["test"], **package}}
    path = folder / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def epfl_config(tmp_path_factory) -> Path:
    """Three EPFL slices with mitochondria masks (symlinked); training0161 is held out."""
    root = tmp_path_factory.mktemp("epfl")
    for sub, src in (("raw", "slices"), ("labels", "mitochondrion")):
        (root / sub).mkdir()
        for name in EPFL_SLICES:
            (root / sub / name).symlink_to(EPFL / src / name)
    return _write_config(
        root,
        data={"raw": "raw", "labels": "labels", "validation": ["training0161.png"], "voxel_size_nm": [5.0, 5.0],
              "description": "three EPFL slices"},
        model={"ndim": 2, "base_channels": 4, "depth": 3},
        train={"patch": [64, 64], "reject_empty_probability": 0.5},
        package={"name": "tiny_mito", "description": "Tiny mitochondria U-Net for tests.", "task": "mitochondria",
                 "channels": ["foreground", "boundary"], "halo": [8, 8], "min_shape": [32, 32], "step": [4, 4],
                 "postprocessing": {"recipe": "mitochondria", "params": {}}},
        target="foreground_boundary")


@pytest.fixture(scope="module")
def vnc_config(tmp_path_factory) -> Path:
    """Sections 00-07 of Drosophila stack 1, cropped to 128 x 128 around synapses; 04-07 held out."""
    import imageio.v3 as iio

    root = tmp_path_factory.mktemp("vnc")
    (root / "raw").mkdir()
    (root / "labels").mkdir()
    win = (slice(256, 384), slice(64, 192))
    for i in range(8):
        iio.imwrite(root / "raw" / f"{i:02d}.tif", iio.imread(VNC / "stack1" / "raw" / f"{i:02d}.tif")[win])
        lab = iio.imread(VNC / "stack1" / "synapses" / f"{i:02d}.png")[win]
        iio.imwrite(root / "labels" / f"{i:02d}.png", (lab > (0 if lab.dtype == bool else 127)).astype(np.uint8) * 255)
    return _write_config(
        root,
        data={"raw": "raw", "labels": "labels", "validation_z": [4, 8], "voxel_size_nm": [50.0, 4.6, 4.6],
              "licence": "CC BY-NC-SA 3.0", "description": "a crop of Drosophila VNC stack 1"},
        model={"ndim": 3, "base_channels": 4, "depth": 3, "pool_factors": [[1, 2, 2], [2, 2, 2]],
               "kernel_sizes": [[1, 3, 3], [3, 3, 3], [3, 3, 3]]},
        train={"patch": [4, 64, 64], "foreground_weight": 5.0},
        package={"name": "tiny_cleft", "description": "Tiny anisotropic 3D cleft U-Net for tests.", "task": "clefts",
                 "channels": ["cleft"], "halo": [1, 8, 8], "min_shape": [4, 32, 32], "step": [2, 4, 4],
                 "postprocessing": {"recipe": "clefts"}},
        target="mask")


@pytest.fixture(scope="module")
def epfl_package(epfl_config, tmp_path_factory) -> Path:
    from synapse_bmz.training.pipeline import train_and_package

    work = tmp_path_factory.mktemp("epfl_run")
    return train_and_package(epfl_config, out_dir=work / "tiny_mito", work_dir=work / "run", device="cpu",
                             progress=False)


def _loss_rows(path: Path):
    with open(path) as f:
        return [row[:4] for row in csv.reader(f)]  # without the wall time


def test_train_and_package_2d(epfl_package):
    from synapse_bmz.zoo.registry import load_model

    loaded = load_model(epfl_package)
    acc = loaded.config.accuracy
    assert acc["primary_metric"] == "instance_f1"
    assert 0 <= acc["instance_f1"] <= 1 and 0 <= acc["foreground_dice"] <= 1
    assert acc["split"] == "validation: training0161.png"
    assert (epfl_package.parent / "train.yaml").exists()


def test_resume_continues_iteration_count(epfl_config, tmp_path):
    import torch

    from synapse_bmz.training.config import load_train_config
    from synapse_bmz.training.loop import train

    cfg = load_train_config(epfl_config)
    train(cfg, tmp_path, device="cpu", progress=False)
    # a row an interrupted run wrote after its last checkpoint must not survive the resume
    with open(tmp_path / "loss.csv", "a") as f:
        f.write("5,0.5,,1e-3,1.0\n")
    cfg.train.iterations = 6
    train(cfg, tmp_path, device="cpu", progress=False, resume=True)
    steps = [int(r[0]) for r in _loss_rows(tmp_path / "loss.csv")[1:]]
    assert steps == [2, 4, 6]
    assert torch.load(tmp_path / "checkpoints" / "latest.pt", weights_only=True)["iteration"] == 6


def test_warm_start_from_a_package_starts_from_its_weights(epfl_config, epfl_package, tmp_path):
    """--init-weights loads a package's state dict before the first step (seeded runs are otherwise
    identical, so the loss curves differ only because of the start); bad files get one line, exit 2."""
    import subprocess
    import sys

    import torch

    from synapse_bmz.errors import InputError
    from synapse_bmz.training.config import load_train_config
    from synapse_bmz.training.data import load_split
    from synapse_bmz.training.loop import build_model, load_init_weights, train

    weights = epfl_package.parent / "weights.state_dict.pt"
    cfg = load_train_config(epfl_config)
    model = build_model(cfg)
    load_init_weights(model, weights)
    shipped = torch.load(weights, weights_only=True)
    assert all(torch.equal(v, shipped[k]) for k, v in model.state_dict().items())
    tr, va = load_split(cfg)
    cfg.train.iterations, cfg.train.validate_every, cfg.train.checkpoint_every = 2, 2, 2
    for run, init in (("cold", None), ("cold2", None), ("warm", weights)):
        train(cfg, tmp_path / run, device="cpu", progress=False, train_data=tr, val_data=va, init_weights=init)
    cold, cold2, warm = (_loss_rows(tmp_path / r / "loss.csv") for r in ("cold", "cold2", "warm"))
    assert cold == cold2 and warm != cold
    torch.save({"not": torch.zeros(2)}, tmp_path / "wrong.pt")
    with pytest.raises(InputError, match="do not fit"):
        load_init_weights(model, tmp_path / "wrong.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="not a torch state dict"):
        load_init_weights(model, tmp_path / "junk.pt")
    r = subprocess.run([sys.executable, "-m", "synapse_bmz", "train", str(epfl_config), "--init-weights",
                        str(tmp_path / "missing.pt"), "-o", str(tmp_path / "pkg"), "--work-dir", str(tmp_path / "w")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "missing.pt" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "pkg").exists()


def test_seeded_training_is_deterministic(epfl_config, tmp_path):
    from synapse_bmz.training.config import load_train_config
    from synapse_bmz.training.data import load_split
    from synapse_bmz.training.loop import train

    cfg = load_train_config(epfl_config)
    tr, va = load_split(cfg)
    for run in ("a", "b"):
        train(cfg, tmp_path / run, device="cpu", progress=False, train_data=tr, val_data=va)
    assert _loss_rows(tmp_path / "a" / "loss.csv") == _loss_rows(tmp_path / "b" / "loss.csv")


def test_3d_split_targets_and_patches(vnc_config):
    from synapse_bmz.training.config import load_train_config
    from synapse_bmz.training.data import load_split, sample_batch

    cfg = load_train_config(vnc_config)
    tr, va = load_split(cfg)
    assert [a.shape for a in tr.raw] == [(4, 128, 128)] and [a.shape for a in va.raw] == [(4, 128, 128)]
    assert va.names == ["04.tif-07.tif"] and tr.targets[0].shape == (1, 4, 128, 128)
    assert tr.targets[0].any()
    x, y = sample_batch(tr, [4, 64, 64], 3, np.random.default_rng(0), 1.0)
    assert x.shape == (3, 1, 4, 64, 64) and y.shape == (3, 1, 4, 64, 64)
    assert all(t.any() for t in y)  # rejection probability 1: every patch holds foreground


def test_3d_anisotropic_train_and_package(vnc_config, tmp_path):
    from synapse_bmz.training.pipeline import train_and_package
    from synapse_bmz.zoo.registry import load_model

    rdf = train_and_package(vnc_config, out_dir=tmp_path / "tiny_cleft", work_dir=tmp_path / "run",
                            device="cpu", iterations=2, progress=False)
    loaded = load_model(rdf)
    acc = loaded.config.accuracy
    assert acc["primary_metric"] == "cremi_score_nm"
    assert {"cremi_score_nm", "adgt_nm", "adf_nm", "foreground_dice"} <= set(acc)
    assert loaded.config.voxel_size_nm == [50.0, 4.6, 4.6]
    assert loaded.descr.weights.pytorch_state_dict.architecture.kwargs["pool_factors"] == [[1, 2, 2], [2, 2, 2]]


@pytest.fixture(scope="module")
def unlabelled_stack(tmp_path_factory) -> Path:
    """Two 256 x 256 crops of Drosophila stack 2 (unlabelled) as a slice folder."""
    import imageio.v3 as iio

    folder = tmp_path_factory.mktemp("stack2") / "raw"
    folder.mkdir()
    for i in range(2):
        iio.imwrite(folder / f"{i:02d}.tif", iio.imread(VNC / "stack2" / "raw" / f"{i:02d}.tif")[:256, :256])
    return folder


def test_adapt_writes_a_loadable_package(epfl_package, unlabelled_stack, tmp_path):
    from bioimageio.core import test_model

    from synapse_bmz.training.adapt import adapt_package, load_package_network
    from synapse_bmz.zoo.registry import load_model

    rdf = adapt_package(epfl_package, [unlabelled_stack], tmp_path / "tiny_mito_vnc", voxel_size_nm=[50, 4.6, 4.6],
                        iterations=3, batch_size=2, patch=[64, 64], device="cpu", license="CC-BY-NC-SA-3.0",
                        progress=False)
    loaded = load_model(rdf)
    assert loaded.config.task == "mitochondria" and loaded.config.accuracy["adapted_from"] == "tiny_mito"
    assert str(loaded.descr.license) == "CC-BY-NC-SA-3.0"
    assert "Adapted from package `tiny_mito`" in (rdf.parent / "README.md").read_text()
    assert test_model(rdf, weight_format="torchscript").status == "passed"
    # the adapted teacher moved away from the source weights
    before, after = load_package_network(epfl_package).model, load_package_network(rdf).model
    assert any(not np.array_equal(a.numpy(), b.numpy())
               for a, b in zip(before.state_dict().values(), after.state_dict().values()))


def test_evaluate_package_dice_through_the_runner(epfl_package):
    import imageio.v3 as iio

    from synapse_bmz.training.evaluate import evaluate_package_dice

    win = (slice(0, 128), slice(0, 160))
    raw = np.stack([iio.imread(VNC / "stack1" / "raw" / f"{i:02d}.tif")[win] for i in (3, 4)])
    mask = np.stack([iio.imread(VNC / "stack1" / "mitochondria" / f"{i:02d}.png")[win] for i in (3, 4)])
    out = evaluate_package_dice(epfl_package, raw, mask, voxel_size_nm=[50, 4.6, 4.6], device="cpu")
    assert 0 <= out["dice"] <= 1 and out["n_voxels"] == raw.size
    assert out["n_gt_voxels"] == int((mask > 127).sum())
