"""synapse-bmz cluster (synapse_bmz.cluster) and analysis.clustering on real components."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from analysis.clustering import (
    adjusted_rand, choose_k, handmade_features, per_cluster_summary, presynapse_distances, standardise,
)


def _blobs(n_per=10, k=3, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, (k, dim))
    x = np.concatenate([c + rng.normal(0, 0.5, (n_per, dim)) for c in centres])
    return x, np.repeat(np.arange(k), n_per)


def test_choose_k_finds_separated_blobs_and_reports_the_elbow():
    x, y = _blobs()
    c = choose_k(standardise(x), range(2, 8))
    assert c.k == 3 and adjusted_rand(y, c.labels) == 1.0
    assert c.elbow_k == 3
    assert set(c.silhouette) == set(c.inertia) == set(range(2, 8))
    assert c.inertia[2] > c.inertia[3] > c.inertia[7]


def test_standardise_keeps_constant_features_finite():
    x = np.column_stack([np.arange(5.0), np.ones(5)])
    s = standardise(x)
    assert np.allclose(s[:, 0].mean(), 0) and np.allclose(s[:, 0].std(), 1) and (s[:, 1] == 0).all()
    with pytest.raises(ValueError, match="NaN"):
        standardise(np.array([[np.nan, 1.0], [1.0, 1.0]]))


def test_presynapse_within_vs_between():
    x = np.array([[0.0], [1.0], [10.0], [11.0], [50.0]])
    df = presynapse_distances(x, [7, 7, 8, 8, 0])
    row = df.set_index("pre_id").loc["7"]
    assert row.n_synapses == 2 and row.within_distance_mean == 1.0
    # from 0 and 1 to 10, 11, 50: (10 + 11 + 50 + 9 + 10 + 49) / 6
    assert row.between_distance_mean == pytest.approx(139 / 6)
    assert "0" not in set(df.pre_id)  # 0 = unknown neuron


def test_handmade_features_see_a_bright_centre():
    crops = np.zeros((2, 9, 9, 9))
    crops[0, 3:6, 3:6, 3:6] = 1
    crops[1, 0, 0, 0] = 1
    f = handmade_features(crops, (2.0, 2.0, 2.0), n_bins=8, n_shells=4)
    assert f.shape == (2, 12)
    assert f[0, 8] > f[1, 8]  # innermost shell brighter for the centred blob
    np.testing.assert_allclose(f[:, :8].sum(axis=1), 1.0)


def test_per_cluster_summary():
    t = pd.DataFrame({"cluster": [0, 0, 1], "vesicle_cloud_volume_nm3": [1.0, 3.0, 5.0]})
    s = per_cluster_summary(t).set_index("cluster")
    assert s.loc[0, "n_synapses"] == 2 and s.loc[0, "vesicle_cloud_volume_nm3_mean"] == 2.0


@pytest.fixture(scope="module")
def sim_volume(tmp_path_factory):
    """A simulated volume with 6 synapses of two classes side by side: raw tif, vesicles tif, a synapse table."""
    from synapse_bmz.io import write_volume
    from synapse_bmz.simulate.synapse_classes import simulate_class_sample

    d = tmp_path_factory.mktemp("sim")
    blocks, ves, rows = [], [], []
    for i, c in enumerate([0, 1, 0, 1, 0, 1]):
        s = simulate_class_sample(c, 100 + i, shape=(32, 48, 48))
        blocks.append(s.raw)
        ves.append(s.labels["vesicles"])
        r = s.synapse.iloc[0].to_dict()
        for a in ("center", "pre", "post"):
            r[f"{a}_x_nm"] += i * 48 * 5.0
        rows.append(r)
    raw = np.concatenate(blocks, axis=2)
    write_volume(d / "raw.tif", raw, (5.0, 5.0, 5.0))
    write_volume(d / "vesicles.tif", (np.concatenate(ves, axis=2) > 0).astype(np.uint8), (5.0, 5.0, 5.0))
    pd.DataFrame(rows).to_csv(d / "synapses.csv", index=False)
    return d


@pytest.fixture(scope="module")
def tiny_extractor(tmp_path_factory):
    """A VGG3D feature package with random weights, built by the real builder (32^3 test input)."""
    import torch

    from synapse_bmz.models.vgg3d import VGG3D
    from synapse_bmz.packaging.features import build_feature_package

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("pkg") / "vgg3d_tiny"
    x = np.random.default_rng(0).normal(size=(1, 1, 32, 32, 32)).astype(np.float32)
    return build_feature_package(VGG3D(), x, out, name="vgg3d_tiny", description="test extractor",
                                 voxel_size_nm=(5.0, 5.0, 5.0), card="# test\n", min_size=32, step=16)


def test_tiny_feature_package_meets_consumer_contracts(tiny_extractor):
    from synapse_bmz.packaging.checks import onnx_problems, rdf_problems, torchscript_problems, upload_problems

    assert rdf_problems(tiny_extractor) == []
    assert upload_problems(tiny_extractor) == []
    assert torchscript_problems(tiny_extractor) == []
    assert onnx_problems(tiny_extractor) == []


def _parser():
    import argparse

    from synapse_bmz.cluster.cli import add_parser

    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers(dest="command"))
    return p


@pytest.fixture(scope="module")
def cluster_run(sim_volume, tiny_extractor, tmp_path_factory):
    """One clustering run with segmentation type 6, attention maps and GIFs (32^3 cubes keep it fast)."""
    from synapse_bmz.cluster.cli import config_from_args
    from synapse_bmz.cluster.pipeline import run_cluster

    out = tmp_path_factory.mktemp("cluster") / "out"
    a = _parser().parse_args(["cluster", str(sim_volume / "raw.tif"), "--synapses", str(sim_volume / "synapses.csv"),
                              "--labels", f"vesicles={sim_volume / 'vesicles.tif'}", "--model",
                              str(tiny_extractor.parent), "--segmentation-type", "6", "--alpha", "0.5",
                              "--k-range", "2,4", "-o", str(out), "--attention-layers", "early,20"])
    return run_cluster(config_from_args(a))


def test_cluster_run_writes_everything_and_reruns_from_its_config(cluster_run):
    from synapse_bmz.cluster.cli import cluster_command

    p = _parser()
    run = cluster_run
    tmp_out = run.folder.parent
    folder = run.folder
    assert folder.name.startswith("run_") and not list(tmp_out.glob(".*partial"))
    for f in ("config.yaml", "log.txt", "synapses.csv", "clustering.json", "presynapse.csv", "cluster_summary.csv",
              "report.html"):
        assert (folder / f).is_file(), f
    t = pd.read_csv(folder / "synapses.csv")
    assert len(t) == 6 and t.cluster.between(0, run.k - 1).all()
    assert {"umap_2d_0", "umap_3d_2", "tsne_2d_1", "tsne_3d_2", "feature_000", "feature_191",
            "vesicle_cloud_volume_nm3", "at_border", "source"} <= set(t.columns)
    assert (t.vesicle_cloud_volume_nm3 > 0).all()
    info = json.loads((folder / "clustering.json").read_text())
    assert info["k"] == run.k and set(map(int, info["silhouette"])) == {2, 3, 4}
    log = (folder / "log.txt").read_text()
    assert "6 synapses cropped" in log and "k = " in log
    html = (folder / "report.html").read_text()
    for fid in ("umap_2d_cluster", "umap_2d_source", "tsne_3d_cluster", "silhouette", "elbow", "vesicle_cloud",
                "crops_cluster_0", "presynapse", "attention"):
        assert f'id="{fid}"' in html, fid
    import re

    # opens offline: plotly.js is inlined, no script is fetched
    assert not re.findall(r"<script[^>]*\ssrc=", html) and "Plotly.newPlot" in html and len(html) > 1e6
    gifs = sorted((folder / "gifs").glob("cluster*.gif"))
    expected = sum(min(3, n) for n in t.cluster.value_counts())  # report_crops_per_cluster = 3
    assert len(gifs) == expected and all(g.read_bytes()[:6] == b"GIF89a" for g in gifs)
    pngs = sorted((folder / "attention").glob("cluster*.png"))
    assert len(pngs) == run.k and (folder / "attention" / "top_regions.csv").is_file()
    saved = yaml.safe_load((folder / "config.yaml").read_text())
    assert saved["segmentation_type"] == 6 and saved["alpha"] == 0.5
    # the saved configuration repeats the run (same features and clusters) into a new folder
    b = p.parse_args(["cluster", "--config", str(folder / "config.yaml")])
    assert cluster_command(b) == 0
    runs = sorted(tmp_out.glob("run_*"))
    assert len(runs) == 2
    t2 = pd.read_csv(runs[1] / "synapses.csv")
    np.testing.assert_allclose(t2.filter(like="feature_").to_numpy(), t.filter(like="feature_").to_numpy(), rtol=1e-5)
    assert (t2.cluster == t.cluster).all()


CHROMIUM = Path("/usr/bin/chromium")

# Run in the page: for every figure, whether plotly drew it (an SVG, plus a WebGL canvas for 3D
# scatters) or, for image figures, whether every image decoded.
_FIGURE_STATE = """() => [...document.querySelectorAll('div.figure')].map(d => {
  const imgs = [...d.querySelectorAll('img')];
  const plot = d.querySelector('.js-plotly-plot');
  return {id: d.id,
          plotted: !!(plot && plot._fullLayout && d.querySelector('svg.main-svg')),
          points: plot && plot._fullData ? plot._fullData.reduce((n, t) => n + (t.x ? t.x.length : 0)
                                                                     + (t.z && !t.x ? t.z.length : 0), 0) : 0,
          gl: !!d.querySelector('canvas'),
          images: imgs.length,
          decoded: imgs.filter(i => i.complete && i.naturalWidth > 0).length};
})"""


def test_report_renders_in_headless_chromium(cluster_run, tmp_path):
    """The report opens offline in a real browser: every figure drawn, every image decoded, no request
    leaves the file, no script error."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")
    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium (apt-get install -y chromium)")
    report = cluster_run.folder / "report.html"
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run",
            "--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            requests, errors = [], []
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(report.as_uri(), wait_until="load")
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length > 0", timeout=60_000)
            state = {f["id"]: f for f in page.evaluate(_FIGURE_STATE)}
        finally:
            browser.close()
    html = report.read_text()
    ids = re.findall(r'<div class="figure" id="([^"]+)"', html)
    assert set(state) == set(ids) and len(ids) >= 12
    for fid in ("umap_2d_cluster", "umap_2d_source", "umap_3d_cluster", "tsne_2d_cluster", "tsne_3d_source",
                "silhouette", "elbow", "vesicle_cloud", "crops_cluster_0", "gifs", "attention"):
        assert fid in state, fid
    for fid, f in state.items():
        if f["images"]:
            assert f["decoded"] == f["images"], f
        else:
            assert f["plotted"], f
            if "_3d_" in fid:
                assert f["gl"], f  # 3D scatters draw with WebGL
    assert state["umap_2d_cluster"]["points"] == 6
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    assert errors == []


def test_missing_label_volume_is_a_one_line_cli_error(sim_volume, tiny_extractor, tmp_path, capsys):
    from synapse_bmz.cluster.cli import main

    rc = main(["cluster", str(sim_volume / "raw.tif"), "--synapses", str(sim_volume / "synapses.csv"),
               "--model", str(tiny_extractor.parent), "--segmentation-type", "7", "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "segmentation type 7" in err and "'cleft'" in err and "\n" not in err
    assert not list((tmp_path / "o").glob("*"))  # nothing half-written


def test_bad_k_range_and_config(tmp_path, capsys):
    from synapse_bmz.cluster.cli import main

    assert main(["cluster", "--features", "x.csv", "--k-range", "5"]) == 2
    assert "--k-range" in capsys.readouterr().err
    bad = tmp_path / "c.yaml"
    bad.write_text("segmentation_type: 12\n")
    assert main(["cluster", "--config", str(bad)]) == 2
    assert "segmentation_type" in capsys.readouterr().err


def test_run_refuses_the_feature_extractor_in_one_line(tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    r = subprocess.run([sys.executable, "-m", "synapse_bmz", "run", "vgg3d_features",
                        str(REPO / "synapse_bmz" / "sample_data" / "epfl_vesicles_crop.tif"), "-o", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "use `synapse-bmz cluster" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "o" / "epfl_vesicles_crop").exists()
