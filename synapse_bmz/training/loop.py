"""The supervised training loop: seeded, resumable, with validation and loss curves."""

from __future__ import annotations

import csv
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..io.atomic import write_atomic
from .config import TrainConfig
from .data import SliceDataset, load_split, sample_batch
from .losses import combined_loss


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes
    ----------
    model : torch.nn.Module
        Best model by validation Dice (eval mode, CPU).
    best_val_dice : float
        Foreground Dice on the validation split at the best checkpoint.
    iterations : int
    wall_time_s : float
    hardware : str
    out_dir : Path
    """

    model: object
    best_val_dice: float
    best_iteration: int
    iterations: int
    wall_time_s: float
    hardware: str
    out_dir: Path


def build_model(cfg: TrainConfig):
    from ..models import UNet

    m = cfg.model
    return UNet(ndim=m.ndim, in_channels=1, out_channels=cfg.out_channels,
                base_channels=m.base_channels, depth=m.depth,
                pool_factors=m.pool_factors, kernel_sizes=m.kernel_sizes)


def pad_to_multiple(img: np.ndarray, multiple):
    """Reflect-pad up to a multiple; returns the padded array and the crop.

    Parameters
    ----------
    img : ndarray
    multiple : int or sequence of int
        An int pads the last two axes; a sequence pads the last ``len(multiple)``
        axes, each to its own multiple (a U-Net's ``divisibility``).
    """
    mult = [int(multiple)] * 2 if np.isscalar(multiple) else [int(m) for m in multiple]
    shape = img.shape[-len(mult):]
    pads = [(0, 0)] * (img.ndim - len(mult)) + [(0, (-s) % m) for s, m in zip(shape, mult)]
    mode = "reflect" if all(s > 1 for s in shape) else "edge"
    return np.pad(img, pads, mode=mode), tuple(slice(0, s) for s in img.shape)


def predict_slices(model, images, device: str, multiple, tta: str = "none"):
    """Whole-image prediction of normalised 2D images or 3D volumes; returns (C, [Z,] Y, X) arrays.

    ``multiple`` is the model's ``divisibility`` (per axis) or one int for 2D.
    ``tta`` ``"flips"`` averages over the 4 in-plane mirror images, the runner's
    `synapse_bmz.runner.flips.flip_averaged`.
    """
    import torch

    from ..runner.flips import flip_averaged

    def one_pass(batch):
        padded, crop = pad_to_multiple(batch[0], multiple)
        p = model(torch.from_numpy(np.ascontiguousarray(padded)[None, None]).to(device))[0].float().cpu().numpy()
        return p[(slice(None),) + crop][None]

    out = []
    model.eval()
    with torch.no_grad():
        for img in images:
            out.append(np.ascontiguousarray(flip_averaged(one_pass, np.asarray(img)[None], img.ndim, tta)[0]))
    return out


def foreground_dice(preds, targets) -> float:
    """Dice of thresholded channel 0 (foreground) over a list of slices."""
    inter = sum(float(((p[0] > 0.5) & (t[0] > 0.5)).sum()) for p, t in zip(preds, targets))
    total = sum(float((p[0] > 0.5).sum() + (t[0] > 0.5).sum()) for p, t in zip(preds, targets))
    return 2 * inter / total if total else 1.0


def _hardware(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(0)
    n = torch.get_num_threads()
    return f"CPU ({platform.processor() or platform.machine()}), {n} thread{'' if n == 1 else 's'}"


def _truncate_log(log_path: Path, last_iteration: int) -> None:
    """Drop rows an interrupted run wrote after its last checkpoint, so a resumed
    run's curve continues without duplicate iterations."""
    rows = list(csv.reader(open(log_path, newline="")))
    kept = rows[:1] + [r for r in rows[1:] if r and int(r[0]) <= last_iteration]
    with open(log_path, "w", newline="") as f:
        csv.writer(f).writerows(kept)


#: environment settings read by `train` when its arguments are left at None (a GPU run
#: launched through ``synapse-bmz train`` or `synapse_bmz.training.gpu` sets them per process)
ENV_LOADER_WORKERS = "SYNAPSE_BMZ_LOADER_WORKERS"
ENV_TIME_LIMIT_S = "SYNAPSE_BMZ_TRAIN_TIME_LIMIT_S"
ENV_CHANNELS_LAST = "SYNAPSE_BMZ_CHANNELS_LAST"


def default_loader_workers(device: str) -> int:
    """Background processes that sample patches: 0 on CPU (the training process samples,
    the patch stream of every shipped CPU package), on CUDA ``$SYNAPSE_BMZ_LOADER_WORKERS``
    or all cores but two, at most 8."""
    env = os.environ.get(ENV_LOADER_WORKERS)
    if env is not None:
        return max(0, int(env))
    if not device.startswith("cuda"):
        return 0
    return max(1, min(8, (os.cpu_count() or 2) - 2))


def _batches(train_data: SliceDataset, cfg: TrainConfig, rng, start: int, workers: int, pin: bool):
    """Batches as tensors: sampled in this process (``workers == 0``, the seeded CPU stream)
    or by ``workers`` DataLoader processes with pinned memory and prefetching."""
    import torch

    if workers <= 0:
        t = cfg.train
        while True:
            x, y = sample_batch(train_data, t.patch, t.batch_size, rng, t.reject_empty_probability,
                                t.degrade_probability, t.zoom_probability, t.zoom_range)
            yield torch.from_numpy(x), torch.from_numpy(y)
    from .stream import PatchStream

    loader = torch.utils.data.DataLoader(
        PatchStream(train_data, cfg.train, cfg.seed, start), batch_size=None, num_workers=workers,
        pin_memory=pin, prefetch_factor=4, persistent_workers=True)
    yield from loader


def _memory_format(device: str, ndim: int):
    """``channels_last`` for 2D networks on CUDA (cuDNN's tensor-core convolutions run NHWC
    without transposes); contiguous otherwise. ``$SYNAPSE_BMZ_CHANNELS_LAST`` = 0/1 forces it."""
    import torch

    env = os.environ.get(ENV_CHANNELS_LAST)
    wanted = device.startswith("cuda") and ndim == 2 if env is None else env not in ("0", "", "false")
    if not wanted:
        return torch.contiguous_format
    return torch.channels_last if ndim == 2 else torch.channels_last_3d


def load_init_weights(model, path: Path, device: str = "cpu") -> None:
    """Load a state dict into ``model`` for a warm start; one-line errors for a file that is
    missing, not a state dict, or of another architecture."""
    import torch

    from ..errors import InputError

    if not path.is_file():
        raise InputError(str(path), "no such weights file (--init-weights)")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # a corrupt or pickled-object file: never unpickled beyond tensors
        raise InputError(str(path), f"not a torch state dict: {type(e).__name__}") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # a training checkpoint
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(str(path), f"weights do not fit this config's network: {first}") from None


def train(cfg: TrainConfig, out_dir: Path, *, device: Optional[str] = None,
          resume: bool = True, progress: bool = True,
          train_data: Optional[SliceDataset] = None, val_data: Optional[SliceDataset] = None,
          loader_workers: Optional[int] = None, time_limit_s: Optional[float] = None,
          init_weights: Optional[Path] = None) -> TrainResult:
    """Train a U-Net as configured; checkpoints and ``loss.csv`` go to ``out_dir``.

    On CUDA the forward pass runs under ``torch.autocast`` (float16, with a
    ``GradScaler``; ``train.mixed_precision: false`` turns it off), cuDNN picks
    its fastest kernels (``cudnn.benchmark``), 2D networks run ``channels_last``
    and patches are sampled by DataLoader workers into pinned memory. On CPU
    none of that applies: the seeded patch stream and numbers are those of a
    plain float32 run.

    Parameters
    ----------
    cfg : TrainConfig
    out_dir : Path
        Receives ``checkpoints/latest.pt``, ``checkpoints/best.pt`` and ``loss.csv``.
    device : str, optional
        ``"cuda"`` when available, else ``"cpu"``.
    resume : bool
        Continue from ``checkpoints/latest.pt`` when it exists.
    loader_workers : int, optional
        Patch-sampling processes; default `default_loader_workers` (0 on CPU).
    time_limit_s : float, optional
        Wall-clock cap in seconds (default ``$SYNAPSE_BMZ_TRAIN_TIME_LIMIT_S``, else none):
        the cosine learning rate decays by wall time when that is further along than the
        iteration count, and at the cap the run validates, checkpoints and stops; the result's
        ``iterations`` is the number actually run.
    init_weights : Path, optional
        A state dict of this architecture (e.g. a package's ``weights.state_dict.pt``) to start
        from instead of random weights (a warm start: fresh optimiser and schedule at iteration
        0, patches drawn from the seeded stream ``[seed, 0]``). Ignored when a checkpoint is
        resumed. Loaded with ``weights_only=True``.

    Returns
    -------
    TrainResult
    """
    import torch
    from tqdm import tqdm

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    if time_limit_s is None and os.environ.get(ENV_TIME_LIMIT_S):
        time_limit_s = float(os.environ[ENV_TIME_LIMIT_S])
    workers = default_loader_workers(device) if loader_workers is None else int(loader_workers)
    cuda = device.startswith("cuda")
    if cuda:
        torch.backends.cudnn.benchmark = True  # fixed patch shapes: the autotuned kernels pay off
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(False)
    rng = np.random.default_rng(cfg.seed)
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    if train_data is None or val_data is None:
        train_data, val_data = load_split(cfg)

    fmt = _memory_format(device, cfg.model.ndim)
    model = build_model(cfg).to(device, memory_format=fmt)
    multiple = model.divisibility
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.learning_rate)
    n_iter = cfg.train.iterations

    clock = {"t0": time.perf_counter()}

    def lr_factor(it):
        if cfg.train.lr_schedule == "constant":
            return 1.0
        progress = it / n_iter
        if time_limit_s:  # under a wall-clock cap the cosine ends at the cap if that comes first
            progress = min(1.0, max(progress, (time.perf_counter() - clock["t0"]) / time_limit_s))
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    use_amp = device.startswith("cuda") and cfg.train.mixed_precision
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    start, best_dice, best_it, elapsed0 = 0, -1.0, 0, 0.0
    latest = ckpt_dir / "latest.pt"
    if init_weights is not None and not (resume and latest.exists()):
        load_init_weights(model, Path(init_weights), device)
        # the stream of a run resumed at iteration 0, so a warm start is its own seeded run
        rng = np.random.default_rng([cfg.seed, 0])
    if resume and latest.exists():
        ck = torch.load(latest, map_location=device, weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        start, best_dice, best_it = int(ck["iteration"]), float(ck["best_dice"]), int(ck["best_iteration"])
        elapsed0 = float(ck["elapsed_s"])
        # a resumed run draws a different but still seeded patch stream
        rng = np.random.default_rng([cfg.seed, start])
    log_path = out_dir / "loss.csv"
    new_log = not (resume and log_path.exists() and start > 0)
    if not new_log:
        _truncate_log(log_path, start)
    log = open(log_path, "w" if new_log else "a", newline="")
    writer = csv.writer(log)
    if new_log:
        writer.writerow(["iteration", "train_loss", "val_foreground_dice", "learning_rate", "elapsed_s"])

    t0 = clock["t0"] = time.perf_counter()
    running = []  # losses stay on the device until logged: no host sync per iteration
    step = start
    batches = _batches(train_data, cfg, rng, start, workers, pin=cuda)
    bar = tqdm(range(start, n_iter), disable=not progress, desc=f"train {cfg.package.name}", initial=start, total=n_iter)
    for it in bar:
        model.train()
        x, y = next(batches)
        x = x.to(device, non_blocking=True, memory_format=fmt)
        y = y.to(device, non_blocking=True)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", enabled=use_amp):
            pred = model(x)
        loss = combined_loss(pred.float(), y, cfg.train.foreground_weight)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
        running.append(loss.detach())
        step = it + 1
        out_of_time = time_limit_s is not None and time.perf_counter() - t0 >= time_limit_s
        last = step == n_iter or out_of_time
        val_dice = ""
        if step % cfg.train.validate_every == 0 or last:
            preds = predict_slices(model, val_data.raw, device, multiple)
            val_dice = foreground_dice(preds, val_data.targets)
            if val_dice > best_dice:
                best_dice, best_it = val_dice, step
                write_atomic(ckpt_dir / "best.pt", lambda tmp: torch.save(model.state_dict(), tmp))
            bar.set_postfix(loss=f"{torch.stack(running).mean().item():.3f}", val_dice=f"{val_dice:.3f}")
        if step % 10 == 0 or val_dice != "":
            writer.writerow([step, f"{torch.stack(running).mean().item():.5f}",
                             val_dice if val_dice == "" else f"{val_dice:.5f}",
                             f"{sched.get_last_lr()[0]:.2e}", f"{elapsed0 + time.perf_counter() - t0:.1f}"])
            log.flush()
            running = []
        if step % cfg.train.checkpoint_every == 0 or last:
            state = {"model": model.state_dict(), "optimizer": opt.state_dict(),
                     "scheduler": sched.state_dict(), "iteration": step,
                     "best_dice": best_dice, "best_iteration": best_it,
                     "elapsed_s": elapsed0 + time.perf_counter() - t0}
            write_atomic(latest, lambda tmp: torch.save(state, tmp))
        if out_of_time:
            break
    bar.close()
    log.close()
    model = model.to(memory_format=torch.contiguous_format)  # packages are traced and exported contiguous
    model.load_state_dict(torch.load(ckpt_dir / "best.pt", map_location="cpu", weights_only=True))
    return TrainResult(model=model.cpu().eval(), best_val_dice=best_dice, best_iteration=best_it,
                       iterations=step, wall_time_s=elapsed0 + time.perf_counter() - t0,
                       hardware=_hardware(device), out_dir=out_dir)
