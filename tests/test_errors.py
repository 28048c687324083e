"""User errors stay one line: the real CLI in a subprocess exits 2, prints one
line on stderr naming the file or option, and never a traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tifffile

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "synapse_bmz" / "sample_data" / "epfl_vesicles_crop.tif"
VESICLES_2D = REPO / "model_packages" / "vesicles_2d"


def _cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "synapse_bmz", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def _assert_one_line_error(proc: subprocess.CompletedProcess, *named: str) -> str:
    """Exit 2, no traceback, exactly one stderr line that contains every string in ``named``."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert len(lines) == 1, proc.stderr
    for text in named:
        assert text in lines[0], (text, lines[0])
    return lines[0]


def _package_with_rdf(tmp_path: Path, text: str, name: str = "broken") -> Path:
    """A folder with the real vesicles_2d files but ``rdf.yaml`` replaced by ``text``."""
    pkg = tmp_path / name
    shutil.copytree(VESICLES_2D, pkg)
    (pkg / "rdf.yaml").write_text(text)
    return pkg


BAD_RDFS = {
    "invalid_yaml": ("format_version: 0.5.10\ntype: model\n  name: [oops\n", "not valid YAML"),
    "not_a_mapping": ("- a\n- list\n", "not a bioimage.io model RDF"),
    "not_a_model": ("hello: world\n", "not a bioimage.io model RDF"),
    "other_type": ("format_version: 0.3.0\ntype: dataset\nname: some data\n", "'dataset'"),
}


# --- malformed rdf.yaml -----------------------------------------------------

needs_vesicles_2d = pytest.mark.skipif(not (VESICLES_2D / "rdf.yaml").is_file(), reason="vesicles_2d package not in the checkout")


@needs_vesicles_2d
@pytest.mark.parametrize("case", sorted(BAD_RDFS))
def test_package_test_malformed_rdf(tmp_path, case):
    text, expected = BAD_RDFS[case]
    pkg = _package_with_rdf(tmp_path, text)
    line = _assert_one_line_error(_cli("package", "test", pkg, cwd=tmp_path), "rdf.yaml", expected)
    if case == "invalid_yaml":
        assert "line 3" in line


@needs_vesicles_2d
@pytest.mark.parametrize("case", ["invalid_yaml", "not_a_model"])
def test_run_malformed_rdf(tmp_path, case):
    text, expected = BAD_RDFS[case]
    pkg = _package_with_rdf(tmp_path, text)
    proc = _cli("run", pkg, SAMPLE, "-o", tmp_path / "out", "--quiet", cwd=tmp_path)
    _assert_one_line_error(proc, "rdf.yaml", expected)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@needs_vesicles_2d
def test_run_rdf_missing_required_field_is_one_line(tmp_path):
    """bioimageio's validation reason spans several lines; the CLI shows one."""
    text = "\n".join(ln for ln in (VESICLES_2D / "rdf.yaml").read_text().splitlines()
                     if not ln.startswith(("name:", "license:")))
    pkg = _package_with_rdf(tmp_path, text)
    _assert_one_line_error(_cli("run", pkg, SAMPLE, "-o", tmp_path / "out", "--quiet", cwd=tmp_path),
                           "rdf.yaml", "not a valid bioimage.io model")


# --- package test on altered weights ------------------------------------------

@needs_vesicles_2d
def test_package_test_altered_weights_names_the_file(tmp_path):
    pkg = tmp_path / "altered"
    shutil.copytree(VESICLES_2D, pkg)
    weights = pkg / "weights.torchscript.pt"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 1
    weights.write_bytes(bytes(data))
    _assert_one_line_error(_cli("package", "test", pkg, cwd=tmp_path), "weights.torchscript.pt", "sha256")


def test_failed_status_carries_the_reason():
    """A failed bioimageio test prints why, on the status line of its format."""
    from synapse_bmz.packaging.checks import summary_status

    err = SimpleNamespace(loc=("weights", "onnx"), msg="Output 'prediction': 12 of 100 elements disagree\n(12.0%)")
    failed = SimpleNamespace(status="failed", details=[
        SimpleNamespace(name="format validation", status="passed", errors=[]),
        SimpleNamespace(name="reproduce test outputs", status="failed", errors=[err]),
    ])
    line = summary_status(failed)
    assert line.startswith("failed: weights.onnx: Output 'prediction': 12 of 100")
    assert "\n" not in line
    no_errors = SimpleNamespace(status="failed", details=[SimpleNamespace(name="run prediction", status="failed", errors=[])])
    assert summary_status(no_errors) == "failed: run prediction"
    assert summary_status(SimpleNamespace(status="passed", details=[])) == "passed"


# --- analyze ------------------------------------------------------------------

@pytest.fixture
def segmentations(tmp_path) -> dict:
    """Vesicle labels, an active-zone mask and a float intensity image, 2D tifs."""
    lab = np.zeros((48, 48), np.uint16)
    lab[5:12, 5:12] = 1
    lab[25:32, 25:32] = 2
    az = np.zeros((48, 48), np.uint8)
    az[40:44, :] = 1
    paths = {"vesicles": tmp_path / "ves.tif", "active_zone": tmp_path / "az.tif", "intensity": tmp_path / "raw.tif"}
    tifffile.imwrite(paths["vesicles"], lab)
    tifffile.imwrite(paths["active_zone"], az)
    tifffile.imwrite(paths["intensity"], np.random.default_rng(0).random((48, 48)).astype(np.float32))
    return paths


def _analyze(segs: dict, tmp_path: Path, *extra, vesicles=None):
    return _cli("analyze", f"vesicles={vesicles or segs['vesicles']}", f"active_zone={segs['active_zone']}",
                "--voxel-size", "5,5", *extra, cwd=tmp_path)


def test_analyze_output_is_an_existing_file(segmentations, tmp_path):
    target = tmp_path / "taken.txt"
    target.write_text("not a folder")
    _assert_one_line_error(_analyze(segmentations, tmp_path, "-o", target), "taken.txt", "-o/--output", "existing file")
    assert target.read_text() == "not a folder"


POOL_RULES = {
    "syntax": ("pools: [\n  - name: x\n", "not valid YAML"),
    "list": ("- docked\n- tethered\n", "top-level `pools:` list"),
    "empty": ("", "top-level `pools:` list"),
    "entry": ("pools:\n  - docked\n", "pools[0]"),
    "limit": ("pools:\n  - name: docked\n    max_distance_nm: {active_zone: far}\n", "must be a number in nm"),
    "structure": ("pools:\n  - name: ribbon_bound\n    max_distance_nm: {ribbon: 10}\n", "'ribbon'"),
}


@pytest.mark.parametrize("case", sorted(POOL_RULES))
def test_analyze_malformed_pool_rules(segmentations, tmp_path, case):
    text, expected = POOL_RULES[case]
    rules = tmp_path / f"rules_{case}.yaml"
    rules.write_text(text)
    out = tmp_path / "out"
    proc = _analyze(segmentations, tmp_path, "-o", out, "--pool-rules", rules)
    _assert_one_line_error(proc, rules.name, "--pool-rules", expected)
    assert not out.exists()


def test_analyze_missing_pool_rules_file(segmentations, tmp_path):
    proc = _analyze(segmentations, tmp_path, "-o", tmp_path / "out", "--pool-rules", tmp_path / "nowhere.yaml")
    _assert_one_line_error(proc, "nowhere.yaml", "--pool-rules", "not found")


def test_analyze_float_image_as_vesicles(segmentations, tmp_path):
    proc = _analyze(segmentations, tmp_path, "-o", tmp_path / "out", vesicles=segmentations["intensity"])
    _assert_one_line_error(proc, "raw.tif", "not a label image", "non-integer dtype float32")


def test_analyze_good_rules_still_run(segmentations, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("pools:\n  - name: near\n    max_distance_nm: {active_zone: 1000}\n")
    proc = _analyze(segmentations, tmp_path, "-o", tmp_path / "out", "--pool-rules", rules)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "vesicles.csv").is_file()
