"""Consumer contracts of a package: what ilastik, deepImageJ, BioEngine and
bioimageio.core need to load it. Each check returns a list of problems
(empty = passes), so tests and ``synapse-bmz package test`` share them."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import yaml

from ..errors import ModelError
from ..zoo.registry import one_line, read_rdf, resolve_package, sha256_file
from .build import normalise_like_rdf

MAX_ONNX_OPSET = 17
# aten operators that deepImageJ's PyTorch engines (1.13.1 .. 2.0.0) execute
DEEPIMAGEJ_TORCHSCRIPT_OPS = {
    "aten::_convolution", "aten::conv2d", "aten::conv3d", "aten::batch_norm",
    "aten::relu", "aten::relu_", "aten::max_pool2d", "aten::max_pool3d",
    "aten::conv_transpose2d", "aten::conv_transpose3d", "aten::cat", "aten::sigmoid",
    "prim::Constant", "prim::ListConstruct", "prim::GetAttr", "prim::CallMethod",
    "prim::TupleConstruct", "prim::TupleUnpack", "prim::NumToTensor", "aten::size",
    "aten::Int", "aten::add", "aten::add_",
    # global average pooling of feature extractors (vgg3d_features); a core op in PyTorch 1.13
    "aten::mean",
}


def core_test_all_weight_formats(source, warnings: Optional[List[str]] = None) -> Dict[str, str]:
    """bioimageio.core's ``test_model`` for every weight format: format -> status.

    The status is ``passed``, or the summary's status followed by the first
    reason on one line (``failed: weights.onnx: ...``). A list passed as
    `warnings` receives the summaries' warnings (severity WARNING or ALERT,
    not INFO), ``<loc>: <message>`` on one line each, once each.

    Raises
    ------
    ModelError
        Before any test runs, naming the file: the RDF is not YAML or not a
        model, has no ``weights``, or a file it lists (weights, architecture,
        test tensors) is missing or differs from its sha256.
    """
    from bioimageio.core import test_model

    rdf = resolve_package(source)
    raw = read_rdf(rdf)
    if not isinstance(raw.get("weights"), dict) or not raw["weights"]:
        raise ModelError(f"{rdf}: the RDF lists no `weights`")
    problems = integrity_problems(rdf, raw)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ModelError(problems[0] + more)
    statuses = {}
    for fmt in raw["weights"]:
        summary = test_model(rdf, weight_format=fmt)
        statuses[fmt] = summary_status(summary)
        if warnings is not None:
            warnings.extend(w for w in summary_warnings(summary) if w not in warnings)
    return statuses


def summary_warnings(summary) -> List[str]:
    """Warnings of a validation summary at severity WARNING (30) or above, one line each."""
    out = []
    for detail in getattr(summary, "details", []):
        for w in getattr(detail, "warnings", []) or []:
            if getattr(w, "severity", 30) >= 30:
                loc = ".".join(str(x) for x in getattr(w, "loc", ()) if x != "")
                out.append(one_line(f"{loc}: {w.msg}" if loc else str(w.msg), 300))
    return out


def upload_problems(rdf_path: Path) -> List[str]:
    """What bioimage.io asks of an uploaded RDF that ours must carry (`metadata`): id, version,
    git_repo, authors with affiliation, a cite with a DOI besides the project's URL, a sample
    tensor per input and output, and the oldest tested PyTorch as ``pytorch_version``."""
    from .metadata import OLDEST_TESTED_TORCH, PROJECT_URL

    rdf = yaml.safe_load(Path(rdf_path).read_text())
    base = Path(rdf_path).parent
    problems = [f"no {k}" for k in ("id", "version") if not rdf.get(k)]
    if rdf.get("git_repo") != PROJECT_URL:
        problems.append(f"git_repo is {rdf.get('git_repo')!r}, not {PROJECT_URL!r}")
    authors = rdf.get("authors") or []
    if not authors or not all(isinstance(a, dict) and a.get("affiliation") for a in authors):
        problems.append("an author without affiliation")
    cites = [c for c in rdf.get("cite") or [] if isinstance(c, dict)]
    if not any(c.get("doi") for c in cites):
        problems.append("no cite entry with a doi")
    if any(str(c.get("url", "")).rstrip("/") == "https://bioimage.io" for c in cites):
        problems.append("a cite entry is the bare bioimage.io website")
    for t in (rdf.get("inputs") or []) + (rdf.get("outputs") or []):
        st = t.get("sample_tensor")
        if not (isinstance(st, dict) and st.get("sha256") and (base / str(st.get("source"))).is_file()):
            problems.append(f"tensor {t.get('id')} has no sample_tensor file")
    for fmt in ("pytorch_state_dict", "torchscript"):
        w = (rdf.get("weights") or {}).get(fmt)
        if isinstance(w, dict) and str(w.get("pytorch_version")) != OLDEST_TESTED_TORCH:
            problems.append(f"{fmt} declares pytorch_version {w.get('pytorch_version')}, "
                            f"not the oldest tested {OLDEST_TESTED_TORCH}")
    return problems


def summary_status(summary) -> str:
    """``passed``, or ``<status>: <first error or failed check>`` on one line."""
    status = str(summary.status)
    if status == "passed":
        return status
    for detail in getattr(summary, "details", []):
        for err in getattr(detail, "errors", []) or []:
            loc = ".".join(str(x) for x in getattr(err, "loc", ()) if x != "")
            msg = str(err.msg).replace("\\|", "|")  # the summary escapes pipes for markdown
            return f"{status}: {one_line(f'{loc}: {msg}' if loc else msg, 300)}"
    for detail in getattr(summary, "details", []):
        if str(getattr(detail, "status", "")) == "failed":
            return f"{status}: {one_line(detail.name, 300)}"
    return status


def integrity_problems(rdf_path: Path, raw: dict) -> List[str]:
    """Local files the RDF lists that are missing or whose sha256 differs, one line each
    starting with the file. Remote sources (URLs) are left to bioimageio."""
    base = Path(rdf_path).parent
    problems = []
    for name, entry in _file_entries(raw):
        source, expected = entry.get("source"), entry.get("sha256")
        if not isinstance(source, str) or "://" in source:
            continue
        path = base / source
        if not path.is_file():
            problems.append(f"{path}: {name} file listed in {Path(rdf_path).name} is missing")
        elif expected and sha256_file(path) != expected:
            problems.append(f"{path}: sha256 {sha256_file(path)[:12]}... of the {name} does not match "
                            f"{Path(rdf_path).name} ({str(expected)[:12]}...); the file was altered or replaced")
    return problems


def rdf_problems(rdf_path: Path) -> List[str]:
    """Static checks of the RDF text for old spec readers and deepImageJ."""
    rdf = yaml.safe_load(Path(rdf_path).read_text())
    problems = []
    if rdf.get("format_version") != "0.5.10":
        problems.append(f"format_version is {rdf.get('format_version')!r}, not '0.5.10'")
    if not isinstance(rdf.get("documentation"), str):
        problems.append("documentation is not a plain string")
    if not all(isinstance(c, str) for c in rdf.get("covers", [None])):
        problems.append("covers are not plain strings")
    if "github_user" in json.dumps(rdf):
        problems.append("github_user present (triggers network calls in offline containers)")
    if len(rdf.get("inputs", [])) != 1:
        problems.append("need exactly one input tensor")
    for t in rdf.get("inputs", []):
        ids = [a.get("id", a["type"]) for a in t["axes"]]
        if ids[:2] != ["batch", "channel"] or not set(ids[2:]) <= {"z", "y", "x"}:
            problems.append(f"input axes {ids} are not b, c, [z,] y, x")
        for a in t["axes"][2:]:
            size = a.get("size")
            if not (isinstance(size, dict) and size.get("min", 0) > 0 and size.get("step", 0) > 0):
                problems.append(f"input axis {a.get('id')} lacks a ParameterizedSize min/step")
    for t in rdf.get("outputs", []):
        # a feature vector (batch x features) has no spatial axes, hence nothing to tile and no halo
        has_space = any(a["type"] == "space" for a in t["axes"])
        if has_space and not any(a.get("halo") for a in t["axes"] if a["type"] == "space"):
            problems.append(f"output {t['id']} declares no halo")
    base = Path(rdf_path).parent
    for name, entry in _file_entries(rdf):
        if Path(entry["source"]).is_absolute() or ".." in Path(entry["source"]).parts:
            problems.append(f"{name}: source {entry['source']} is not a relative path inside the package")
        elif not entry.get("sha256"):
            problems.append(f"{name}: no sha256")
        elif not (base / entry["source"]).is_file():
            problems.append(f"{name}: {entry['source']} is missing")
        elif sha256_file(base / entry["source"]) != entry["sha256"]:
            problems.append(f"{name}: sha256 mismatch")
    return problems


def _file_entries(rdf: dict):
    """(description, entry with ``source`` and ``sha256``) for every file the RDF lists;
    entries of the wrong shape are skipped (the spec validation reports them)."""
    def dicts(value):
        return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []

    for t in dicts(rdf.get("inputs")) + dicts(rdf.get("outputs")):
        if isinstance(t.get("test_tensor"), dict):
            yield f"{t.get('id', '?')} test tensor", t["test_tensor"]
        if isinstance(t.get("sample_tensor"), dict):
            yield f"{t.get('id', '?')} sample tensor", t["sample_tensor"]
    weights = rdf.get("weights") if isinstance(rdf.get("weights"), dict) else {}
    for fmt, w in weights.items():
        if not isinstance(w, dict):
            continue
        yield f"{fmt} weights", w
        if isinstance(w.get("architecture"), dict) and "source" in w["architecture"]:
            yield f"{fmt} architecture", w["architecture"]
    for a in dicts(rdf.get("attachments")):
        yield "attachment", a


def torchscript_problems(rdf_path: Path) -> List[str]:
    """Load the torchscript in a fresh interpreter that cannot import synapse_bmz,
    run the test input, and list operators deepImageJ's engines lack."""
    rdf = yaml.safe_load(Path(rdf_path).read_text())
    base = Path(rdf_path).parent
    ts = base / rdf["weights"]["torchscript"]["source"]
    script = (
        "import sys, json; sys.modules['synapse_bmz'] = None\n"
        "import numpy as np, torch\n"
        f"m = torch.jit.load({str(ts)!r}, map_location='cpu')\n"
        f"x = np.load({str(base / rdf['inputs'][0]['test_tensor']['source'])!r}).astype(np.float64)\n"
        "ax = tuple(range(2, x.ndim))\n"
        "x = torch.from_numpy(((x - x.mean(ax, keepdims=True)) / (x.std(ax, keepdims=True) + 1e-6)).astype(np.float32))\n"
        "y = m(x).detach().numpy()\n"
        f"ref = np.load({str(base / rdf['outputs'][0]['test_tensor']['source'])!r})\n"
        "ops = sorted({n.kind() for n in m.inlined_graph.nodes()})\n"
        "print(json.dumps({'max_abs_diff': float(np.abs(y - ref).max()), 'ops': ops}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=base)
    if proc.returncode != 0:
        return [f"torch.jit.load failed in a fresh process: {proc.stderr.strip().splitlines()[-1:]}"]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    problems = [f"operator {op} is not executed by deepImageJ's PyTorch 1.13 engine"
                for op in res["ops"] if op not in DEEPIMAGEJ_TORCHSCRIPT_OPS]
    if res["max_abs_diff"] > 1e-4:
        problems.append(f"torchscript output differs from the test output by {res['max_abs_diff']:.2e}")
    return problems


def onnx_problems(rdf_path: Path) -> List[str]:
    """ONNX is one file (no external data), opset <= 17, and onnxruntime
    reproduces the test output within the RDF's tolerance."""
    import onnx
    import onnxruntime as ort

    rdf = yaml.safe_load(Path(rdf_path).read_text())
    base = Path(rdf_path).parent
    path = base / rdf["weights"]["onnx"]["source"]
    problems = []
    model = onnx.load(str(path), load_external_data=False)
    if any(init.data_location == onnx.TensorProto.EXTERNAL for init in model.graph.initializer):
        problems.append("ONNX uses external data files")
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset > MAX_ONNX_OPSET:
        problems.append(f"ONNX opset {opset} > {MAX_ONNX_OPSET} (deepImageJ's ONNX engine)")
    x = normalise_like_rdf(np.load(base / rdf["inputs"][0]["test_tensor"]["source"]))
    ref = np.load(base / rdf["outputs"][0]["test_tensor"]["source"])
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    y = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    tol = rdf["config"]["bioimageio"]["reproducibility_tolerance"][0]
    bad = ~np.isclose(y, ref, atol=tol["absolute_tolerance"], rtol=tol["relative_tolerance"])
    if bad.sum() / bad.size * 1e6 > tol["mismatched_elements_per_million"]:
        problems.append(f"onnxruntime output mismatches in {int(bad.sum())} elements (max diff {np.abs(y - ref).max():.2e})")
    return problems


def zip_package(folder: Path, zip_path: Path) -> Path:
    """Zip a package folder with relative member names only."""
    folder = Path(folder)
    tmp = zip_path.with_name(f".{zip_path.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.iterdir()):
            if f.is_file():
                zf.write(f, arcname=f.name)
    tmp.replace(zip_path)
    return zip_path


def zip_problems(zip_path: Path) -> List[str]:
    with zipfile.ZipFile(zip_path) as zf:
        return [f"absolute or parent path in zip: {n}" for n in zf.namelist()
                if n.startswith("/") or ".." in Path(n).parts or ":" in n]
