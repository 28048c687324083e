"""The ``synapse-bmz models`` table."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

from ..errors import ModelError


def model_summary(name: str, rdf) -> dict:
    """A package in JSON terms: name, task, axes, voxel size (nm, list), weight formats, channels,
    default test-time augmentation.

    An invalid package gets ``task: "INVALID"`` and the one-line reason in ``error``.
    """
    from .registry import load_model

    try:
        m = load_model(rdf)
    except ModelError as e:
        return {"name": name, "task": "INVALID", "axes": "", "voxel_size_nm": None, "weight_formats": [],
                "channels": [], "test_time_augmentation": None, "error": str(e)}
    cfg = m.config
    return {
        "name": name,
        "task": cfg.task if cfg else "(prediction only)",
        "axes": "".join(str(a.id)[0] for a in m.descr.inputs[0].axes),
        "voxel_size_nm": [float(v) for v in cfg.voxel_size_nm] if cfg else None,
        "weight_formats": sorted(m.weights_sha256),
        "channels": list(cfg.channels) if cfg else [],
        "test_time_augmentation": cfg.test_time_augmentation if cfg else "none",
        "error": None,
    }


def _channels_text(channels: List[str], shown: int = 6) -> str:
    """The channel names, or for many (a feature extractor's) the first and last with the count."""
    if len(channels) <= shown:
        return ", ".join(channels)
    return f"{channels[0]} ... {channels[-1]} ({len(channels)} channels)"


def models_rows(packages: Optional[Dict[str, Path]] = None) -> List[dict]:
    """One row of strings per package (default: every installed package) for the table."""
    from .registry import available_packages

    rows = []
    for name, rdf in (available_packages() if packages is None else packages).items():
        s = model_summary(name, rdf)
        rows.append({
            "name": name, "task": s["task"], "axes": s["axes"],
            "voxel_size_nm": " x ".join(f"{v:g}" for v in s["voxel_size_nm"]) if s["voxel_size_nm"] else
            ("" if s["error"] else "?"),
            "weights": ", ".join(s["weight_formats"]),
            "tta": s["test_time_augmentation"] or "",
            "channels": s["error"][:60] if s["error"] else _channels_text(s["channels"]),
        })
    return rows


def models_table() -> str:
    """Plain-text table of `models_rows` (fixed-width columns)."""
    rows = models_rows()
    cols = ["name", "task", "axes", "voxel_size_nm", "weights", "tta", "channels"]
    if not rows:
        from .registry import model_dirs

        searched = ", ".join(str(d) for d in model_dirs()) or "no package folder exists"
        return ("no model packages found (searched: " + searched + "); set SYNAPSE_BMZ_MODEL_DIR to folders "
                "of packages, or reinstall synapse-bmz (its wheel ships them as `synapse_bmz_models`)")
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    line = lambda r: "  ".join(str(r[c]).ljust(widths[c]) for c in cols).rstrip()  # noqa: E731
    return "\n".join([line({c: c for c in cols}), line({c: "-" * widths[c] for c in cols})] + [line(r) for r in rows])
