"""bioimage.io package of a feature extractor: a 3D crop in, one feature vector (batch x features) out.

The segmentation packages' builder (`build.py`) assumes outputs on the
input's grid (halo, tiles); a feature vector has no spatial axes, so its RDF
is written here, with the same files (torchscript, state dict + architecture,
ONNX opset 17 in one file, test and sample tensors, cover, card, train.yaml),
the same upload metadata (`metadata.upload_fields`) and the same validation
against bioimageio.spec.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import yaml

from ..normalise import RDF_EPS
from .build import ONNX_OPSET, RDF_FORMAT_VERSION, _sha256, _validate, normalise_like_rdf, sample_tensor_entry
from .card import with_cite_section
from .metadata import OLDEST_TESTED_TORCH, upload_fields
from .samples import write_sample_tensors

#: what the feature extractor reproduces: SynapseClusterEM (VGG3D features of synapse crops)
SYNAPSECLUSTEREM = {"text": "Mikaeili A. SynapseClusterEM: A Framework for 3D Synapse Analysis. Max Planck Institute "
                            "for Brain Research (2025)", "url": "https://github.com/alim98/SynapseClusterEM"}

INPUT_ID = "raw"
OUTPUT_ID = "features"


def _export_onnx(model, x: np.ndarray, path: Path) -> None:
    import torch

    dyn_in = {0: "batch", 2: "z", 3: "y", 4: "x"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (torch.from_numpy(x),), str(path), opset_version=ONNX_OPSET, dynamo=False,
                          input_names=[INPUT_ID], output_names=[OUTPUT_ID],
                          dynamic_axes={INPUT_ID: dyn_in, OUTPUT_ID: {0: "batch"}})


def _write_cover(path: Path, crops: np.ndarray) -> None:
    """Central z slices of the test crops side by side (2:1 at most, as covers must be)."""
    from PIL import Image

    from .card import _to_uint8

    tiles = [_to_uint8(c[c.shape[0] // 2]) for c in crops[:2]]
    Image.fromarray(np.concatenate(tiles, axis=1)).save(path)


def build_feature_package(model, sample_input: np.ndarray, out_dir: Path, *, name: str, description: str,
                          voxel_size_nm, card: str, accuracy: Optional[Dict] = None, train_yaml: Optional[Path] = None,
                          min_size: int = 80, step: int = 16, tolerance: float = 1e-4, cover_crops=None) -> Path:
    """Write and validate a feature-extractor package folder (replaced atomically).

    Parameters
    ----------
    model : torch.nn.Module
        With ``init_kwargs``; output (B, F). Its class's module must import only torch.
    sample_input : (1, 1, Z, Y, X) ndarray
        Test input before the RDF's normalisation.
    out_dir : Path
    name, description : str
    voxel_size_nm : (3,) sequence of float
        The crops' voxel size (z, y, x), nm.
    card : str
        Model card (markdown) written as README.md.
    accuracy : dict, optional
        Held-out figures, recorded in ``config.synapse_bmz.accuracy``.
    train_yaml : Path, optional
    min_size, step : int
        Valid input sizes per axis are ``min_size + n * step``.

    Returns
    -------
    Path
        ``out_dir / "rdf.yaml"``.
    """
    import inspect

    import torch

    model = model.eval().cpu()
    x = np.ascontiguousarray(sample_input, dtype=np.float32)
    normalised = normalise_like_rdf(x)
    out_dir = Path(out_dir)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        with torch.no_grad():
            y = model(torch.from_numpy(normalised)).numpy()
        np.save(work / "test_input.npy", x)
        np.save(work / "test_output.npy", y)

        def predict(a):
            with torch.no_grad():
                return model(torch.from_numpy(a)).numpy()

        write_sample_tensors(work, x, predict, [min_size] * 3, [step] * 3, 0)
        arch = Path(inspect.getsourcefile(type(model)))
        shutil.copy(arch, work / arch.name)
        torch.save(model.state_dict(), work / "weights.state_dict.pt")
        torch.jit.trace(model, torch.from_numpy(normalised)).save(str(work / "weights.torchscript.pt"))
        _export_onnx(model, normalised, work / "weights.onnx")
        _write_cover(work / "cover.png", x[:, 0] if cover_crops is None else cover_crops)
        meta = upload_fields(name, None, [SYNAPSECLUSTEREM], type(model).__name__, 3)
        (work / "README.md").write_text(with_cite_section(card, meta["cite"]))
        if train_yaml is not None:
            shutil.copy(train_yaml, work / "train.yaml")
        n_feat = int(y.shape[1])
        kwargs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in model.init_kwargs.items()}
        sha = lambda f: _sha256(work / f)  # noqa: E731
        torch_version = OLDEST_TESTED_TORCH
        rdf = {
            "format_version": RDF_FORMAT_VERSION, "type": "model", "name": name, "description": description,
            **meta,
            "license": "MIT",
            "tags": ["3d", "electron-microscopy", "synapse-bmz", "synapses", "feature-extraction", "vgg3d",
                     "clustering", "simulation"],
            "documentation": "README.md", "covers": ["cover.png"],
            "inputs": [{
                "id": INPUT_ID, "description": "synapse-centred EM crop, normalised to zero mean and unit variance",
                "axes": [{"type": "batch"}, {"type": "channel", "channel_names": ["raw"]}] + [
                    {"type": "space", "id": ax, "unit": "nanometer", "scale": float(v),
                     "size": {"min": int(min_size), "step": int(step)}} for ax, v in zip("zyx", voxel_size_nm)],
                "test_tensor": {"source": "test_input.npy", "sha256": sha("test_input.npy")},
                **sample_tensor_entry(work, "input"),
                "data": {"type": "float32"},
                "preprocessing": [
                    {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}},
                    {"id": "zero_mean_unit_variance", "kwargs": {"axes": ["z", "y", "x"], "eps": RDF_EPS}}],
            }],
            "outputs": [{
                "id": OUTPUT_ID, "description": f"{n_feat} pooled VGG3D features per crop",
                "axes": [{"type": "batch"},
                         {"type": "channel", "channel_names": [f"feature_{i:03d}" for i in range(n_feat)]}],
                "test_tensor": {"source": "test_output.npy", "sha256": sha("test_output.npy")},
                **sample_tensor_entry(work, "output"),
                "data": {"type": "float32"},
            }],
            "weights": {
                "pytorch_state_dict": {
                    "source": "weights.state_dict.pt", "sha256": sha("weights.state_dict.pt"),
                    "architecture": {"source": arch.name, "sha256": sha(arch.name), "callable": type(model).__name__,
                                     "kwargs": kwargs},
                    "pytorch_version": torch_version},
                "torchscript": {"source": "weights.torchscript.pt", "sha256": sha("weights.torchscript.pt"),
                                "pytorch_version": torch_version, "parent": "pytorch_state_dict"},
                "onnx": {"source": "weights.onnx", "sha256": sha("weights.onnx"), "opset_version": ONNX_OPSET,
                         "parent": "pytorch_state_dict"},
            },
            "attachments": [{"source": "train.yaml", "sha256": sha("train.yaml")}] if train_yaml else [],
            "config": {
                "bioimageio": {"reproducibility_tolerance": [
                    {"absolute_tolerance": tolerance, "relative_tolerance": 1e-3, "mismatched_elements_per_million": 100}]},
                "synapse_bmz": {
                    "task": "features", "channels": [f"feature_{i:03d}" for i in range(n_feat)],
                    "voxel_size_nm": [float(v) for v in voxel_size_nm], "tile": [int(s) for s in x.shape[2:]],
                    "halo": [0, 0, 0], "accuracy": accuracy or {}},
            },
        }
        (work / "rdf.yaml").write_text(yaml.safe_dump(rdf, sort_keys=False))
        _validate(work / "rdf.yaml")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        work.rename(out_dir)
        out_dir.chmod(0o755)  # mkdtemp made it private; packages are shared read-only folders
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out_dir / "rdf.yaml"
