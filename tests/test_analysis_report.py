"""analyze(): tables, atomic outputs and an offline HTML report rendered in headless Chromium."""

import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.report import analyze
from analysis.synthetic import random_vesicle_volume

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    data = random_vesicle_volume((40, 128, 128), 40, (4.0, 6.0), seed=2)
    raw = np.random.default_rng(0).normal(size=data["vesicles"].shape).astype(np.float32)
    out = tmp_path_factory.mktemp("analysis") / "out"
    paths = analyze(data["vesicles"], {"active_zone": data["active_zone"]}, (1.5, 1.5, 1.5), raw, out)
    return data, paths, out


def test_tables(result):
    data, paths, out = result
    assert set(paths) == {"vesicles_csv", "vesicles_parquet", "structures_csv", "structures_parquet", "report_html"}
    vesicles = pd.read_parquet(paths["vesicles_parquet"])
    assert len(vesicles) == len(data["radii"]) == len(pd.read_csv(paths["vesicles_csv"]))
    for column in ("radius_nm", "volume_nm3", "centroid_z_nm", "distance_to_active_zone_nm",
                   "active_zone_point_y_nm", "nearest_neighbor_distance_nm", "pool"):
        assert column in vesicles
    docked = vesicles["distance_to_active_zone_nm"] < 2
    assert (vesicles["pool"][docked] == "docked").all() and (vesicles["pool"][~docked] == "non-docked").all()
    structures = pd.read_csv(paths["structures_csv"])
    assert structures["structure"].tolist() == ["active_zone"]
    assert structures["volume_nm3"][0] == pytest.approx(data["active_zone"].sum() * 1.5**3)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_report_is_self_contained(result):
    html = result[1]["report_html"].read_text()
    assert not re.search(r"<script[^>]*\bsrc=", html)  # plotly.js inline, nothing fetched
    assert "Plotly.newPlot" in html
    assert html.count('class="plotly-graph-div"') == 5


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(result, tmp_path):
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000", "--dump-dom", result[1]["report_html"].as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert dom.count("js-plotly-plot") >= 5  # plotly ran and decorated every figure div
    assert dom.count('class="main-svg"') >= 5
    assert "Slice view with overlays" in dom


def test_rejects_mismatched_shapes(tmp_path):
    with pytest.raises(ValueError, match="active_zone"):
        analyze(np.zeros((4, 8, 8), int), {"active_zone": np.zeros((4, 8, 9), bool)}, (1, 1, 1), None, tmp_path)


def test_xlsx_on_request(tmp_path):
    pytest.importorskip("openpyxl")
    labels = np.zeros((6, 20, 20), np.int32)
    labels[2:4, 5:8, 5:8] = 1
    labels[2:4, 12:15, 12:15] = 2
    az = np.zeros(labels.shape, bool)
    az[:, 0:2, :] = True
    paths = analyze(labels, {"active_zone": az}, (2.0, 1.0, 1.0), None, tmp_path, xlsx=True)
    table = pd.read_excel(paths["vesicles_xlsx"])
    assert table["label"].tolist() == [1, 2]
    assert table["distance_to_active_zone_nm"].tolist() == pytest.approx([3.5, 10.5])
