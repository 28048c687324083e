"""The ``synapse-bmz models`` table."""

from __future__ import annotations

from typing import List

from ..errors import ModelError


def models_rows() -> List[dict]:
    """One row per installed package: name, task, axes, voxel size, weight formats, channels."""
    from .registry import available_packages, load_model

    rows = []
    for name, rdf in available_packages().items():
        try:
            m = load_model(rdf)
        except ModelError as e:
            rows.append({"name": name, "task": "INVALID", "axes": "", "voxel_size_nm": "",
                         "weights": "", "channels": str(e)[:60]})
            continue
        axes = "".join(str(a.id)[0] for a in m.descr.inputs[0].axes)
        cfg = m.config
        rows.append({
            "name": name,
            "task": cfg.task if cfg else "(prediction only)",
            "axes": axes,
            "voxel_size_nm": " x ".join(f"{v:g}" for v in cfg.voxel_size_nm) if cfg else "?",
            "weights": ", ".join(sorted(m.weights_sha256)),
            "channels": ", ".join(cfg.channels) if cfg else "",
        })
    return rows


def models_table() -> str:
    """Plain-text table of `models_rows` (fixed-width columns)."""
    rows = models_rows()
    cols = ["name", "task", "axes", "voxel_size_nm", "weights", "channels"]
    if not rows:
        from .registry import model_dirs

        searched = ", ".join(str(d) for d in model_dirs()) or "no package folder exists"
        return ("no model packages found (searched: " + searched + "); set SYNAPSE_BMZ_MODEL_DIR to folders "
                "of packages, or reinstall synapse-bmz (its wheel ships them as `synapse_bmz_models`)")
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    line = lambda r: "  ".join(str(r[c]).ljust(widths[c]) for c in cols).rstrip()  # noqa: E731
    return "\n".join([line({c: c for c in cols}), line({c: "-" * widths[c] for c in cols})] + [line(r) for r in rows])
