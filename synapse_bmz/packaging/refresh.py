"""Repackage from existing weights: rewrite a package's upload metadata without retraining.

`refresh_package` gives an existing package what `build.build_package` writes
today: ``id``, ``version``, ``git_repo``, authors with affiliation, maintainers
(when `metadata.MAINTAINERS` names any), citations with DOIs (the package's own,
its ``train.yaml``'s ``data.citation``, the architecture's papers, the project),
``pytorch_version`` = `metadata.OLDEST_TESTED_TORCH`, and sample tensors computed
with the package's own torchscript. Weights, test tensors, architecture and
attachments are left as they are and keep their sha256; the new files get theirs.
The model card's "Cite" section is rewritten to match.

    python scripts/refresh_package_metadata.py [NAME ...]
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import yaml

from ..errors import ModelError
from .build import _sha256, _validate, sample_tensor_entry
from .card import with_cite_section
from .metadata import OLDEST_TESTED_TORCH, upload_fields
from .samples import SAMPLE_INPUT_2D, SAMPLE_INPUT_3D, SAMPLE_OUTPUT, write_sample_tensors

#: the fields `upload_fields` owns; everything else of the RDF is kept in its order
_UPLOAD_KEYS = ("id", "version", "git_repo", "authors", "maintainers", "cite")
_HEAD_KEYS = ("format_version", "type", "name", "description")


def _train_citation(folder: Path) -> List[Dict[str, str]]:
    path = folder / "train.yaml"
    if not path.is_file():
        return []
    cfg = yaml.safe_load(path.read_text()) or {}
    cite = (cfg.get("data") or {}).get("citation")
    return [dict(cite)] if isinstance(cite, dict) else []


def _weights_problems(rdf_path: Path, raw: dict) -> List[str]:
    """Integrity of what the sample output is computed from (weights, architecture, test tensors)."""
    from .checks import integrity_problems

    kept = {k: raw[k] for k in ("inputs", "outputs", "weights") if k in raw}
    return integrity_problems(rdf_path, kept)


def refresh_package(folder: Path, rehash: Sequence[str] = (), absolute_tolerance: Optional[float] = None) -> Path:
    """Rewrite the upload metadata and sample tensors of the package in `folder` in place.

    Parameters
    ----------
    folder : Path
    rehash : sequence of str
        Attachments edited on purpose (e.g. ``train.yaml`` given a ``data.citation``) whose
        sha256 is recomputed; the others keep theirs, even when the file on disk differs.
    absolute_tolerance : float, optional
        New ``reproducibility_tolerance`` absolute tolerance (the builder's ``decimal_tolerance``),
        for a package whose consumers' float32 normalisation moves outputs by more than the old one.

    Returns
    -------
    Path
        The package's ``rdf.yaml``.

    Raises
    ------
    ModelError
        A weights, architecture or test-tensor file differs from its sha256 (the sample
        output would not be the packaged model's), or the result does not validate.
    """
    import torch

    folder = Path(folder)
    rdf_path = folder / "rdf.yaml"
    raw = yaml.safe_load(rdf_path.read_text())
    problems = _weights_problems(rdf_path, raw)
    if problems:
        raise ModelError(problems[0])
    inp, out = raw["inputs"][0], raw["outputs"][0]
    space = [a for a in inp["axes"] if a["type"] == "space"]
    min_shape = [int(a["size"]["min"]) for a in space]
    step = [int(a["size"]["step"]) for a in space]
    test_input = np.load(folder / inp["test_tensor"]["source"])
    test_output = np.load(folder / out["test_tensor"]["source"])
    n_out = int(test_output.shape[1]) if any(a["type"] == "space" for a in out["axes"]) else 0

    model = torch.jit.load(str(folder / raw["weights"]["torchscript"]["source"]), map_location="cpu").eval()

    def predict(x):
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    for stale in (SAMPLE_INPUT_2D, SAMPLE_INPUT_3D, SAMPLE_OUTPUT):
        (folder / stale).unlink(missing_ok=True)
    write_sample_tensors(folder, test_input, predict, min_shape, step, n_out)

    arch = (raw["weights"].get("pytorch_state_dict") or {}).get("architecture") or {}
    fields = upload_fields(raw["name"], [a for a in raw.get("authors", [])],
                           _train_citation(folder) + list(raw.get("cite", [])), arch.get("callable"), len(space))
    new = {k: raw[k] for k in _HEAD_KEYS if k in raw}
    new.update(fields)
    new.update({k: v for k, v in raw.items() if k not in _HEAD_KEYS and k not in _UPLOAD_KEYS})
    for tensors, kind in ((new["inputs"], "input"), (new["outputs"], "output")):
        t = tensors[0]
        t.pop("sample_tensor", None)
        entry = sample_tensor_entry(folder, kind)
        # sample_tensor right after test_tensor, as the builder writes it
        tensors[0] = {k2: v2 for k, v in t.items()
                      for k2, v2 in ([(k, v)] + (list(entry.items()) if k == "test_tensor" else []))}
    for a in new.get("attachments", []):
        if a.get("source") in rehash:
            a["sha256"] = _sha256(folder / a["source"])
    if absolute_tolerance is not None:
        for tol in new["config"]["bioimageio"]["reproducibility_tolerance"]:
            tol["absolute_tolerance"] = float(absolute_tolerance)
    for fmt in ("pytorch_state_dict", "torchscript"):
        if fmt in new["weights"]:
            new["weights"][fmt]["pytorch_version"] = OLDEST_TESTED_TORCH

    readme = folder / str(new.get("documentation", "README.md"))
    tmp_rdf, tmp_readme = folder / ".rdf.yaml.tmp", folder / ".README.md.tmp"
    tmp_rdf.write_text(yaml.safe_dump(new, sort_keys=False))
    if readme.is_file():
        tmp_readme.write_text(with_cite_section(readme.read_text(), new["cite"]))
        tmp_readme.replace(readme)
    tmp_rdf.replace(rdf_path)
    _validate(rdf_path)
    return rdf_path
