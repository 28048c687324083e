"""Consumer contracts of the packages we build (and of the shipped ones)."""

import shutil
import zipfile

import pytest
import yaml

from synapse_bmz.errors import ModelError
from synapse_bmz.packaging.checks import (
    onnx_problems, rdf_problems, core_test_all_weight_formats, torchscript_problems, zip_package, zip_problems,
)
from synapse_bmz.zoo.registry import available_packages, load_model, resolve_package

SHIPPED = sorted(available_packages())


def test_core_test_passes_for_every_weight_format(tiny_package_2d):
    assert core_test_all_weight_formats(tiny_package_2d) == {
        "pytorch_state_dict": "passed", "torchscript": "passed", "onnx": "passed"}


def test_3d_package_passes_core_test(tiny_package_3d):
    assert set(core_test_all_weight_formats(tiny_package_3d).values()) == {"passed"}


@pytest.mark.parametrize("check", [rdf_problems, torchscript_problems, onnx_problems])
def test_consumer_contracts_of_built_package(tiny_package_2d, check):
    assert check(tiny_package_2d / "rdf.yaml") == []


#: The VGG3D architecture is fixed by SynapseClusterEM (channels 24-48-96-192, ~2.0 M parameters):
#: 8 MB per float32 weight format, so its three formats cannot fit the 15 MB every other package keeps.
SIZE_EXCEPTIONS_BYTES = {"vgg3d_features": 28e6}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_packages_meet_consumer_contracts(name):
    rdf = resolve_package(name)
    assert rdf_problems(rdf) == []
    assert torchscript_problems(rdf) == []
    assert onnx_problems(rdf) == []
    assert set(core_test_all_weight_formats(rdf).values()) == {"passed"}
    size = sum(f.stat().st_size for f in rdf.parent.iterdir())
    limit = SIZE_EXCEPTIONS_BYTES.get(name, 15e6)
    assert size < limit, f"{name} is {size / 1e6:.1f} MB; keep packages under {limit / 1e6:.0f} MB"


def test_rdf_check_catches_bad_fields(tiny_package_2d, tmp_path):
    pkg = tmp_path / "pkg"
    shutil.copytree(tiny_package_2d, pkg)
    rdf = yaml.safe_load((pkg / "rdf.yaml").read_text())
    rdf["format_version"] = "0.5.12"
    rdf["covers"] = [{"source": "cover.png"}]
    rdf["authors"][0]["github_user"] = "someone"
    rdf["weights"]["onnx"]["sha256"] = "0" * 64
    (pkg / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    problems = " ".join(rdf_problems(pkg / "rdf.yaml"))
    for words in ("format_version", "covers", "github_user", "sha256 mismatch"):
        assert words in problems


def test_zip_has_relative_names_and_loads(tiny_package_2d, tmp_path):
    z = zip_package(tiny_package_2d, tmp_path / "tiny.zip")
    assert zip_problems(z) == []
    m = load_model(z)
    assert m.config is not None and m.config.task == "vesicles"


def test_zip_with_path_traversal_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNAPSE_BMZ_CACHE", str(tmp_path / "cache"))
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("../../escaped.txt", "x")
        zf.writestr("rdf.yaml", "type: model")
    with pytest.raises(ModelError, match="unsafe path"):
        load_model(z)
    assert not (tmp_path / "escaped.txt").exists()


def test_failed_extractions_do_not_grow_the_package_cache(tmp_path, monkeypatch):
    """Every failed load of a broken zip used to leave a `.tmp-<pid>` tree in the cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("SYNAPSE_BMZ_CACHE", str(cache))
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("rdf.yaml", "type: model")
        zf.writestr("../escaped.txt", "x")
    stale = cache / "packages" / "0123456789abcdef.tmp-999999999"  # a killed extraction's leftover
    stale.mkdir(parents=True)
    for _ in range(3):
        with pytest.raises(ModelError):
            load_model(z)
    assert list((cache / "packages").iterdir()) == []


def test_altered_weights_are_refused(tiny_package_2d, tmp_path):
    pkg = tmp_path / "pkg"
    shutil.copytree(tiny_package_2d, pkg)
    with open(pkg / "weights.torchscript.pt", "ab") as f:
        f.write(b"tampered")
    with pytest.raises(ModelError, match="sha256"):
        load_model(pkg)


def test_malformed_config_section_is_a_clear_error(tiny_package_2d, tmp_path):
    pkg = tmp_path / "pkg"
    shutil.copytree(tiny_package_2d, pkg)
    rdf = yaml.safe_load((pkg / "rdf.yaml").read_text())
    rdf["config"]["synapse_bmz"]["voxel_size_nm"] = [-1, 5]
    (pkg / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    with pytest.raises(ModelError, match=r"malformed config.synapse_bmz: voxel_size_nm"):
        load_model(pkg)


def test_package_without_our_config_still_predicts(tiny_package_2d, em_stack, tmp_path):
    from synapse_bmz.runner.run import RunOptions, run

    pkg = tmp_path / "plain"
    shutil.copytree(tiny_package_2d, pkg)
    rdf = yaml.safe_load((pkg / "rdf.yaml").read_text())
    del rdf["config"]["synapse_bmz"]
    (pkg / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    assert load_model(pkg).config is None
    res = run(pkg, [str(em_stack)], tmp_path / "out", RunOptions(progress=False))[0]
    assert res.prediction.exists() and res.labels is None
