"""Retrain every real-data package on a CUDA GPU within a wall-time budget (``make train-gpu``).

A real-data package is a folder of ``model_packages/`` whose ``train.yaml``
reads image folders (``data.raw``) rather than simulating its data; each has a
GPU profile beside it, ``train_gpu.yaml``: the same data, split, target and
package section, with a larger network, batch and iteration count
(`profile_drift` checks that the two agree; ``--sync-profiles`` brings a profile
back in step after train.yaml changed). For each package this command

1. trains the profile with `synapse_bmz.training.pipeline.train_and_package`
   in a process of its own (mixed precision, ``cudnn.benchmark``, channels-last
   2D networks and DataLoader workers: `synapse_bmz.training.loop.train`),
   into ``OUT/<name>/`` as a complete bioimage.io package;
2. re-measures that package on its held-out split with
   `synapse_bmz.training.evaluate.evaluate_on_split` (weights reloaded, sha256
   checked) and compares the card's primary metric with the committed package's;
3. writes ``OUT/<name>.result.json``.

``--promote`` then copies the packages that improved into ``model_packages/``
(`promote`), ready to commit. ``OUT/summary.json`` gathers them: held-out figure and committed card figure
per package, whether it improved, wall times, weight file sizes (each must
be <= 16 MB) and the total against ``--budget-s`` (480 s: eight minutes).
Packages run concurrently (``--jobs``, default all of them on CUDA): the
GPU is time-sliced between them while one package's data loading,
evaluation and packaging (CPU) overlap another's training. Each training run
gets a wall-clock cap (`synapse_bmz.training.loop.train`'s ``time_limit_s``)
that keeps the whole command inside the budget even where the iteration
counts (sized by estimate, not measured on a GPU) turn out too many.

How the profiles were sized (an estimate; no GPU was available when they were
written): `estimate` counts the floating-point operations of one training
iteration (forward + backward, ``torch.utils.flop_counter`` on the meta
device) and assumes `ASSUMED_TFLOPS` (50 TFLOP/s effective float16 on an
H100/H200: ~5 % of the dense tensor-core peak, as U-Nets with 16-256 channels
are bound by memory traffic, not arithmetic). vesicles_2d and mitochondria_2d:
881 GFLOP per iteration (16 x 256^2, base 32) -> ~18 ms, 4000 iterations
~70 s each; synapse_cleft: 1448 GFLOP (8 x 8 x 256^2, base 16) -> ~29 ms,
3000 iterations ~87 s; together ~230 s of GPU time, time-sliced, plus
~2 min of imports, data loading, evaluation and packaging. For scale, the
CPU cards ran 55 GFLOP per iteration at ~0.75 s on one thread (~73 GFLOP/s).
Patch sampling on CPU costs ~48 ms per 2D batch and ~150 ms per 3D batch on
one core (measured here), so 4 loader workers per package keep up with the
estimated GPU speed. ``--estimate`` prints these figures for the current
profiles; each package's ``estimated_train_s`` stands beside its measured
``train_and_package_s`` in summary.json, so the first GPU run calibrates them.

Exit status: 0 when every package was written, passed its checks and the
total stayed in the budget; 1 otherwise; 2 (one line on stderr) when CUDA is
asked for and absent. ``--device cpu --iterations 2 --tiny`` is the smoke run
the tests use (patch = the package's ``min_shape``, batch 1, 4 base channels).

Usage::

    python -m synapse_bmz.training.gpu [--out runs/gpu] [--packages vesicles_2d,...]
        [--device cuda|cpu] [--jobs N] [--budget-s 480] [--iterations N] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import yaml

#: the default model folder (the checkout's model_packages/)
MODEL_PACKAGES = Path(__file__).resolve().parents[2] / "model_packages"
PROFILE = "train_gpu.yaml"
MAX_WEIGHT_BYTES = 16_000_000  # "<= 16 MB per file", read strictly
DEFAULT_BUDGET_S = 480.0
#: wall time a package needs outside its training loop (imports, data, evaluation twice,
#: packaging with halo measurement), reserved when the per-package training cap is set
OVERHEAD_S = 140.0
#: effective float16 throughput assumed on an H100/H200 for `estimate` (not measured)
ASSUMED_TFLOPS = 50.0
#: the sections of a profile that must equal its package's train.yaml
SHARED_SECTIONS = ("seed", "target", "data", "package")


def real_data_packages(packages_dir: Path = MODEL_PACKAGES) -> List[str]:
    """Names of the packages whose ``train.yaml`` reads image folders (``data.raw``), sorted."""
    names = []
    for folder in sorted(Path(packages_dir).iterdir()):
        cfg = folder / "train.yaml"
        if not cfg.is_file():
            continue
        data = (yaml.safe_load(cfg.read_text()) or {}).get("data")
        if isinstance(data, dict) and data.get("raw"):
            names.append(folder.name)
    return names


def profile_drift(folder: Path) -> List[str]:
    """Top-level sections in which ``train_gpu.yaml`` differs from ``train.yaml`` but must not
    (`SHARED_SECTIONS`); empty when the profile is in step with its package."""
    base = yaml.safe_load((Path(folder) / "train.yaml").read_text()) or {}
    gpu = yaml.safe_load((Path(folder) / PROFILE).read_text()) or {}
    return [k for k in SHARED_SECTIONS if base.get(k) != gpu.get(k)]


def estimate(cfg) -> Dict[str, float]:
    """FLOPs of one training iteration of ``cfg`` (forward + backward of a batch, counted on
    the meta device: instant, no memory) and the training time they take at `ASSUMED_TFLOPS`.

    Returns
    -------
    dict with ``gflop_per_iteration``, ``estimated_ms_per_iteration``, ``estimated_train_s``
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from .loop import build_model

    with torch.device("meta"):
        model = build_model(cfg)
        x = torch.empty(cfg.train.batch_size, 1, *cfg.train.patch)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    flops = float(counter.get_total_flops())
    per_it = flops / (ASSUMED_TFLOPS * 1e12)
    return {"gflop_per_iteration": round(flops / 1e9, 1), "estimated_ms_per_iteration": round(1e3 * per_it, 1),
            "estimated_train_s": round(per_it * cfg.train.iterations, 1)}


#: the sections a profile owns (`sync_profile` keeps them, takes the rest from train.yaml)
PROFILE_SECTIONS = ("model", "train")


def _blocks(text: str) -> Dict[str, str]:
    """Top-level YAML blocks of ``text`` by key, each with the comment lines just above it;
    ``""`` holds the leading comments before the first key."""
    blocks: Dict[str, str] = {}
    key, lines, pending = "", [], []
    for line in text.splitlines(keepends=True):
        top = line[:1] not in (" ", "\t", "#", "\n", "")
        if top and ":" in line:
            blocks[key] = "".join(lines)
            key, lines, pending = line.split(":", 1)[0].strip(), pending + [line], []
        elif line.startswith("#") and key:
            pending.append(line)
        else:
            lines += pending + [line]
            pending = []
    blocks[key] = "".join(lines + pending)
    return blocks


def sync_profile(folder: Path) -> bool:
    """Rewrite ``train_gpu.yaml`` so that everything but its ``model`` and ``train`` sections
    (and its own leading comments) is ``train.yaml``'s, in train.yaml's order and comments.
    Of train.yaml's leading comments the description is copied, not its ``# Reproduce`` line,
    and nothing when they give a warm-start chain (``--init-weights``): that says how the CPU
    weights were made, which is not what the profile trains. Returns True when the file changed."""
    folder = Path(folder)
    base = _blocks((folder / "train.yaml").read_text())
    prof_text = (folder / PROFILE).read_text()
    prof = _blocks(prof_text)
    head = "".join(line for line in prof[""].splitlines(keepends=True) if line.startswith("# GPU profile")
                   or line.startswith("# a larger") or line.startswith("# (python") or line.startswith("# Sizing"))
    base_head = "" if "--init-weights" in base[""] else "".join(
        line for line in base[""].splitlines(keepends=True) if not line.startswith("# Reproduce"))
    body = "".join(prof[k] if k in PROFILE_SECTIONS and k in prof else v for k, v in base.items() if k)
    text = head + base_head + body
    if text == prof_text:
        return False
    (folder / PROFILE).write_text(text)
    return True


def _tiny_config(profile: Path, dest: Path, iterations: Optional[int]) -> Path:
    """A smoke-test copy of ``profile``: patch = ``package.min_shape``, batch 1, 4 base
    channels, only the first held-out image of a ``validation`` list (a ``validation_z``
    range stays whole), data paths made absolute (the copy lives outside the package folder)."""
    raw = yaml.safe_load(profile.read_text())
    base = profile.resolve().parent
    for key in ("raw", "labels"):
        raw["data"][key] = str((base / raw["data"][key]).resolve())
    if raw["data"].get("validation"):
        raw["data"]["validation"] = raw["data"]["validation"][:1]
    raw["model"]["base_channels"] = 4
    raw["train"].update(patch=list(raw["package"]["min_shape"]), batch_size=1)
    if iterations is not None:
        raw["train"]["iterations"] = iterations
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(yaml.safe_dump(raw, sort_keys=False))
    return dest


def _card(folder: Path) -> Dict:
    """The committed package's ``config.synapse_bmz.accuracy`` (empty without an rdf.yaml)."""
    rdf = folder / "rdf.yaml"
    if not rdf.is_file():
        return {}
    doc = yaml.safe_load(rdf.read_text()) or {}
    return ((doc.get("config") or {}).get("synapse_bmz") or {}).get("accuracy") or {}


def _better(value: float, card: Optional[float], metric: str) -> Optional[bool]:
    if card is None or not math.isfinite(float(card)) or not math.isfinite(value):
        return None
    return value < float(card) if metric.endswith("_nm") else value > float(card)


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_package(folder: Path) -> List[str]:
    """Problems of a written package: missing rdf.yaml or weights, sha256 mismatches,
    weight files over 16 MB. Empty when complete."""
    rdf = Path(folder) / "rdf.yaml"
    if not rdf.is_file():
        return ["no rdf.yaml"]
    doc = yaml.safe_load(rdf.read_text())
    problems, entries = [], []
    for fmt, w in (doc.get("weights") or {}).items():
        entries.append((f"weights.{fmt}", w))
        if (w.get("architecture") or {}).get("source"):
            entries.append((f"weights.{fmt}.architecture", w["architecture"]))
    if not doc.get("weights"):
        problems.append("no weights in rdf.yaml")
    for t in doc.get("inputs", []) + doc.get("outputs", []):
        if t.get("test_tensor"):
            entries.append((t.get("id", "tensor"), t["test_tensor"]))
    entries += [("attachment", a) for a in doc.get("attachments") or []]
    for what, e in entries:
        f = Path(folder) / e["source"]
        if not f.is_file():
            problems.append(f"{what}: {e['source']} missing")
        elif e.get("sha256") and _sha256(f) != e["sha256"]:
            problems.append(f"{what}: sha256 of {e['source']} does not match rdf.yaml")
        elif what.startswith("weights.") and not what.endswith("architecture") and f.stat().st_size > MAX_WEIGHT_BYTES:
            problems.append(f"{e['source']}: {f.stat().st_size / 1e6:.1f} MB > 16 MB")
    return problems


def run_one(name: str, out: Path, *, device: str, packages_dir: Path, iterations: Optional[int],
            tiny: bool, time_limit_s: Optional[float], progress: bool) -> Dict:
    """Train, package and re-evaluate one package (the work of one worker process)."""
    import torch

    from .config import load_train_config
    from .evaluate import evaluate_on_split
    from .loop import ENV_TIME_LIMIT_S
    from .pipeline import primary_metric, train_and_package

    folder = Path(packages_dir) / name
    profile = folder / PROFILE
    if profile.resolve().is_relative_to(Path.cwd()):  # the card's "Reproduce:" line names it from the checkout
        profile = profile.resolve().relative_to(Path.cwd())
    t0 = time.perf_counter()
    result: Dict = {"package": name, "profile": str(profile), "device": device}
    drift = profile_drift(folder)
    if drift:
        raise ValueError(f"{profile}: {', '.join(drift)} differ from train.yaml; bring the GPU profile in step")
    if time_limit_s:  # read by loop.train (train_and_package passes no such argument)
        os.environ[ENV_TIME_LIMIT_S] = str(time_limit_s)
    config = _tiny_config(profile, out / "_configs" / name / "train.yaml", iterations) if tiny else profile
    cfg = load_train_config(config)
    rdf = train_and_package(config, out_dir=out / name, work_dir=out / "_runs" / name, device=device,
                            iterations=iterations, resume=False, progress=progress)
    t_train = time.perf_counter() - t0
    metrics = evaluate_on_split(rdf.parent, profile if not tiny else config, device=device)
    metric = primary_metric(cfg)
    card = _card(folder)
    result.update(estimate(cfg))
    value = float(metrics[metric])
    log = (out / "_runs" / name / "loss.csv").read_text().splitlines()
    result.update({
        "metric": metric, "value": round(value, 4) if math.isfinite(value) else value,
        "card_value": card.get(metric), "higher_is_better": not metric.endswith("_nm"),
        "improved": _better(value, card.get(metric), metric),
        "held_out": {k: round(v, 4) if isinstance(v, float) and math.isfinite(v) else v for k, v in metrics.items()},
        "split": card.get("split", ""),
        "iterations_configured": cfg.train.iterations,
        "iterations_run": int(log[-1].split(",")[0]) if len(log) > 1 else 0,
        "train_loop_s": float(log[-1].split(",")[4]) if len(log) > 1 else None,
        "train_and_package_s": round(t_train, 1),
        "wall_s": round(time.perf_counter() - t0, 1),
        "time_limit_s": time_limit_s,
        "hardware": torch.cuda.get_device_name(0) if device.startswith("cuda") else "CPU",
        "weights_bytes": {f.name: f.stat().st_size for f in sorted((out / name).glob("weights.*"))},
        "problems": check_package(out / name),
    })
    return result


def promote(out: Path, packages_dir: Path = MODEL_PACKAGES) -> List[str]:
    """Copy the packages of a finished run whose held-out figure improved on the card into
    ``packages_dir`` (its ``train.yaml`` becomes the GPU profile it was trained with; the
    folder's ``train_gpu.yaml`` stays, files the new package lacks are removed).

    Returns the promoted names. Refuses ``--tiny`` runs and iteration overrides, whose
    packages are smoke tests, not the profiles' training.
    """
    import shutil

    summary = json.loads((Path(out) / "summary.json").read_text())
    if summary.get("tiny") or summary.get("iterations_override") is not None:
        raise ValueError(f"{out}: a --tiny or --iterations run; only a full run's packages are promoted")
    promoted = []
    for name, r in summary["packages"].items():
        if not r.get("improved") or r.get("problems") or "error" in r:
            continue
        new, dest = Path(out) / name, Path(packages_dir) / name
        if check_package(new):
            continue
        keep = {f.name for f in new.iterdir() if f.is_file()} | {PROFILE}
        for f in dest.iterdir():
            if f.is_file() and f.name not in keep:
                f.unlink()
        for f in new.iterdir():
            if f.is_file():
                shutil.copy2(f, dest / f.name)
        promoted.append(name)
    return promoted


def _worker_main(a) -> int:
    import torch

    torch.set_num_threads(max(1, a.threads))
    try:
        res = run_one(a.worker, a.out, device=a.device, packages_dir=a.packages_dir, iterations=a.iterations,
                      tiny=a.tiny, time_limit_s=a.time_limit_s, progress=not a.quiet)
    except Exception as e:  # noqa: BLE001 - reported in the summary, the other packages go on
        res = {"package": a.worker, "error": f"{type(e).__name__}: {e}"}
    from ..io.atomic import write_atomic

    write_atomic(a.out / f"{a.worker}.result.json",
                 lambda tmp: tmp.write_text(json.dumps(res, indent=2, default=str) + "\n"))
    return 0 if "error" not in res and not res.get("problems") else 1


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m synapse_bmz.training.gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs") / "gpu", help="output folder (default runs/gpu/)")
    p.add_argument("--packages", help="comma-separated names (default: every real-data package)")
    p.add_argument("--packages-dir", type=Path, default=MODEL_PACKAGES, help="folder of the packages (default model_packages/)")
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--jobs", type=int, help="packages trained at once (default: all on CUDA, 1 on CPU)")
    p.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S, help="total wall-time budget in s (default 480)")
    p.add_argument("--iterations", type=int, help="override every profile's iteration count")
    p.add_argument("--tiny", action="store_true", help="smoke run: min_shape patches, batch 1, 4 base channels")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--promote", action="store_true",
                   help="copy the improved packages of the finished run in --out into model_packages/; train nothing")
    p.add_argument("--sync-profiles", action="store_true",
                   help="rewrite each train_gpu.yaml's data/target/package sections from its train.yaml; train nothing")
    p.add_argument("--estimate", action="store_true", help="print each profile's FLOPs and estimated GPU time; train nothing")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--time-limit-s", type=float, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    a = _parser().parse_args(argv)
    if a.estimate:
        return _print_estimates(a)
    if a.sync_profiles:
        names = a.packages.split(",") if a.packages else real_data_packages(a.packages_dir)
        changed = [n for n in names if sync_profile(a.packages_dir / n)]
        print("updated: " + (", ".join(changed) if changed else "none (every profile in step)"))
        return 0
    if a.promote:
        names = promote(a.out, a.packages_dir)
        print("promoted: " + (", ".join(names) if names else "none (no package improved on its card)"))
        return 0
    if a.device.startswith("cuda") and not _cuda_available():
        print(f"error: --device {a.device} asked for, but torch finds no CUDA GPU here "
              "(use --device cpu --iterations 2 --tiny for a smoke run)", file=sys.stderr)
        return 2
    a.out.mkdir(parents=True, exist_ok=True)
    if a.worker:
        return _worker_main(a)
    return _run_all(a)


def _print_estimates(a) -> int:
    from .config import load_train_config

    names = a.packages.split(",") if a.packages else real_data_packages(a.packages_dir)
    total = 0.0
    for name in names:
        cfg = load_train_config(a.packages_dir / name / PROFILE)
        if a.iterations is not None:
            cfg.train.iterations = a.iterations
        e = estimate(cfg)
        total += e["estimated_train_s"]
        print(f"{name:18s} {e['gflop_per_iteration']:8.1f} GFLOP/iteration  ~{e['estimated_ms_per_iteration']:.1f} ms  "
              f"x {cfg.train.iterations} = ~{e['estimated_train_s']:.0f} s")
    print(f"total ~{total:.0f} s of GPU training at an assumed {ASSUMED_TFLOPS:.0f} TFLOP/s (an estimate, not a measurement)")
    return 0


def _run_all(a) -> int:
    """Start one worker process per package, at most ``jobs`` at once; gather summary.json."""
    from ..io.atomic import write_atomic
    from .loop import ENV_LOADER_WORKERS

    names = a.packages.split(",") if a.packages else real_data_packages(a.packages_dir)
    missing = [n for n in names if not (a.packages_dir / n / PROFILE).is_file()]
    if missing:
        print(f"error: no {PROFILE} for {', '.join(missing)} in {a.packages_dir}", file=sys.stderr)
        return 1
    cuda = a.device.startswith("cuda")
    jobs = max(1, min(len(names), a.jobs or (len(names) if cuda else 1)))
    cpus = os.cpu_count() or 2
    # the GPU is shared by `jobs` processes; each gets its slice of the budget for training
    rounds = math.ceil(len(names) / jobs)
    time_limit = max(30.0, a.budget_s / rounds - OVERHEAD_S)
    env = dict(os.environ)
    env[ENV_LOADER_WORKERS] = str(max(1, (cpus - jobs) // jobs) if cuda else 0)
    threads = max(1, cpus // jobs)
    t0 = time.perf_counter()
    pending, running, rcs = list(names), {}, {}
    while pending or running:
        while pending and len(running) < jobs:
            name = pending.pop(0)
            (a.out / f"{name}.result.json").unlink(missing_ok=True)
            cmd = [sys.executable, "-m", "synapse_bmz.training.gpu", "--worker", name, "--out", str(a.out),
                   "--packages-dir", str(a.packages_dir), "--device", a.device, "--threads", str(threads)]
            cmd += ["--time-limit-s", str(time_limit)]
            cmd += ["--iterations", str(a.iterations)] if a.iterations is not None else []
            cmd += ["--tiny"] if a.tiny else []
            cmd += ["--quiet"] if a.quiet or jobs > 1 else []
            running[name] = subprocess.Popen(cmd, env=env)
            print(f"[{time.perf_counter() - t0:6.1f} s] started {name}", flush=True)
        for name, proc in list(running.items()):
            if proc.poll() is not None:
                rcs[name] = proc.returncode
                del running[name]
                print(f"[{time.perf_counter() - t0:6.1f} s] finished {name} (exit {proc.returncode})", flush=True)
        time.sleep(0.5)
    total = time.perf_counter() - t0

    results = {}
    for name in names:
        f = a.out / f"{name}.result.json"
        results[name] = (json.loads(f.read_text()) if f.is_file()
                         else {"package": name, "error": f"worker exited {rcs.get(name)} without a result"})
    failed = [n for n, r in results.items() if "error" in r or r.get("problems")]
    summary = {
        "device": a.device, "hardware": next((r["hardware"] for r in results.values() if "hardware" in r), None),
        "budget_s": a.budget_s, "total_wall_s": round(total, 1), "within_budget": total <= a.budget_s,
        "jobs": jobs, "train_time_limit_s": time_limit,
        "loader_workers_per_package": int(env[ENV_LOADER_WORKERS]),
        "iterations_override": a.iterations, "tiny": a.tiny,
        "improved": [n for n, r in results.items() if r.get("improved")],
        "failed": failed, "packages": results,
    }
    write_atomic(a.out / "summary.json", lambda tmp: tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n"))
    for name, r in results.items():
        if "error" in r:
            print(f"{name:18s} FAILED: {r['error']}")
        else:
            flag = {True: "improved", False: "not better", None: "not comparable"}[r["improved"]]
            print(f"{name:18s} {r['metric']:15s} {r['value']!s:>9} (card {r['card_value']}) {flag}; "
                  f"{r['iterations_run']} it, {r['wall_s']:.0f} s" + (f"; {'; '.join(r['problems'])}" if r["problems"] else ""))
    print(f"total {total:.0f} s of a {a.budget_s:.0f} s budget"
          + ("" if total <= a.budget_s else " (OVER BUDGET)") + f"; written: {a.out / 'summary.json'}")
    return 0 if not failed and total <= a.budget_s else 1


if __name__ == "__main__":
    sys.exit(main())
