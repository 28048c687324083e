"""The napari plugin with a real viewer: npe2 manifest, reader/writer, sample data, every widget.

Runs headless on a real OpenGL canvas: an Xvfb X server (Mesa's llvmpipe
renders), started here for the whole session unless a display is already
set, because Qt's ``offscreen`` platform gives vispy no GL context
(``glGetParameter`` returns None). Without Xvfb and without a display the
tests skip, saying so. Screenshots of the viewer with each widget open are
written under ``tmp_path`` and checked to be non-blank; with
``SYNAPSE_BMZ_SCREENSHOTS=DIR`` they are also copied to DIR.

Data are small: the bundled EPFL crop (3 x 384 x 512) or two 192 x 256
sections of it for the 2D vesicle network, a 32 x 96 x 96 simulated
tomogram (exact labels) for the 3D network and the measurements.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

pytest.importorskip("napari", reason="the napari extra is not installed (pip install 'synapse-bmz[napari]')")
pytest.importorskip("pytestqt", reason="pytest-qt is not installed")

from synapse_bmz import api  # noqa: E402
from synapse_bmz.io import read_volume, write_volume  # noqa: E402
from synapse_bmz.napari._segmentation import OTHER  # noqa: E402

PLUGIN = "synapse-bmz"
EPFL = Path(__file__).resolve().parents[1] / "synapse_bmz" / "sample_data" / "epfl_vesicles_crop.tif"
WAIT_MS = 120_000


def _die_with_parent():
    """Runs in the Xvfb child: SIGTERM it when pytest's process ends (Linux prctl PR_SET_PDEATHSIG)."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def _start_xvfb():
    """An Xvfb server on a free display number (``-displayfd``); (process, ":N").

    It is never stopped by a fixture: Qt ends the process as soon as its X
    connection breaks, which would be before pytest prints its summary. It
    dies with the test process instead.
    """
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                            pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=_die_with_parent)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        number = f.readline().strip()
    if not number:
        proc.kill()
        raise RuntimeError("Xvfb started but reported no display number")
    return proc, f":{number}"


@pytest.fixture(scope="session", autouse=True)
def gl_display():
    """A display with OpenGL for the whole session, set before the QApplication exists."""
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    if app is not None:
        if app.platformName() not in ("xcb", "wayland"):
            pytest.skip(f"a QApplication on the {app.platformName()!r} platform exists already; vispy needs a GL display")
        yield os.environ.get("DISPLAY")
        return
    if shutil.which("Xvfb"):
        _, display = _start_xvfb()
        os.environ["DISPLAY"] = display
    elif not os.environ.get("DISPLAY"):
        pytest.skip("no display for an OpenGL canvas: install Xvfb (apt-get install xvfb) or set DISPLAY")
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    # no GPU driver in CI: Mesa's software rasteriser, the same pixels everywhere
    os.environ.setdefault("LIBGL_ALWAYS_SOFTWARE", "1")
    # Qt aborts the whole process when its xcb plugin cannot load (missing libxcb-* libraries):
    # try it in a child first, so that this module skips instead of killing the test run
    probe = subprocess.run([sys.executable, "-c", "from qtpy.QtWidgets import QApplication; QApplication([])"],
                           capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        missing = [ln for ln in probe.stderr.splitlines() if "cannot open shared object" in ln or "xcb" in ln]
        pytest.skip(f"Qt cannot start on the X display {os.environ['DISPLAY']}: "
                    f"{(missing or probe.stderr.splitlines() or ['?'])[-1].strip()} "
                    "(apt-get install libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 ...)")
    yield os.environ["DISPLAY"]


def check_screenshot(viewer, path: Path) -> np.ndarray:
    """Save a screenshot of the whole window; fail if it or its canvas is blank."""
    viewer.reset_view()  # docked widgets shrank the canvas after the data were framed
    window = viewer.screenshot(path=str(path), canvas_only=False, flash=False)
    canvas = viewer.screenshot(canvas_only=True, flash=False)
    assert path.is_file() and path.stat().st_size > 10_000
    assert window[..., :3].std() > 10, "window screenshot is blank"
    colours = np.unique(canvas[..., :3].reshape(-1, 3), axis=0)
    assert len(colours) > 50, f"canvas screenshot is blank ({len(colours)} colours): no GL rendering"
    copy_to = os.environ.get("SYNAPSE_BMZ_SCREENSHOTS")
    if copy_to:
        Path(copy_to).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(copy_to) / path.name)
    return window


def wait_done(qtbot, panel, outcome="done"):
    qtbot.waitUntil(lambda: not panel.busy, timeout=WAIT_MS)
    assert panel.outcome == outcome, f"run ended {panel.outcome!r}: {panel.status.value}"


def last_error():
    from napari.utils.notifications import NotificationSeverity, notification_manager

    errors = [n for n in notification_manager.records if n.severity == NotificationSeverity.ERROR]
    return errors[-1].message if errors else None


@pytest.fixture(scope="module")
def crop():
    """Two 192 x 256 sections of the EPFL crop (z, y, x; 5 nm voxels)."""
    vol = read_volume(str(EPFL))
    return vol.to_numpy()[:2, :192, :256], tuple(vol.voxel_size_nm)


@pytest.fixture(scope="module")
def simulation():
    """A small simulated tomogram with exact vesicle and active-zone labels (1.5 nm voxels)."""
    from synapse_bmz.simulate import simulate_tomogram

    sim = simulate_tomogram((32, 96, 96), seed=1)
    assert sim.labels["vesicles"].max() >= 3 and sim.labels["active_zone"].any()
    return sim


@pytest.fixture(scope="module")
def prediction_store(tmp_path_factory, crop):
    """The crop's vesicles_2d prediction as the OME-Zarr store ``synapse-bmz run`` writes."""
    image, voxel = crop
    path = tmp_path_factory.mktemp("pred") / "prediction.ome.zarr"
    api.predict("vesicles_2d", image, voxel, device="cpu", out=path)
    return path


def test_reader_voxel_size_from_files(make_napari_viewer, tmp_path):
    """MRC header in Angstrom -> scale in nm; an h5 file with two datasets -> two layers (image, labels)."""
    import h5py
    import mrcfile

    viewer = make_napari_viewer()
    tomo = np.random.default_rng(0).integers(0, 255, (4, 20, 30)).astype(np.uint8)
    with mrcfile.new(tmp_path / "tomo.rec") as m:
        m.set_data(tomo)
        m.voxel_size = (15.54, 15.54, 15.54)  # Angstrom (x, y, z)
    layers = viewer.open(str(tmp_path / "tomo.rec"), plugin=PLUGIN)
    assert layers[0].name == "tomo" and np.allclose(layers[0].scale, 1.554)
    np.testing.assert_array_equal(np.asarray(layers[0].data), tomo)

    with h5py.File(tmp_path / "stack.h5", "w") as f:
        f["raw"] = tomo
        f["raw"].attrs["voxel_size_nm"] = (40.0, 4.0, 4.0)
        f["seg"] = (tomo > 128).astype(np.uint32)
        f["seg"].attrs["voxel_size_nm"] = (40.0, 4.0, 4.0)
    both = viewer.open(str(tmp_path / "stack.h5"), plugin=PLUGIN)
    assert [type(layer).__name__ for layer in both] == ["Image", "Labels"]
    assert all(tuple(layer.scale) == (40.0, 4.0, 4.0) for layer in both)
    # napari's open() wants existing paths; `file.h5:key` is for the reader called from Python
    from synapse_bmz.napari._reader import get_reader, read_layers

    one = read_layers(f"{tmp_path / 'stack.h5'}:seg")
    assert len(one) == 1 and one[0][2] == "labels" and one[0][1]["name"] == "stack.h5:seg"

    assert get_reader(str(tmp_path / "notes.txt")) is None


def test_partner_table_opens_as_arrows_over_the_volume(make_napari_viewer, tmp_path):
    """partners.csv / .parquet (as `synapse-bmz run` writes them) -> a Vectors layer post -> pre and a
    Points layer at the post-sites, in nm world coordinates; other csv files are not claimed."""
    from synapse_bmz.napari._partners import get_partner_reader

    table = pd.DataFrame({"pre_z_nm": [90.0, 45.0], "pre_y_nm": [46.0, 92.0], "pre_x_nm": [4.6, 9.2],
                          "post_z_nm": [45.0, 45.0], "post_y_nm": [23.0, 46.0], "post_x_nm": [4.6, 13.8],
                          "score": [3.5, 1.0], "pre_id": [7, 8], "post_id": [2, 3]})
    (tmp_path / "out").mkdir()
    table.to_csv(tmp_path / "out" / "partners.csv", index=False)
    table.to_parquet(tmp_path / "out" / "partners.parquet")
    viewer = make_napari_viewer()
    for name in ("partners.csv", "partners.parquet"):
        layers = viewer.open(str(tmp_path / "out" / name), plugin=PLUGIN)
        kinds = [type(layer).__name__ for layer in layers]
        assert kinds == ["Vectors", "Points"], kinds
        vectors, points = layers
        np.testing.assert_allclose(vectors.data[:, 0], table[["post_z_nm", "post_y_nm", "post_x_nm"]].to_numpy())
        np.testing.assert_allclose(vectors.data[:, 0] + vectors.data[:, 1],
                                   table[["pre_z_nm", "pre_y_nm", "pre_x_nm"]].to_numpy())
        np.testing.assert_allclose(points.data, table[["post_z_nm", "post_y_nm", "post_x_nm"]].to_numpy())
        assert vectors.features["score"].tolist() == [3.5, 1.0] and points.features["pre_id"].tolist() == [7, 8]
        assert vectors.name.startswith("out/partners (post -> pre)")  # napari numbers a repeated name
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "other.csv", index=False)
    assert get_partner_reader(str(tmp_path / "other.csv")) is None
    assert get_partner_reader(str(tmp_path / "missing.csv")) is None


@pytest.mark.parametrize("suffix", [".tif", ".zarr", ".h5", ".mrc"])
def test_writer_reader_roundtrip(make_napari_viewer, tmp_path, suffix):
    """A labels layer saved by the plugin reopens with the same values and the same nm scale."""
    viewer = make_napari_viewer()
    labels = np.zeros((3, 40, 50), np.uint32)
    labels[1, 5:15, 5:15], labels[2, 20:30, 30:45] = 7, 300
    layer = viewer.add_labels(labels, name="vesicles", scale=(40.0, 4.6, 4.6))
    path = tmp_path / f"vesicles{suffix}"
    from napari.plugins.io import save_layers

    written = save_layers(str(path), [layer], plugin=PLUGIN)
    assert written == [str(path)]
    back = viewer.open(str(path), plugin=PLUGIN)[0]
    np.testing.assert_array_equal(np.asarray(back.data), labels)
    np.testing.assert_allclose(back.scale, (40.0, 4.6, 4.6), rtol=1e-5)
    # MRC holds no 32-bit integers: labels that fit come back as 16-bit, an image layer (documented)
    assert type(back).__name__ == ("Image" if suffix == ".mrc" else "Labels")


def test_imod_writer(make_napari_viewer, tmp_path, simulation):
    """Vesicles -> one scattered-point object with radii; other labels -> closed contours."""
    from napari.plugins.io import save_layers

    from analysis.imod import points_table, read_model
    from analysis.morphology import object_table

    viewer = make_napari_viewer()
    vs = simulation.voxel_size_nm
    ves = viewer.add_labels(simulation.labels["vesicles"], name="vesicles", scale=vs)
    save_layers(str(tmp_path / "vesicles.mod"), [ves], plugin=PLUGIN)
    model = read_model(tmp_path / "vesicles.mod")
    assert len(model.objects) == 1 and model.objects[0].scattered
    points = points_table(model)
    table = object_table(simulation.labels["vesicles"], vs, surface_area=False)
    assert len(points) == len(table)
    np.testing.assert_allclose(points["radius_nm"], table["radius_nm"], rtol=1e-5)
    np.testing.assert_allclose(points["point_x_nm"], table["centroid_x_nm"], rtol=1e-5)

    mito = viewer.add_labels(simulation.labels["compartments"], name="compartments", scale=vs)
    save_layers(str(tmp_path / "compartments.mod"), [mito], plugin=PLUGIN)
    contours = read_model(tmp_path / "compartments.mod")
    assert len(contours.objects) == len(np.unique(simulation.labels["compartments"])) - 1
    assert not any(o.scattered for o in contours.objects)


def test_sample_data(make_napari_viewer, tmp_path):
    """The EPFL crop at 5 nm and the simulated tomogram with its ground truth, scaled in nm."""
    viewer = make_napari_viewer(show=True)
    viewer.open_sample(PLUGIN, "epfl_crop")
    crop = viewer.layers["EPFL crop"]
    assert crop.data.shape == (3, 384, 512) and tuple(crop.scale) == (5.0, 5.0, 5.0)
    viewer.open_sample(PLUGIN, "simulated_tomogram")
    names = {layer.name for layer in viewer.layers}
    assert {"simulated tomogram", "vesicles", "active_zone", "membrane", "psd"} <= names
    ves = viewer.layers["vesicles"]
    assert tuple(ves.scale) == (1.5, 1.5, 1.5)
    assert len(ves.features) == int(ves.data.max()) and "distance_to_az_nm" in ves.features
    viewer.layers.remove("EPFL crop")  # framed on the tomogram alone (1.5 nm, not the crop's 2.5 um)
    check_screenshot(viewer, tmp_path / "sample_simulated.png")


def test_segmentation_widget_end_to_end(make_napari_viewer, qtbot, tmp_path):
    """Segment the sample crop from the dock: the layers equal the API's result, scaled in nm, with a table."""
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1500, 900)
    viewer.open_sample(PLUGIN, "epfl_crop")
    image = viewer.layers["EPFL crop"].data
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Segmentation")
    widget.model.value = OTHER
    widget.package.value = Path(__file__).resolve().parents[1] / "model_packages" / "vesicles_2d" / "rdf.yaml"
    assert widget.card.value.startswith("vesicles_2d: 2D U-Net") and widget.source.endswith("rdf.yaml")
    widget.model.value = "vesicles_2d"
    card = yaml.safe_load((Path(__file__).resolve().parents[1] / "model_packages" / "vesicles_2d" / "rdf.yaml").read_text())
    f1 = card["config"]["synapse_bmz"]["accuracy"]["instance_f1"]
    # the card shows three significant digits
    assert "vesicles_2d" in widget.card.value and f"instance_f1 {f1:.3g}" in widget.card.value
    assert widget.voxel_size.value == "5, 5, 5"
    widget.device.value = "cpu"
    widget.task.run_button.native.click()
    assert widget.task.busy  # the GUI thread is free while it runs
    wait_done(qtbot, widget.task)

    stages = {e.stage for e in widget.task.events if isinstance(e, api.ProgressEvent)}
    assert {"statistics", "predict", "label", "measure"} <= stages
    fg = viewer.layers["vesicles_2d foreground"]
    assert tuple(fg.scale) == (5.0, 5.0, 5.0) and fg.data.shape == image.shape
    labels = viewer.layers["vesicles (vesicles_2d)"]
    expected = api.segment("vesicles_2d", api.predict("vesicles_2d", image, (5.0, 5.0, 5.0), device="cpu"))
    np.testing.assert_array_equal(np.asarray(labels.data), np.asarray(expected.labels))
    assert expected.n_objects > 20
    assert list(labels.features["label"]) == list(expected.table["label"])
    assert labels.metadata["synapse_bmz"]["recipe"] == "vesicles"
    viewer.layers["vesicles_2d foreground"].visible = False
    check_screenshot(viewer, tmp_path / "segmentation.png")


def test_segmentation_3d_package_on_its_training_grid(make_napari_viewer, qtbot, simulation):
    """A 3D package: the voxel size field decides the grid; outputs overlay the input in nm."""
    viewer = make_napari_viewer()
    vs = simulation.voxel_size_nm
    raw = viewer.add_image(simulation.raw, name="tomogram", scale=vs)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Segmentation")
    widget.model.value, widget.device.value = "vesicles_3d", "cpu"
    assert widget.voxel_size.value == "1.5, 1.5, 1.5"
    # said to be 2 nm (the training voxel size): predicted as it is, no resampling
    widget.voxel_size.value = "2, 2, 2"
    widget.task.run_button.native.click()
    wait_done(qtbot, widget.task)
    labels = viewer.layers["vesicles (vesicles_3d)"]
    assert labels.data.shape == raw.data.shape and tuple(labels.scale) == (2.0, 2.0, 2.0)
    assert widget.voxel_size.value == "2, 2, 2"  # the layers the run added did not reset the edit

    # at its true 1.5 nm the tomogram is viewed on the 2 nm training grid
    widget.voxel_size.value = "1.5, 1.5, 1.5"
    widget.task.run_button.native.click()
    wait_done(qtbot, widget.task)
    fg = viewer.layers["vesicles_3d foreground"]
    assert tuple(labels.scale) == tuple(fg.scale) == (2.0, 2.0, 2.0)
    np.testing.assert_allclose(np.array(labels.data.shape) * 2.0, np.array(raw.data.shape) * vs)
    assert labels.data.max() >= 3 and len(labels.features) == labels.data.max()
    assert [layer.name for layer in viewer.layers].count("vesicles (vesicles_3d)") == 1


def test_segmentation_cancel_mid_run(make_napari_viewer, qtbot):
    """Cancel after the first predicted batch: the run stops early, the generator is closed, no layers."""
    import inspect

    viewer = make_napari_viewer()
    vol = read_volume(str(EPFL))
    viewer.add_image(vol.to_numpy(), name="EPFL crop", scale=vol.voxel_size_nm)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Segmentation")
    widget.model.value, widget.device.value = "vesicles_2d", "cpu"
    widget.tile.value = "128, 128"  # 576 tiles: minutes of work unless cancelled
    widget.task.run_button.native.click()
    worker = widget.task.worker
    qtbot.waitUntil(lambda: any(isinstance(e, api.ProgressEvent) and e.stage == "predict" and e.done > 0
                                for e in widget.task.events), timeout=WAIT_MS)
    widget.task.cancel_button.native.click()
    wait_done(qtbot, widget.task, outcome="cancelled")
    assert inspect.getgeneratorstate(worker._gen) == inspect.GEN_CLOSED
    done = max(e.done for e in widget.task.events if isinstance(e, api.ProgressEvent) and e.stage == "predict")
    assert done < 576 / 4 and widget.task.status.value == "cancelled"
    assert [layer.name for layer in viewer.layers] == ["EPFL crop"]
    assert widget.task.run_button.enabled


def test_errors_are_the_cli_line(make_napari_viewer, qtbot, tmp_path, capsys):
    """A too-small tile: the notification is the line `synapse-bmz run --tile` prints, no traceback."""
    from synapse_bmz.cli import main

    assert main(["run", "vesicles_2d", str(EPFL), "-o", str(tmp_path / "out"), "--tile", "7,7",
                 "--device", "cpu", "--quiet"]) == 2
    cli_line = capsys.readouterr().err.strip().splitlines()[0]
    assert cli_line.startswith("synapse-bmz: error: --tile")

    viewer = make_napari_viewer()
    viewer.add_image(read_volume(str(EPFL)).to_numpy()[:1], name="crop", scale=(5.0, 5.0, 5.0))
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Segmentation")
    widget.model.value, widget.device.value, widget.tile.value = "vesicles_2d", "cpu", "7, 7"
    widget.task.run_button.native.click()
    wait_done(qtbot, widget.task, outcome="error")
    assert last_error() == cli_line == widget.task.status.value

    widget.voxel_size.value = "5, 5"  # the layer is 3D: refused before any work
    widget.task.run_button.native.click()
    assert not widget.task.busy and last_error().startswith("synapse-bmz: error: voxel size: give 3 values")


def test_recipe_forms_carry_every_package_parameter(qtbot):
    """The Postprocessing form of every zoo package gives back the package's parameters and the recipe defaults."""
    from synapse_bmz.napari._postprocessing import RecipeForm, recipe_parameters
    from synapse_bmz.zoo.config import read_config
    from synapse_bmz.zoo.registry import available_packages, read_rdf

    recipes = set()
    for name, rdf in available_packages().items():
        cfg = read_config(read_rdf(rdf).get("config"), str(rdf))
        if cfg is None or cfg.postprocessing is None:
            continue
        spec = cfg.postprocessing
        recipes.add(spec.recipe)
        values = RecipeForm(spec.recipe, spec.params).values()
        expected = {p.name: p.default for p, _ in recipe_parameters(spec.recipe) if p.default is not None}
        assert values == {**expected, **spec.params}, name
    assert recipes == {"vesicles", "mitochondria", "active_zone", "clefts", "compartments", "ribbon",
                       "synful_partners", "polarity_partners"}


def test_postprocessing_rerun_and_size_filter(make_napari_viewer, qtbot, tmp_path, prediction_store):
    """Re-segment a saved prediction with other parameters (no prediction), then filter by size in nm^3."""
    viewer = make_napari_viewer(show=True)
    layers = viewer.open(str(prediction_store), plugin=PLUGIN)
    assert [layer.name for layer in layers] == ["vesicles_2d foreground", "vesicles_2d boundary", "vesicles_2d distance"]
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Postprocessing")
    assert widget.prediction.value is layers[0] and widget.recipe.value.startswith("vesicles")
    form = widget.form
    rdf = yaml.safe_load((Path(__file__).resolve().parents[1] / "model_packages" / "vesicles_2d" / "rdf.yaml").read_text())
    params = rdf["config"]["synapse_bmz"]["postprocessing"]["params"]
    assert form["vesicle_radius_nm"].value == params["vesicle_radius_nm"] and form["mode"].value == params["mode"]
    form["mask_threshold"].value = 0.7  # the package's is 0.5
    widget.task.run_button.native.click()
    wait_done(qtbot, widget.task)
    assert not any(isinstance(e, api.ProgressEvent) and e.stage == "predict" for e in widget.task.events)

    pred = layers[0].metadata["synapse_bmz"]["prediction"]
    expected = api.segment("vesicles_2d", pred, params={"mask_threshold": 0.7})
    default = api.segment("vesicles_2d", pred)
    got = viewer.layers["vesicles (vesicles_2d)"]
    np.testing.assert_array_equal(np.asarray(got.data), np.asarray(expected.labels))
    assert not np.array_equal(np.asarray(expected.labels), np.asarray(default.labels))
    assert got.metadata["synapse_bmz"]["params"]["mask_threshold"] == 0.7
    check_screenshot(viewer, tmp_path / "postprocessing.png")

    _, sizes = viewer.window.add_plugin_dock_widget(PLUGIN, "Size filter")
    sizes.layer.value = got
    counts = np.bincount(np.asarray(got.data).ravel())[1:]
    voxel_nm3 = 5.0 ** 3
    threshold = float(np.median(counts[counts > 0])) * voxel_nm3
    sizes.min_size.value = threshold
    sizes.task.run_button.native.click()
    wait_done(qtbot, sizes.task)
    kept = np.asarray(viewer.layers["vesicles (vesicles_2d) filtered"].data)
    kept_counts = np.bincount(kept.ravel())[1:]
    assert len(kept_counts) == int(np.sum(counts * voxel_nm3 >= threshold)) < int(np.sum(counts > 0))
    assert kept_counts.min() * voxel_nm3 >= threshold
    check_screenshot(viewer, tmp_path / "size_filter.png")


def test_distances_morphology_pools(make_napari_viewer, qtbot, tmp_path, simulation, capsys):
    """Measurements on exact simulated labels equal `analysis`; segments as Vectors; tables export."""
    from analysis.distances import distances_to_structure, nearest_neighbor_distances
    from analysis.report import vesicle_table

    vs = simulation.voxel_size_nm
    ves_arr, az_arr = simulation.labels["vesicles"], simulation.labels["active_zone"].astype(np.uint8)
    viewer = make_napari_viewer(show=True)
    viewer.add_image(simulation.raw, name="tomogram", scale=vs)
    ves = viewer.add_labels(ves_arr, name="vesicles", scale=vs)
    az = viewer.add_labels(az_arr, name="active_zone", scale=vs)

    _, dist = viewer.window.add_plugin_dock_widget(PLUGIN, "Distance measurement")
    dist.objects.value, dist.structure.value = ves, az
    dist.task.run_button.native.click()
    wait_done(qtbot, dist.task)
    expected = distances_to_structure(ves_arr, az_arr, vs)
    pd.testing.assert_frame_equal(dist.results.frame, expected)
    vectors = viewer.layers["distances vesicles -> active_zone"]
    assert len(vectors.data) == int(np.isfinite(expected["distance_nm"]).sum())
    np.testing.assert_allclose(vectors.data[:, 0], expected[["object_point_z_nm", "object_point_y_nm",
                                                              "object_point_x_nm"]].to_numpy())
    np.testing.assert_allclose(vectors.features["distance_nm"], expected["distance_nm"])
    check_screenshot(viewer, tmp_path / "distances.png")
    dist.mode.value = "nearest neighbour"
    dist.task.run_button.native.click()
    wait_done(qtbot, dist.task)
    pd.testing.assert_frame_equal(dist.results.frame, nearest_neighbor_distances(ves_arr, vs))

    _, morph = viewer.window.add_plugin_dock_widget(PLUGIN, "Morphology")
    morph.layer.value, morph.raw.value = ves, viewer.layers["tomogram"]
    morph.task.run_button.native.click()
    wait_done(qtbot, morph.task)
    assert len(morph.results.frame) == int(ves_arr.max()) and "intensity_mean" in morph.results.frame
    np.testing.assert_allclose(ves.features["volume_nm3"], morph.results.frame["volume_nm3"])
    written = morph.results.export(tmp_path / "morphology.xlsx")
    pd.testing.assert_frame_equal(pd.read_excel(written), morph.results.frame, check_dtype=False)
    check_screenshot(viewer, tmp_path / "morphology.png")

    _, pools = viewer.window.add_plugin_dock_widget(PLUGIN, "Pool assignment")
    pools.vesicles.value, pools.structures.value = ves, [az]
    pools.task.run_button.native.click()
    wait_done(qtbot, pools.task)
    table = pools.results.frame
    from analysis.pools import load_pool_rules

    reference = vesicle_table(ves_arr, {"active_zone": az_arr}, vs, None, load_pool_rules(None, ["active_zone"]))
    pd.testing.assert_frame_equal(table, reference)
    assert set(table["pool"]) <= {"docked", "non-docked"}
    points = viewer.layers["pools (vesicles)"]
    assert len(points.data) == len(table) and list(points.features["pool"]) == list(table["pool"])
    written = pools.results.export(tmp_path / "pools.csv")
    pd.testing.assert_frame_equal(pd.read_csv(written), table, check_dtype=False)
    check_screenshot(viewer, tmp_path / "pools.png")

    # a broken rule file: the line `synapse-bmz analyze --pool-rules` prints
    bad = tmp_path / "rules.yaml"
    bad.write_text("pools: [\n")
    write_volume(tmp_path / "ves.tif", ves_arr, vs)
    write_volume(tmp_path / "az.tif", az_arr, vs)
    from synapse_bmz.cli import main

    assert main(["analyze", f"vesicles={tmp_path / 'ves.tif'}", f"active_zone={tmp_path / 'az.tif'}",
                 "--pool-rules", str(bad), "-o", str(tmp_path / "report")]) == 2
    cli_line = capsys.readouterr().err.strip().splitlines()[0]
    pools.rules.value = bad
    pools.task.run_button.native.click()
    wait_done(qtbot, pools.task, outcome="error")
    assert last_error() == cli_line
