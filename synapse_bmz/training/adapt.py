"""Domain adaptation of a model package by mean-teacher self-training on unlabelled data.

``synapse-bmz adapt SOURCE UNLABELLED... -o NEW`` starts from any bioimage.io
package with ``pytorch_state_dict`` weights: the architecture is rebuilt from
the package's own source file, callable and kwargs, and the state dict is
loaded with ``torch.load(weights_only=True)`` after its sha256 was checked.

Each iteration crops patches of the unlabelled data (normalised per volume and
resampled to the package's voxel size, as the runner does), flips/rotates them
once, and makes two intensity-augmented views. The teacher (an exponential
moving average of the student, in eval mode) predicts on the first view; its
confident voxels (probability >= ``confidence`` or <= ``1 - confidence``)
become pseudo-labels, and the student is trained on the second view with a
Dice loss restricted to them. The teacher is what gets packaged. The source
network must output probabilities (a sigmoid), as all our packages do.
"""

from __future__ import annotations

import copy
import csv
import importlib.util
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError, ModelError
from .augment import flip_rotate, intensity
from .data import normalise


@dataclass
class PackageNetwork:
    """A package's network rebuilt from its state-dict weights.

    Attributes
    ----------
    model : torch.nn.Module
        In eval mode, on CPU.
    loaded : synapse_bmz.zoo.registry.LoadedModel
    spatial : str
        ``"yx"`` or ``"zyx"``.
    voxel_size_nm : list of float or None
        Scale of the input's spatial axes (nm), None when the RDF gives none.
    min_shape, step : list of int
        Valid input sizes per spatial axis: ``min + n * step``.
    """

    model: Any
    loaded: Any
    spatial: str
    voxel_size_nm: Optional[List[float]]
    min_shape: List[int]
    step: List[int]


def _import_architecture(path: Path, sha256: str, callable_name: str):
    """Import the package's architecture file once per content hash and return the callable."""
    name = f"_synapse_bmz_arch_{sha256[:16]}"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as e:
            del sys.modules[name]
            raise ModelError(f"{path}: cannot import the architecture: {e}") from None
    if not hasattr(module, callable_name):
        raise ModelError(f"{path}: has no callable {callable_name!r}")
    return getattr(module, callable_name)


def load_package_network(source) -> PackageNetwork:
    """Rebuild a package's network from ``weights.pytorch_state_dict``.

    Parameters
    ----------
    source : str or Path
        Package name, folder, zip or RDF path.

    Returns
    -------
    PackageNetwork

    Raises
    ------
    ModelError
        No state-dict weights, an architecture file whose sha256 differs from
        the RDF, or weights that do not fit the architecture.
    """
    import torch

    from ..zoo.registry import load_model, sha256_file

    loaded = load_model(source)
    entry = loaded.descr.weights.pytorch_state_dict
    if entry is None or "pytorch_state_dict" not in loaded.weights_sha256:
        raise ModelError(f"{loaded.rdf_path}: adaptation needs pytorch_state_dict weights beside the RDF")
    arch = entry.architecture
    if not hasattr(arch, "source"):
        raise ModelError(f"{loaded.rdf_path}: architecture is not a source file shipped in the package")
    root = loaded.rdf_path.parent
    arch_path = root / str(getattr(arch.source, "path", arch.source))
    digest = sha256_file(arch_path)
    if arch.sha256 is not None and digest != str(arch.sha256):
        raise ModelError(f"{arch_path}: sha256 does not match the RDF; refusing to import altered code")
    cls = _import_architecture(arch_path, digest, str(arch.callable))
    model = cls(**dict(arch.kwargs or {}))
    weights = root / str(getattr(entry.source, "path", entry.source))
    try:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except RuntimeError as e:
        raise ModelError(f"{weights}: weights do not fit the architecture: {e}") from None
    axes = [a for a in loaded.descr.inputs[0].axes if a.type == "space"]
    scales = [float(a.scale) for a in axes]
    return PackageNetwork(
        model=model.eval(), loaded=loaded, spatial="".join(str(a.id) for a in axes),
        voxel_size_nm=scales if all(str(a.unit) == "nanometer" for a in axes) else None,
        min_shape=[int(getattr(a.size, "min", a.size)) for a in axes],
        step=[int(getattr(a.size, "step", 0)) for a in axes],
    )


def unlabelled_images(inputs: Sequence, net: PackageNetwork, voxel_size_nm: Optional[Sequence[float]] = None
                      ) -> List[np.ndarray]:
    """Read, normalise (per volume) and resample unlabelled inputs onto the network's grid.

    Parameters
    ----------
    inputs : sequence of str or Path
        Anything `synapse_bmz.io.read_volume` reads; folders of volumes expand.
    net : PackageNetwork
    voxel_size_nm : sequence of float, optional
        ``(z, y, x)`` or ``(y, x)``; required for inputs without one (slice folders).

    Returns
    -------
    list of ndarray, float32
        (Y, X) sections for a 2D network (every section of a stack), (Z, Y, X)
        volumes for a 3D one.
    """
    from scipy import ndimage as ndi

    from ..io import list_inputs, read_volume

    nd = len(net.spatial)
    out: List[np.ndarray] = []
    for item in inputs:
        for path in list_inputs(item):
            vol = read_volume(path, voxel_size_nm)
            if vol.data.ndim < nd:
                raise InputError(path, f"a {nd}D network needs {nd}D data, got shape {vol.shape}")
            arr = normalise(vol.to_numpy())
            if net.voxel_size_nm is not None:
                factors = [1.0] * (arr.ndim - nd) + [v / m for v, m in zip(vol.voxel_size_nm[-nd:], net.voxel_size_nm)]
                if any(abs(f - 1) >= 0.05 for f in factors):
                    arr = ndi.zoom(arr, factors, order=1).astype(np.float32)
            out.extend(list(arr) if nd == 2 and arr.ndim == 3 else [arr])
    if not out:
        raise InputError(", ".join(map(str, inputs)), "no unlabelled images found")
    return out


def default_patch(images: Sequence[np.ndarray], divisibility: Sequence[int], ndim: int) -> List[int]:
    """256 x 256 (2D) or 8 x 128 x 128 (3D), shrunk to the smallest image and to the U-Net's divisibility."""
    want = [256, 256] if ndim == 2 else [8, 128, 128]
    smallest = np.min([im.shape for im in images], axis=0)
    return [max(d, (min(w, int(s)) // d) * d) for w, s, d in zip(want, smallest, divisibility)]


def _patches(images, patch, batch_size, rng) -> Tuple[np.ndarray, np.ndarray]:
    """Two intensity-augmented views of the same flipped/rotated random crops."""
    a, b = [], []
    for _ in range(batch_size):
        img = images[int(rng.integers(len(images)))]
        corner = [int(rng.integers(s - p + 1)) for s, p in zip(img.shape, patch)]
        crop = img[tuple(slice(c, c + p) for c, p in zip(corner, patch))]
        crop, _ = flip_rotate(crop, crop[None], rng)
        a.append(intensity(crop, rng)[None])
        b.append(intensity(crop, rng)[None])
    return np.stack(a), np.stack(b)


def _ema_update(teacher, student, momentum: float) -> None:
    import torch

    with torch.no_grad():
        for t, s in zip(teacher.parameters(), student.parameters()):
            t.mul_(momentum).add_(s.detach(), alpha=1 - momentum)
        for t, s in zip(teacher.buffers(), student.buffers()):
            if t.dtype.is_floating_point:
                t.mul_(momentum).add_(s.detach(), alpha=1 - momentum)
            else:
                t.copy_(s)


@dataclass
class AdaptResult:
    """What an adaptation run did: the packaged teacher and its log."""

    teacher: Any
    iterations: int
    mean_confident_fraction: float
    final_loss: float
    wall_time_s: float
    hardware: str


def mean_teacher(net: PackageNetwork, images: Sequence[np.ndarray], *, iterations: int = 2000,
                 confidence: float = 0.9, ema: float = 0.99, learning_rate: float = 1e-4,
                 batch_size: int = 4, patch: Optional[Sequence[int]] = None, seed: int = 0,
                 device: Optional[str] = None, log_path: Optional[Path] = None,
                 progress: bool = True) -> AdaptResult:
    """Mean-teacher self-training of ``net.model`` on unlabelled images.

    Parameters
    ----------
    net : PackageNetwork
    images : sequence of ndarray
        Normalised images on the network's grid (`unlabelled_images`).
    iterations : int
    confidence : float
        Teacher probability needed for a pseudo-label, in (0.5, 1).
    ema : float
        Teacher momentum: ``teacher = ema * teacher + (1 - ema) * student`` after every step.
    patch : sequence of int, optional
        Patch per spatial axis; default `default_patch`.
    log_path : Path, optional
        Receives ``iteration, loss, confident_fraction`` every 10 iterations.

    Returns
    -------
    AdaptResult
        ``teacher`` is in eval mode on the CPU.
    """
    import torch
    from tqdm import tqdm

    from .loop import _hardware
    from .losses import masked_dice_loss

    if not 0.5 < confidence < 1:
        raise ValueError(f"confidence must lie in (0.5, 1), got {confidence}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    student = copy.deepcopy(net.model).to(device).train()
    teacher = copy.deepcopy(net.model).to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    nd = len(net.spatial)
    div = list(getattr(net.model, "divisibility", [max(s, 1) for s in net.step]))
    patch = [int(p) for p in (patch or default_patch(images, div, nd))]
    images = [im for im in images if all(s >= p for s, p in zip(im.shape, patch))]
    if not images:
        raise InputError("unlabelled data", f"no image is as large as the patch {patch}")
    opt = torch.optim.Adam(student.parameters(), lr=learning_rate)
    use_amp = device.startswith("cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    log = open(log_path, "w", newline="") if log_path else None
    writer = csv.writer(log) if log else None
    if writer:
        writer.writerow(["iteration", "loss", "confident_fraction"])
    t0 = time.perf_counter()
    losses, fractions = [], []
    for it in tqdm(range(iterations), disable=not progress, desc="adapt"):
        view_t, view_s = (torch.from_numpy(v).to(device) for v in _patches(images, patch, batch_size, rng))
        with torch.no_grad(), torch.autocast(device_type="cuda", enabled=use_amp):
            prob = teacher(view_t).float()
        pseudo = (prob >= 0.5).float()
        mask = ((prob >= confidence) | (prob <= 1 - confidence)).float()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", enabled=use_amp):
            pred = student(view_s)
        loss = masked_dice_loss(pred.float(), pseudo, mask)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        _ema_update(teacher, student, ema)
        losses.append(loss.item())
        fractions.append(float(mask.mean()))
        if writer and ((it + 1) % 10 == 0 or it + 1 == iterations):
            writer.writerow([it + 1, f"{np.mean(losses[-10:]):.5f}", f"{np.mean(fractions[-10:]):.4f}"])
            log.flush()
    if log:
        log.close()
    return AdaptResult(teacher=teacher.cpu().eval(), iterations=iterations,
                       mean_confident_fraction=float(np.mean(fractions)) if fractions else float("nan"),
                       final_loss=float(np.mean(losses[-10:])) if losses else float("nan"),
                       wall_time_s=time.perf_counter() - t0, hardware=_hardware(device))


def _source_config(net: PackageNetwork):
    """The source's ``config.synapse_bmz``, or one read off the RDF for foreign packages."""
    from ..zoo.config import SynapseBmzConfig

    if net.loaded.config is not None:
        return net.loaded.config
    out_axes = net.loaded.descr.outputs[0].axes
    channel_axis = next((a for a in out_axes if a.type == "channel"), None)
    channels = [str(c) for c in channel_axis.channel_names] if channel_axis is not None else ["prediction"]
    halo = [int(getattr(a, "halo", 0) or 0) for a in out_axes if a.type == "space"]
    return SynapseBmzConfig(task="segmentation", channels=channels,
                            voxel_size_nm=net.voxel_size_nm or [1.0] * len(net.spatial), halo=halo)


def _cite(descr) -> List[Dict[str, str]]:
    out = []
    for c in descr.cite:
        entry = {"text": str(c.text)}
        if getattr(c, "doi", None):
            entry["doi"] = str(c.doi)
        elif getattr(c, "url", None):
            entry["url"] = str(c.url)
        out.append(entry)
    return out


def adapt_package(source, inputs: Sequence, out_dir: Path, *, voxel_size_nm: Optional[Sequence[float]] = None,
                  iterations: int = 2000, confidence: float = 0.9, ema: float = 0.99,
                  learning_rate: float = 1e-4, batch_size: int = 4, patch: Optional[Sequence[int]] = None,
                  seed: int = 0, device: Optional[str] = None, license: Optional[str] = None,
                  data_description: str = "", progress: bool = True) -> Path:
    """Adapt a package to unlabelled data and write the adapted package.

    Parameters
    ----------
    source : str or Path
        Package name, folder, zip or RDF path.
    inputs : sequence of str or Path
        Unlabelled volumes or images (anything ``synapse-bmz run`` reads).
    out_dir : Path
        Folder of the new package (replaced atomically); its name is the package name.
    voxel_size_nm : sequence of float, optional
        For inputs without a voxel size (slice folders), ``(z, y, x)`` or ``(y, x)``.
    license : str, optional
        SPDX id of the new weights; default the source's. Weights adapted on
        non-commercial data (the Drosophila VNC stacks) must say ``CC-BY-NC-SA-3.0``.
    data_description : str
        One sentence on the unlabelled data, for the model card.

    Other parameters are those of `mean_teacher`.

    Returns
    -------
    Path
        The new package's ``rdf.yaml``. Its ``config.synapse_bmz`` is the
        source's, except ``accuracy``, which records that the figures were
        measured before adaptation, on the source's data.
    """
    from ..io import read_volume
    from ..packaging import PackageInfo, build_package
    from .pipeline import sample_input

    out_dir = Path(out_dir)
    net = load_package_network(source)
    images = unlabelled_images(inputs, net, voxel_size_nm)
    res = mean_teacher(net, images, iterations=iterations, confidence=confidence, ema=ema,
                       learning_rate=learning_rate, batch_size=batch_size, patch=patch, seed=seed,
                       device=device, progress=progress)
    descr = net.loaded.descr
    src_cfg = _source_config(net)
    cfg = src_cfg.model_copy(update={"accuracy": {
        "adapted_from": net.loaded.name, "split": "not measured on the adaptation data",
        "source_accuracy": dict(src_cfg.accuracy)}})
    shown = []
    for item in inputs:
        try:
            vol = read_volume(item, voxel_size_nm)
            shown.append(f"`{item}` (shape {list(vol.shape)}, voxel size {list(vol.voxel_size_nm)} nm)")
        except InputError:
            shown.append(f"`{item}`")
    sha = net.loaded.weights_sha256["pytorch_state_dict"]
    section = (
        f"Adapted from package `{net.loaded.name}` (state-dict sha256 `{sha[:16]}...`) by mean-teacher "
        f"self-training on unlabelled data: {', '.join(shown)}. {data_description}\n\n"
        f"{iterations} iterations, batch {batch_size}, Adam lr {learning_rate}, teacher EMA {ema}, "
        f"pseudo-labels where the teacher's probability is >= {confidence} or <= {1 - confidence:.2f} "
        f"(on average {res.mean_confident_fraction:.1%} of the voxels), masked Dice loss, seed {seed}. "
        f"Wall time {res.wall_time_s / 60:.1f} min on {res.hardware}. The packaged weights are the teacher's.\n\n"
        f"Reproduce:\n\n```\nsynapse-bmz adapt {net.loaded.name} {' '.join(map(str, inputs))} -o {out_dir} "
        f"--iterations {iterations} --confidence {confidence}"
        + (f" --voxel-size {','.join(str(v) for v in voxel_size_nm)}" if voxel_size_nm else "") + "\n```"
    )
    accuracy = ("Not measured on the adaptation data (it is unlabelled). The source package's figures, on its "
                "own held-out split: " + ", ".join(f"{k} = {v}" for k, v in src_cfg.accuracy.items()) + ".")
    info = PackageInfo(
        name=out_dir.name, description=f"{descr.description} Adapted to new data by mean-teacher self-training.",
        authors=[str(a.name) for a in descr.authors] or ["synapse-bmz developers"],
        license=license or str(descr.license), cite=_cite(descr),
        tags=sorted({str(t) for t in descr.tags} | {"domain-adaptation"}),
        card_sections={"Domain adaptation": section, "Accuracy": accuracy},
    )
    sample = sample_input(images[0], net.min_shape, net.step)
    return build_package(res.teacher, sample, out_dir, info, cfg, min_shape=net.min_shape, step=net.step)
