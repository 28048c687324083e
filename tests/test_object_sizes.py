"""The runner says when the objects it found are far from the package's training sizes (wrong voxel size?)."""

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from synapse_bmz.cli import main
from synapse_bmz.zoo.config import SynapseBmzConfig
from synapse_bmz.zoo.object_sizes import ObjectSizeWarning, expected_radius_nm, object_size_check

REPO = Path(__file__).resolve().parents[1]
CROP = REPO / "synapse_bmz" / "sample_data" / "epfl_vesicles_crop.tif"  # 3 x 384 x 512, 5 nm voxels
CROP_VOXEL_NM = (5.0, 5.0, 5.0)


def _config(task="mitochondria", recipe="mitochondria", **extra):
    return SynapseBmzConfig(task=task, channels=["foreground", "boundary"], voxel_size_nm=[5.0, 5.0],
                            halo=[16, 16], postprocessing={"recipe": recipe, "params": {}}, **extra)


def _table(radii_nm):
    return pd.DataFrame({"radius_equivalent_nm": np.asarray(radii_nm, float)})


def test_median_inside_the_tolerated_range_is_ok():
    # mitochondria default: 60-250 nm, tolerated 30-500 nm
    check = object_size_check(_config(), _table([10.0, 140.0, 160.0, 900.0, 30.0]), (5.0, 5.0))
    assert check["status"] == "ok" and check["message"] is None
    assert check["median_radius_nm"] == 140.0 and check["expected_radius_nm"] == [60.0, 250.0]
    assert check["tolerated_radius_nm"] == [30.0, 500.0]
    # the limits themselves are tolerated
    assert object_size_check(_config(), _table([30.0]), (5.0, 5.0))["status"] == "ok"
    assert object_size_check(_config(), _table([500.0]), (5.0, 5.0))["status"] == "ok"


@pytest.mark.parametrize("radius_nm", [29.0, 501.0])
def test_median_outside_warns_with_the_voxel_size(radius_nm):
    check = object_size_check(_config(), _table([radius_nm] * 3), (1.25, 1.25))
    assert check["status"] == "outside"
    msg = check["message"]
    assert "\n" not in msg
    assert f"median equivalent radius {radius_nm:.1f} nm" in msg and "outside 30-500 nm" in msg
    assert "voxel size 1.25,1.25 nm" in msg and "trained at 5,5 nm" in msg and "--voxel-size" in msg
    # the voxel size that would put the median at sqrt(60 * 250) = 122.5 nm
    expected = round(1.25 * np.sqrt(60.0 * 250.0) / radius_nm, 2)
    assert check["suggested_voxel_size_nm"] == [expected, expected]
    assert f"about {expected:g},{expected:g} nm would put their median mid-range" in msg


def test_expected_range_sources_in_order():
    assert expected_radius_nm(_config())[:2] == (60.0, 250.0)
    # vesicles: from the recipe's vesicle_radius_nm (the run's, else the recipe default 20 nm)
    ves = _config(task="vesicles", recipe="vesicles")
    assert expected_radius_nm(ves, {"vesicle_radius_nm": 30})[:2] == (15.0, 60.0)
    assert expected_radius_nm(ves, {})[:2] == (10.0, 40.0)
    # a declared range wins over both
    declared = _config(task="vesicles", recipe="vesicles", object_radius_nm=[100.0, 200.0])
    assert expected_radius_nm(declared, {"vesicle_radius_nm": 30}) == (100.0, 200.0, "config.synapse_bmz.object_radius_nm")
    # nothing known about compartment sizes: not checked
    comp = _config(task="compartments", recipe="compartments")
    assert expected_radius_nm(comp) is None
    assert object_size_check(comp, _table([1.0]), (5.0, 5.0))["status"] == "unchecked"
    with pytest.raises(ValueError, match="object_radius_nm"):
        _config(object_radius_nm=[200.0, 100.0])


def test_no_objects_is_reported():
    check = object_size_check(_config(), _table([]), (1.25, 1.25))
    assert check["status"] == "no_objects" and check["n_objects"] == 0
    assert check["message"].startswith("found no mitochondria objects")


def _cli_run(capsys, tmp_path, model, voxel_size_nm):
    out = tmp_path / "out"
    code = main(["run", str(model), str(CROP), "-o", str(out), "--voxel-size",
                 ",".join(f"{v:g}" for v in voxel_size_nm), "--quiet"])
    err = capsys.readouterr().err
    warnings_ = [line for line in err.splitlines() if line.startswith("synapse-bmz: warning:")]
    provenance = json.loads((out / "epfl_vesicles_crop" / "provenance.json").read_text())
    return code, warnings_, provenance["object_size_check"]


def test_right_voxel_size_no_warning_wrong_one_warns(capsys, tmp_path):
    """mitochondria_2d on the bundled crop: 5 nm finds mitochondria of training size; labelled 1.25 nm it
    sees the crop 4x too small and finds none, which the run says in one line."""
    code, lines, check = _cli_run(capsys, tmp_path / "right", "mitochondria_2d", CROP_VOXEL_NM)
    assert code == 0 and lines == []
    assert check["status"] == "ok" and check["n_objects"] > 0
    assert 60.0 <= check["median_radius_nm"] <= 250.0

    code, lines, check = _cli_run(capsys, tmp_path / "wrong", "mitochondria_2d", (5.0, 1.25, 1.25))
    assert code == 0
    assert len(lines) == 1 and "found no mitochondria objects" in lines[0] and "5,1.25,1.25 nm" in lines[0]
    assert check["status"] == "no_objects" and check["voxel_size_nm"] == [5.0, 1.25, 1.25]


def test_sizes_outside_the_declared_range_warn(capsys, tmp_path):
    """vesicles_2d on the crop at its true 5 nm finds vesicles of ~30 nm radius (no warning); the same weights
    declaring objects of 100-200 nm make those a size warning, in the CLI, provenance and the API."""
    code, lines, check = _cli_run(capsys, tmp_path / "shipped", "vesicles_2d", CROP_VOXEL_NM)
    assert code == 0 and lines == [] and check["status"] == "ok"
    assert check["source"] == "recipe parameter vesicle_radius_nm" and check["expected_radius_nm"] == [15.0, 60.0]

    pkg = tmp_path / "vesicles_large"
    shutil.copytree(REPO / "model_packages" / "vesicles_2d", pkg)
    rdf = yaml.safe_load((pkg / "rdf.yaml").read_text())
    rdf["config"]["synapse_bmz"]["object_radius_nm"] = [100.0, 200.0]
    (pkg / "rdf.yaml").write_text(yaml.safe_dump(rdf, sort_keys=False))
    code, lines, check = _cli_run(capsys, tmp_path / "declared", pkg, CROP_VOXEL_NM)
    assert code == 0 and check["status"] == "outside" and check["median_radius_nm"] < 50.0
    assert len(lines) == 1 and "outside 50-400 nm" in lines[0]

    from synapse_bmz import api
    from synapse_bmz.runner.run import RunOptions, run

    session = api.load_session(str(pkg), device="cpu")
    result = api.segment(session, api.predict(session, api.FileInput(str(CROP), CROP_VOXEL_NM)))
    assert result.object_size_check["status"] == "outside"
    with pytest.warns(ObjectSizeWarning, match="outside 50-400 nm"):
        (res,) = run(session, [str(CROP)], tmp_path / "api", RunOptions(voxel_size_nm=CROP_VOXEL_NM, progress=False))
    assert res.object_size_check["status"] == "outside"
    with warnings.catch_warnings():
        warnings.simplefilter("error", ObjectSizeWarning)  # the shipped package at the right size: silent
        (res,) = run("vesicles_2d", [str(CROP)], tmp_path / "api_ok", RunOptions(voxel_size_nm=CROP_VOXEL_NM,
                                                                                 progress=False))
    assert res.object_size_check["status"] == "ok"
