"""`python -m synapse_bmz.training.gpu` (``make train-gpu``) on CPU: two iterations of tiny
networks, so the whole command (workers, packages, held-out evaluation, summary.json) is
exercised without a GPU; the GPU timing itself is not tested here.

The default-suite run trains vesicles_2d and mitochondria_2d at once (``--jobs 2``, about
1.5 min on two shared CPU cores); the slow one adds the 3D synapse_cleft.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from synapse_bmz.paths import shared_data_dir
from synapse_bmz.training import gpu

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = shared_data_dir()
needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"real EM data not found at {SHARED_DATA}")

SUMMARY_KEYS = {"device", "hardware", "budget_s", "total_wall_s", "within_budget", "jobs", "improved",
                "failed", "packages"}
PACKAGE_KEYS = {"metric", "value", "card_value", "higher_is_better", "improved", "held_out", "split", "train_loop_s",
                "estimated_train_s", "gflop_per_iteration",
                "iterations_run", "wall_s", "train_and_package_s", "weights_bytes", "problems"}


def _run(out: Path, names, *extra) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "synapse_bmz.training.gpu", "--device", "cpu", "--iterations", "2", "--tiny",
           "--out", str(out), "--packages", ",".join(names), "--quiet", *extra]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)


def _check_run(out: Path, names, proc) -> dict:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    assert summary["device"] == "cpu" and summary["failed"] == [] and summary["within_budget"] is True
    assert set(summary["packages"]) == set(names)
    for name in names:
        r = summary["packages"][name]
        assert PACKAGE_KEYS <= set(r), sorted(PACKAGE_KEYS - set(r))
        assert r["iterations_run"] == 2 and r["problems"] == [] and r["time_limit_s"] == summary["train_time_limit_s"]
        assert r["metric"] in r["held_out"] and r["card_value"] is not None
        folder = out / name
        assert gpu.check_package(folder) == []  # rdf.yaml, weights and test tensors present, sha256 match
        weights = sorted(folder.glob("weights.*"))
        assert {w.name for w in weights} >= {"weights.state_dict.pt", "weights.torchscript.pt", "weights.onnx"}
        assert all(0 < w.stat().st_size <= gpu.MAX_WEIGHT_BYTES for w in weights)
        assert r["weights_bytes"] == {w.name: w.stat().st_size for w in weights}
    return summary


def test_every_real_data_package_has_a_gpu_profile_in_step():
    """Profiles exist for the packages trained on ../shared/data, agree with train.yaml on data,
    split, target and package, validate, and their networks fit the 16 MB weight limit."""
    from synapse_bmz.training.config import load_train_config
    from synapse_bmz.training.loop import build_model

    names = gpu.real_data_packages()
    assert {"vesicles_2d", "mitochondria_2d", "synapse_cleft"} <= set(names)
    for name in names:
        folder = REPO / "model_packages" / name
        assert (folder / gpu.PROFILE).is_file(), f"{name}: no {gpu.PROFILE}"
        assert gpu.profile_drift(folder) == [], f"{name}: {gpu.PROFILE} out of step with train.yaml"
        if not SHARED_DATA.is_dir():
            continue
        cfg = load_train_config(folder / gpu.PROFILE)
        n_params = sum(p.numel() for p in build_model(cfg).parameters())
        assert 4 * n_params < 0.9 * gpu.MAX_WEIGHT_BYTES, f"{name}: {n_params} float32 parameters"
        est = gpu.estimate(cfg)  # FLOPs on the meta device: the sizing the profiles' comments quote
        assert est["gflop_per_iteration"] > 100 and est["estimated_train_s"] > 0
    assert gpu.main(["--estimate"]) == 0


def test_sync_profile_takes_everything_but_model_and_train_from_train_yaml(tmp_path):
    import yaml

    folder = tmp_path / "mitochondria_2d"
    folder.mkdir()
    src = REPO / "model_packages" / "mitochondria_2d"
    (folder / gpu.PROFILE).write_text((src / gpu.PROFILE).read_text())
    text = (src / "train.yaml").read_text().replace("foreground_weight: 1.0", "foreground_weight: 9.0")
    # whatever params the shipped train.yaml has: the profile must follow a changed package section
    text = re.sub(r"postprocessing: \{recipe: mitochondria, params: \{.*\}\}",
                  "# tuned on training sections\n  postprocessing: {recipe: mitochondria, params: {min_size: 3}}", text)
    (folder / "train.yaml").write_text(text.replace("seed: 0", "seed: 7"))
    assert gpu.profile_drift(folder) == ["seed", "package"]
    assert gpu.sync_profile(folder) and gpu.profile_drift(folder) == []
    prof = yaml.safe_load((folder / gpu.PROFILE).read_text())
    assert prof["model"]["base_channels"] == 32 and prof["train"]["batch_size"] == 16  # the profile's own
    assert prof["train"]["foreground_weight"] == 1.0 and prof["package"]["postprocessing"]["params"] == {"min_size": 3}
    assert (folder / gpu.PROFILE).read_text().startswith("# GPU profile of mitochondria_2d")
    # train.yaml's header is its CPU warm-start chain: not copied into the profile, which trains afresh
    assert "--init-weights" in text.split("seed:")[0] and "--init-weights" not in (folder / gpu.PROFILE).read_text()
    assert not gpu.sync_profile(folder)  # in step: unchanged


def test_cuda_asked_for_but_absent_exits_2(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(gpu, "_cuda_available", lambda: False)
    assert gpu.main(["--device", "cuda", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "CUDA" in err and "--device cpu" in err
    assert not (tmp_path / "out").exists()


def test_check_package_finds_a_changed_weight_file(tmp_path):
    src = REPO / "model_packages" / "mitochondria_2d"
    pkg = shutil.copytree(src, tmp_path / "pkg")
    assert gpu.check_package(pkg) == []
    with open(pkg / "weights.onnx", "ab") as f:
        f.write(b"\0")
    assert any("sha256 of weights.onnx" in p for p in gpu.check_package(pkg))
    (pkg / "weights.state_dict.pt").unlink()
    assert any("weights.state_dict.pt missing" in p for p in gpu.check_package(pkg))


def test_promote_copies_only_improved_full_run_packages(tmp_path):
    src = REPO / "model_packages" / "mitochondria_2d"
    packages = tmp_path / "packages"
    dest = shutil.copytree(src, packages / "mitochondria_2d")
    (dest / "stale.txt").write_text("from the old package")
    out = tmp_path / "out"
    new = shutil.copytree(src, out / "mitochondria_2d")
    (new / "README.md").write_text((new / "README.md").read_text() + "\nretrained\n")
    summary = {"tiny": False, "iterations_override": None,
               "packages": {"mitochondria_2d": {"improved": True, "problems": []},
                            "vesicles_2d": {"improved": False, "problems": []}}}
    (out / "summary.json").write_text(json.dumps(summary))
    assert gpu.promote(out, packages) == ["mitochondria_2d"]
    assert (dest / "README.md").read_text().endswith("retrained\n")
    assert (dest / gpu.PROFILE).is_file() and not (dest / "stale.txt").exists()
    (out / "summary.json").write_text(json.dumps({**summary, "tiny": True}))
    with pytest.raises(ValueError, match="tiny"):
        gpu.promote(out, packages)


@needs_data
def test_cpu_smoke_run_writes_complete_packages_and_summary(tmp_path):
    names = ["vesicles_2d", "mitochondria_2d"]
    summary = _check_run(tmp_path, names, _run(tmp_path, names, "--jobs", "2"))
    assert summary["jobs"] == 2
    # the package's train.yaml is the (tiny) config it was trained with
    assert "base_channels: 4" in (tmp_path / "vesicles_2d" / "train.yaml").read_text()


@pytest.mark.slow
@needs_data
def test_cpu_smoke_run_of_every_real_data_package(tmp_path):
    names = gpu.real_data_packages()
    _check_run(tmp_path, names, _run(tmp_path, names))


@needs_data
def test_loop_loader_workers_and_time_limit_on_cpu(tmp_path):
    """The GPU path's pieces that also run on CPU: DataLoader workers feed the loop, and the
    wall-clock cap stops the run early with its best checkpoint (iterations = those run)."""
    import yaml

    from synapse_bmz.training.config import load_train_config
    from synapse_bmz.training.loop import train

    epfl = SHARED_DATA / "epfl_hippocampus"
    for sub, src in (("raw", "slices"), ("labels", "mitochondrion")):
        (tmp_path / sub).mkdir()
        for name in ("training0000.png", "training0161.png"):
            (tmp_path / sub / name).symlink_to(epfl / src / name)
    cfg_path = tmp_path / "train.yaml"
    cfg_path.write_text(yaml.safe_dump({
        "data": {"raw": "raw", "labels": "labels", "validation": ["training0161.png"], "voxel_size_nm": [5.0, 5.0]},
        "model": {"ndim": 2, "base_channels": 4, "depth": 3},
        "train": {"patch": [64, 64], "batch_size": 2, "iterations": 1000, "validate_every": 500,
                  "checkpoint_every": 500, "reject_empty_probability": 0.5},
        "package": {"name": "t", "description": "t", "task": "mitochondria", "channels": ["foreground", "boundary"],
                    "halo": [8, 8], "min_shape": [32, 32], "step": [4, 4]}}))
    cfg = load_train_config(cfg_path)
    res = train(cfg, tmp_path / "run", device="cpu", progress=False, loader_workers=1, time_limit_s=3.0)
    assert 1 <= res.iterations < 1000 and res.best_iteration == res.iterations
    assert (tmp_path / "run" / "checkpoints" / "best.pt").is_file()


@pytest.mark.gpu
@needs_data
def test_cuda_run_of_two_packages(tmp_path):
    """On a CUDA machine: the real profiles' networks, batches and patches (mixed precision,
    channels-last, loader workers), 20 iterations each, two packages at once."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    names = ["vesicles_2d", "synapse_cleft"]
    cmd = [sys.executable, "-m", "synapse_bmz.training.gpu", "--device", "cuda", "--iterations", "20",
           "--out", str(tmp_path), "--packages", ",".join(names), "--quiet"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    for name in names:
        r = summary["packages"][name]
        assert r["iterations_run"] == 20 and r["problems"] == [] and r["hardware"] != "CPU"
        assert gpu.check_package(tmp_path / name) == []
