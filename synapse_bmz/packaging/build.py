"""Build a complete bioimage.io model package from a torch module.

One call writes a folder that every consumer loads: the RDF (format 0.5.10,
plain-string ``documentation``/``covers`` so bioimageio.spec 0.5.9/0.5.10 and
deepImageJ read it), torchscript, state-dict + architecture source, ONNX
(opset 17, one file), test tensors, sample tensors, cover, model card and
``config.synapse_bmz``, with the upload metadata of `metadata` (id, version,
git_repo, authors with affiliation, citations with DOIs, the oldest PyTorch the
weights are tested with).
"""

from __future__ import annotations

import hashlib
import inspect
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import yaml

from ..normalise import RDF_EPS, zero_mean_unit_variance
from ..zoo.config import SynapseBmzConfig
from .card import write_cover, write_model_card
from .metadata import OLDEST_TESTED_TORCH, package_cites, upload_fields
from .samples import SAMPLE_INPUT_2D, SAMPLE_INPUT_3D, SAMPLE_OUTPUT, write_sample_tensors

RDF_FORMAT_VERSION = "0.5.10"
ONNX_OPSET = 17
INPUT_ID = "raw"
OUTPUT_ID = "prediction"


@dataclass
class PackageInfo:
    """Human-facing metadata of a package.

    Attributes
    ----------
    name : str
        Display name, e.g. ``"vesicles_2d"``.
    description : str
        One sentence on what the model does.
    authors : list of str or dict
        Names, or ``{"name": ..., "affiliation": ...}``; a name alone gets
        `metadata.AFFILIATION`.
    license : str
        SPDX id, e.g. ``"MIT"`` or ``"CC-BY-NC-SA-3.0"`` (weights inherit the
        training data's licence).
    cite : list of dict
        ``{"text": ..., "doi": ...}`` or ``{"text": ..., "url": ...}``: data and
        method; the architecture's papers and the project are added
        (`metadata.package_cites`).
    tags : list of str
    card_sections : dict of str to str
        Extra model-card sections (Training data, Accuracy, ...), markdown.
    """

    name: str
    description: str
    authors: List[Union[str, Dict[str, str]]] = field(default_factory=lambda: ["synapse-bmz developers"])
    license: str = "MIT"
    cite: List[Dict[str, str]] = field(default_factory=list)
    tags: List[str] = field(default_factory=list)
    card_sections: Dict[str, str] = field(default_factory=dict)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _architecture_kwargs(model) -> Dict[str, Any]:
    kwargs = getattr(model, "init_kwargs", None)
    if kwargs is None:
        raise ValueError(
            "model needs an `init_kwargs` dict (the constructor arguments) so that "
            "consumers can rebuild it from the architecture source"
        )
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items()}


def normalise_like_rdf(x: np.ndarray, eps: float = RDF_EPS) -> np.ndarray:
    """The RDF's preprocessing, ``(x - mean) / (std + eps)`` over the spatial axes.

    `synapse_bmz.normalise.zero_mean_unit_variance` per batch item and
    channel, in float64, as the ``zero_mean_unit_variance`` op the RDF
    declares (``axes`` = the spatial axes).

    Parameters
    ----------
    x : ndarray, shape (B, C, [Z,] Y, X)
        A bioimage.io input tensor, raw intensities.
    eps : float
        The RDF's ``eps`` (default 1e-6).

    Returns
    -------
    ndarray of float32, the shape of `x`
    """
    return zero_mean_unit_variance(x, tuple(range(2, x.ndim)), eps=eps, dtype=np.float64)


def activation_bytes_per_voxel(model, sample: np.ndarray) -> float:
    """Peak forward-pass memory per input voxel, measured with torch's profiler on CPU.

    Allocations and frees are replayed in time order and the running total's
    maximum divided by the input voxels. U-Net memory grows linearly with the
    input, so the runner sizes tiles with this number (times a safety factor).
    """
    import torch
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        model(torch.from_numpy(sample))
    events = sorted((e.time_range.start, e.self_cpu_memory_usage)
                    for e in prof.events() if e.self_cpu_memory_usage)
    current = peak = 0
    for _, used in events:
        current += used
        peak = max(peak, current)
    return peak / float(np.prod(sample.shape))


def build_package(
    model,
    sample_input: np.ndarray,
    out_dir: Path,
    info: PackageInfo,
    config: SynapseBmzConfig,
    *,
    min_shape: Sequence[int],
    step: Sequence[int],
    train_yaml: Optional[Path] = None,
    decimal_tolerance: float = 1e-4,
    measure_halo: bool = True,
) -> Path:
    """Write a bioimage.io package folder for ``model`` and check it loads.

    Parameters
    ----------
    model : torch.nn.Module
        Network with an ``init_kwargs`` attribute; its class must live in a
        module that imports only torch (the file is shipped as architecture).
    sample_input : ndarray, shape (1, 1, [Z,] Y, X)
        Test input as a consumer passes it (before the RDF's preprocessing);
        the test output is the model's output after zero-mean/unit-variance
        normalisation, exactly what `bioimageio test` reproduces.
    out_dir : Path
        Package folder; replaced atomically.
    info : PackageInfo
    config : SynapseBmzConfig
        Written to ``config.synapse_bmz``; its ``activation_bytes_per_voxel``
        is measured here.
    min_shape, step : sequence of int
        ``ParameterizedSize`` per spatial axis: valid sizes are ``min + n * step``.
    train_yaml : Path, optional
        Training configuration copied into the package as ``train.yaml``.
    decimal_tolerance : float
        Absolute tolerance recorded for reproducing the test output.
    measure_halo : bool
        Replace ``config.halo`` by the measured minimum halo (and record the
        theoretical ``receptive_field``), `synapse_bmz.packaging.halo`: tiles
        cut with it reproduce the untiled prediction of the test input within
        the RDF's reproducibility tolerance. Output axes declare the largest
        halo the spec allows for ``min_shape`` (``min - 2 * halo >= 1``).

    Returns
    -------
    Path
        ``out_dir / "rdf.yaml"``.
    """
    import torch

    model = model.eval().cpu()
    sample_input = np.ascontiguousarray(sample_input, dtype=np.float32)
    normalised = normalise_like_rdf(sample_input)
    ndim = sample_input.ndim - 2
    spatial = "zyx"[-ndim:]
    if len(config.voxel_size_nm) != ndim or len(config.halo) != ndim:
        raise ValueError(f"config.voxel_size_nm and halo need {ndim} entries ({spatial})")

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        with torch.no_grad():
            test_output = model(torch.from_numpy(normalised)).numpy()
        np.save(work / "test_input.npy", sample_input)
        np.save(work / "test_output.npy", test_output)

        def predict(x):
            with torch.no_grad():
                return model(torch.from_numpy(x)).numpy()

        write_sample_tensors(work, sample_input, predict, min_shape, step, test_output.shape[1])

        arch_src = Path(inspect.getsourcefile(type(model)))
        shutil.copy(arch_src, work / arch_src.name)
        torch.save(model.state_dict(), work / "weights.state_dict.pt")
        traced = torch.jit.trace(model, torch.from_numpy(normalised))
        traced.save(str(work / "weights.torchscript.pt"))
        _export_onnx(model, normalised, work / "weights.onnx", ndim)

        config = config.model_copy(
            update={"activation_bytes_per_voxel": round(activation_bytes_per_voxel(model, normalised), 1)}
        )
        write_cover(work / "cover.png", sample_input[0, 0], test_output[0])
        if train_yaml is not None:
            shutil.copy(train_yaml, work / "train.yaml")
        cites = package_cites(info.cite, type(model).__name__, ndim)
        write_model_card(work / "README.md", info, config, test_output.shape[1], cites=cites)

        def write_rdf(cfg):
            rdf = _rdf_dict(
                info, cfg, ndim, spatial, min_shape, step, test_output.shape[1],
                arch_file=arch_src.name, arch_callable=type(model).__name__,
                arch_kwargs=_architecture_kwargs(model), torch_version=OLDEST_TESTED_TORCH,
                tolerance=decimal_tolerance, files=work,
            )
            (work / "rdf.yaml").write_text(yaml.safe_dump(rdf, sort_keys=False))

        write_rdf(config)
        if measure_halo:
            # the runner loads the package just written, with the halo given, and measures the real one
            config = _with_measured_halo(work / "rdf.yaml", config, sample_input[0, 0])
            write_model_card(work / "README.md", info, config, test_output.shape[1], cites=cites)
            write_rdf(config)
        _validate(work / "rdf.yaml")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        work.rename(out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out_dir / "rdf.yaml"


def _with_measured_halo(rdf_path: Path, config: SynapseBmzConfig, image: np.ndarray) -> SynapseBmzConfig:
    """``config`` with the halo measured on ``image`` through the runner (RDF's tolerance)."""
    from .halo import measure_halo

    m = measure_halo(rdf_path, image)
    return config.model_copy(update={
        "halo": [int(h) for h in m.halo],
        "receptive_field": [int(r) for r in m.receptive_field] if m.receptive_field is not None else None})


def _export_onnx(model, sample_input: np.ndarray, path: Path, ndim: int) -> None:
    import warnings

    import torch

    dyn = {0: "batch", **{2 + i: f"s{i}" for i in range(ndim)}}
    with warnings.catch_warnings():
        # the TorchScript-based exporter is the one that writes opset 17 as a single file
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model, (torch.from_numpy(sample_input),), str(path),
            opset_version=ONNX_OPSET, dynamo=False,
            input_names=[INPUT_ID], output_names=[OUTPUT_ID],
            dynamic_axes={INPUT_ID: dyn, OUTPUT_ID: dyn},
        )


def _rdf_dict(info, config, ndim, spatial, min_shape, step, n_out, *, arch_file,
              arch_callable, arch_kwargs, torch_version, tolerance, files: Path) -> dict:
    def sha(name):
        return _sha256(files / name)

    in_axes: List[dict] = [{"type": "batch"}, {"type": "channel", "channel_names": ["raw"]}]
    out_axes: List[dict] = [{"type": "batch"}, {"type": "channel", "channel_names": list(config.channels)}]
    from .halo import UNET_CALLABLES, spec_output_halo, unet_context

    div = unet_context(arch_kwargs).divisibility if arch_callable in UNET_CALLABLES else (1,) * ndim
    for i, ax in enumerate(spatial):
        halo = spec_output_halo(config.halo[i], min_shape[i], div[i])
        scale = float(config.voxel_size_nm[i])
        in_axes.append({"type": "space", "id": ax, "unit": "nanometer", "scale": scale,
                        "size": {"min": int(min_shape[i]), "step": int(step[i])}})
        out_axes.append({"type": "space", "id": ax, "unit": "nanometer", "scale": scale,
                         "size": {"tensor_id": INPUT_ID, "axis_id": ax},
                         **({"halo": halo} if halo else {})})
    if len(config.channels) != n_out:
        raise ValueError(f"config.channels names {len(config.channels)} channels, model outputs {n_out}")
    return {
        "format_version": RDF_FORMAT_VERSION,
        "type": "model",
        "name": info.name,
        "description": info.description,
        **upload_fields(info.name, info.authors, info.cite, arch_callable, ndim),
        "license": info.license,
        "tags": sorted(set(info.tags + ["electron-microscopy", "synapse-bmz", f"{ndim}d", config.task])),
        "documentation": "README.md",
        "covers": ["cover.png"],
        "inputs": [{
            "id": INPUT_ID,
            "description": "EM image, normalised to zero mean and unit variance",
            "axes": in_axes,
            "test_tensor": {"source": "test_input.npy", "sha256": sha("test_input.npy")},
            **sample_tensor_entry(files, "input"),
            "data": {"type": "float32"},
            "preprocessing": [
                {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}},
                {"id": "zero_mean_unit_variance", "kwargs": {"axes": list(spatial), "eps": RDF_EPS}},
            ],
        }],
        "outputs": [{
            "id": OUTPUT_ID,
            "description": "per-channel probabilities: " + ", ".join(config.channels),
            "axes": out_axes,
            "test_tensor": {"source": "test_output.npy", "sha256": sha("test_output.npy")},
            **sample_tensor_entry(files, "output"),
            "data": {"type": "float32", "range": [0.0, 1.0]},
        }],
        "weights": {
            "pytorch_state_dict": {
                "source": "weights.state_dict.pt", "sha256": sha("weights.state_dict.pt"),
                "architecture": {"source": arch_file, "sha256": sha(arch_file),
                                 "callable": arch_callable, "kwargs": arch_kwargs},
                "pytorch_version": torch_version,
            },
            "torchscript": {
                "source": "weights.torchscript.pt", "sha256": sha("weights.torchscript.pt"),
                "pytorch_version": torch_version, "parent": "pytorch_state_dict",
            },
            "onnx": {
                "source": "weights.onnx", "sha256": sha("weights.onnx"),
                "opset_version": ONNX_OPSET, "parent": "pytorch_state_dict",
            },
        },
        "attachments": [{"source": f, "sha256": sha(f)} for f in ("train.yaml",) if (files / f).exists()],
        "config": {
            "bioimageio": {"reproducibility_tolerance": [
                {"absolute_tolerance": tolerance, "relative_tolerance": 1e-3,
                 "mismatched_elements_per_million": 100}]},
            "synapse_bmz": config.model_dump(mode="json"),
        },
    }


def sample_tensor_entry(files: Path, kind: str) -> Dict[str, Dict[str, str]]:
    """``{"sample_tensor": {source, sha256}}`` for the input or output sample in `files`, or ``{}``."""
    names = ([SAMPLE_INPUT_2D, SAMPLE_INPUT_3D] if kind == "input" else [SAMPLE_OUTPUT])
    for name in names:
        if (Path(files) / name).is_file():
            return {"sample_tensor": {"source": name, "sha256": _sha256(Path(files) / name)}}
    return {}


def _validate(rdf_path: Path) -> None:
    """Fail the build unless the current bioimageio.spec accepts the RDF."""
    from bioimageio.spec import ValidationContext, load_description

    # "latest" too: newer spec releases add checks (e.g. min shape > 2 x halo) that consumers run
    for version in ("discover", "latest"):
        with ValidationContext(perform_io_checks=True):
            descr = load_description(rdf_path, format_version=version)
        if not hasattr(descr, "weights"):
            raise ValueError(f"{rdf_path}: generated RDF is invalid: {descr.get_reason()}")
