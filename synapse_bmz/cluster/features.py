"""Feature vectors of synapse crops through a VGG3D feature-extractor package."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from ..errors import ModelError, OptionError

__all__ = ["load_extractor", "extract_features", "extract_features_events"]


def load_extractor(source="vgg3d_features", *, extraction: Optional[str] = None, layer_num: Optional[int] = None,
                   pooling: Optional[str] = None, random_weights: bool = False, seed: int = 0):
    """The package's network as a torch module, with its extraction and pooling overridable.

    The weights are read with ``weights_only=True`` (no unpickling of code)
    from the package's ``pytorch_state_dict`` and the architecture file it
    ships; pooling and the extraction layer change no weights, so any choice
    uses the same file.

    Parameters
    ----------
    source : str or Path
        Package name, folder, zip or ``rdf.yaml`` (`synapse_bmz.zoo.registry.resolve_package`).
    extraction : {'standard', 'stage_specific'}, optional
    layer_num : int, optional
    pooling : {'avg', 'max', 'concat_avg_max', 'spp'}, optional
        Default: the package's own.
    random_weights : bool
        Keep the architecture's random initialisation (seeded), for the
        untrained baseline.

    Returns
    -------
    torch.nn.Module (eval mode) and the package's ``voxel_size_nm`` and input shape (z, y, x).
    """
    import torch

    from ..zoo.registry import read_rdf, resolve_package

    rdf_path = resolve_package(source)
    rdf = read_rdf(rdf_path)
    w = (rdf.get("weights") or {}).get("pytorch_state_dict")
    if not w or "architecture" not in w:
        raise ModelError(f"{rdf_path}: no pytorch_state_dict weights with an architecture; not a feature extractor package")
    arch = w["architecture"]
    spec = importlib.util.spec_from_file_location(f"_pkg_{Path(arch['source']).stem}", rdf_path.parent / arch["source"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    kwargs = dict(arch.get("kwargs") or {})
    for k, v in (("extraction", extraction), ("layer_num", layer_num), ("pooling", pooling)):
        if v is not None:
            kwargs[k] = v
    try:
        torch.manual_seed(seed)
        model = getattr(module, arch["callable"])(**kwargs)
    except ValueError as e:
        raise OptionError("--extraction/--layer-num/--pooling", str(e)) from None
    if not random_weights:
        state = torch.load(rdf_path.parent / w["source"], map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    cfg = (rdf.get("config") or {}).get("synapse_bmz") or {}
    axes = [a for a in rdf["inputs"][0]["axes"] if a.get("type") == "space"]
    shape = tuple(int(np.load(rdf_path.parent / rdf["inputs"][0]["test_tensor"]["source"]).shape[2 + i])
                  for i in range(len(axes)))
    return model.eval(), tuple(float(v) for v in cfg.get("voxel_size_nm", [a["scale"] for a in axes])), shape


def extract_features_events(model, crops: np.ndarray, batch_size: int = 4) -> Iterator[tuple]:
    """Generator over batches: yields ``(done, total, features_so_far)``; the last carries all features."""
    import torch

    crops = np.asarray(crops, dtype=np.float32)
    if crops.ndim != 4:
        raise ValueError(f"`crops` must be (N, Z, Y, X), got shape {crops.shape}")
    out = []
    with torch.no_grad():
        for i in range(0, len(crops), batch_size):
            x = crops[i:i + batch_size].astype(np.float64)
            # the RDF's preprocessing: zero mean, unit variance per crop
            ax = (1, 2, 3)
            x = (x - x.mean(ax, keepdims=True)) / (x.std(ax, keepdims=True) + 1e-6)
            out.append(model(torch.from_numpy(x[:, None].astype(np.float32))).numpy())
            yield min(i + batch_size, len(crops)), len(crops), np.concatenate(out)


def extract_features(model, crops: np.ndarray, batch_size: int = 4) -> np.ndarray:
    """Feature matrix (N, F) of crops (N, Z, Y, X), each normalised as the package's RDF does."""
    feats = np.zeros((0, 0), np.float32)
    for _, _, feats in extract_features_events(model, crops, batch_size):
        pass
    return feats
