"""Test-time augmentation (`synapse_bmz.runner.flips`): one implementation for the runner and the card."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from synapse_bmz import api
from synapse_bmz.errors import ModelError, OptionError
from synapse_bmz.runner.flips import flip_averaged, mirror_axes

REPO = Path(__file__).resolve().parents[1]


def _ramp_predict(batch):
    """A deliberately non-equivariant 'network': channel 0 = input, channel 1 = the x index."""
    b = batch.shape[0]
    x = np.broadcast_to(np.arange(batch.shape[-1], dtype=np.float32), batch.shape)
    return np.stack([batch.astype(np.float32), x + 0 * batch], axis=1).reshape(b, 2, *batch.shape[1:])


def test_mirror_axes_are_the_four_in_plane_mirrors():
    assert mirror_axes(2) == [(), (0,), (1,), (0, 1)]
    assert mirror_axes(3) == [(), (1,), (2,), (1, 2)]  # z is never mirrored (anisotropic stacks)


def test_flip_average_by_hand():
    rng = np.random.default_rng(0)
    batch = rng.random((2, 3, 5)).astype(np.float32)
    out = flip_averaged(_ramp_predict, batch, 2)
    # an equivariant channel comes back unchanged; the x ramp is mirrored in half of the passes:
    # (x + x + (W-1-x) + (W-1-x)) / 4 = (W-1) / 2 everywhere
    np.testing.assert_allclose(out[:, 0], batch, rtol=0, atol=1e-6)
    np.testing.assert_allclose(out[:, 1], np.full((2, 3, 5), 2.0), rtol=0, atol=1e-6)
    plain = flip_averaged(_ramp_predict, batch, 2, "none")
    np.testing.assert_array_equal(plain[:, 1], np.broadcast_to(np.arange(5.0), (2, 3, 5)))
    # 3D: y and x mirrored, z never
    vol = rng.random((1, 4, 3, 6)).astype(np.float32)

    def z_ramp(b):
        return np.broadcast_to(np.arange(4, dtype=np.float32)[:, None, None], b.shape)[:, None].copy()

    np.testing.assert_array_equal(flip_averaged(z_ramp, vol, 3)[0, 0], z_ramp(vol)[0, 0])


def test_unknown_mode_is_a_one_line_option_error():
    with pytest.raises(OptionError, match="'rot90' is not a test-time augmentation; use one of none, flips"):
        flip_averaged(_ramp_predict, np.zeros((1, 4, 4)), 2, "rot90")


@pytest.fixture(scope="module")
def stack():
    from scipy import ndimage as ndi

    rng = np.random.default_rng(3)
    img = ndi.gaussian_filter(rng.normal(size=(2, 96, 112)), (0, 3, 3))
    return ((img - img.min()) / np.ptp(img) * 255).astype(np.uint8)


def test_api_predict_with_flips_is_the_mean_of_mirrored_predictions(tiny_package_2d, stack):
    session = api.load_session(tiny_package_2d, device="cpu")
    assert session.test_time_augmentation == "none"
    vs = (5.0, 5.0, 5.0)
    plain = api.predict(session, stack, vs)
    assert plain.attrs["test_time_augmentation"] == "none"
    tta = api.predict(session, stack, vs, test_time_augmentation="flips")
    assert tta.attrs["test_time_augmentation"] == "flips"
    assert tta.attrs["tile_plan"]["tile"] == [96, 112] or tuple(tta.attrs["tile_plan"]["tile"]) == (96, 112)
    # one tile per section, normalised by the whole stack's statistics: the runner's average is
    # the mean of the four mirrored whole-section passes
    from synapse_bmz.runner.statistics import volume_statistics

    session.set_statistics(volume_statistics(stack, "stack"))
    by_hand = np.mean([np.flip(session.predict(np.ascontiguousarray(np.flip(stack, ax))), [a + 1 for a in ax])
                       for ax in [(), (1,), (2,), (1, 2)]], axis=0).transpose(1, 0, 2, 3)  # (z, c) -> (c, z)
    np.testing.assert_allclose(np.asarray(tta), by_hand, atol=1e-5)
    assert np.abs(np.asarray(tta) - np.asarray(plain)).max() > 1e-3  # the tiny net is not mirror-symmetric
    # tiles with the package's halo still reproduce the untiled prediction with flips
    tiled = api.predict(session, stack, vs, tile=(48, 48), test_time_augmentation="flips")
    assert np.abs(np.asarray(tiled) - np.asarray(tta))[..., 16:-16, 16:-16].max() < 1e-3
    with pytest.raises(OptionError, match="test_time_augmentation"):
        api.predict(session, stack, vs, test_time_augmentation="all")


def _with_tta(package: Path, dest: Path, value) -> Path:
    shutil.copytree(package, dest)
    rdf = yaml.safe_load((dest / "rdf.yaml").read_text())
    rdf["config"]["synapse_bmz"]["test_time_augmentation"] = value
    (dest / "rdf.yaml").write_text(yaml.safe_dump(rdf, sort_keys=False))
    return dest


def test_the_package_default_applies_and_the_cli_overrides_it(tiny_package_2d, tmp_path, em_stack):
    from synapse_bmz.cli import main

    pkg = _with_tta(tiny_package_2d, tmp_path / "pkg", "flips")
    assert api.load_session(pkg, device="cpu").test_time_augmentation == "flips"
    assert main(["run", str(pkg / "rdf.yaml"), str(em_stack), "-o", str(tmp_path / "a"), "--quiet",
                 "--device", "cpu"]) == 0
    assert main(["run", str(pkg / "rdf.yaml"), str(em_stack), "-o", str(tmp_path / "b"), "--quiet",
                 "--device", "cpu", "--tta", "none"]) == 0
    prov_a = json.loads((tmp_path / "a" / "stack" / "provenance.json").read_text())
    prov_b = json.loads((tmp_path / "b" / "stack" / "provenance.json").read_text())
    assert prov_a["test_time_augmentation"] == "flips" and prov_b["test_time_augmentation"] == "none"


def test_cli_refuses_an_unknown_mode(tiny_package_2d, tmp_path, em_stack, capsys):
    from synapse_bmz.cli import main

    with pytest.raises(SystemExit) as e:
        main(["run", str(tiny_package_2d / "rdf.yaml"), str(em_stack), "-o", str(tmp_path / "o"), "--tta", "rot"])
    assert e.value.code == 2 and "--tta" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_package_with_an_unknown_mode_is_refused_naming_the_field(tiny_package_2d, tmp_path):
    from synapse_bmz.zoo.registry import load_model

    pkg = _with_tta(tiny_package_2d, tmp_path / "bad", "rotations")
    with pytest.raises(ModelError, match="test_time_augmentation"):
        load_model(pkg)


def test_training_card_and_runner_use_the_same_average(tiny_package_2d, stack):
    """`predict_slices(..., tta="flips")` (the card figure) equals the runner's flips on one whole tile."""
    from synapse_bmz.runner.statistics import volume_statistics
    from synapse_bmz.training.adapt import load_package_network
    from synapse_bmz.training.loop import predict_slices

    net = load_package_network(tiny_package_2d).model
    img = stack[0]
    stats = volume_statistics(img, "img")
    norm = ((img - stats.mean) / max(stats.std, 1e-6)).astype(np.float32)
    card = predict_slices(net, [norm], "cpu", net.divisibility, "flips")[0]
    runner = np.asarray(api.predict(tiny_package_2d, img, (5.0, 5.0), test_time_augmentation="flips"))
    assert np.abs(card - runner).max() < 1e-3
