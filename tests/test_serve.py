"""``synapse-bmz serve`` against a real uvicorn on loopback, driven over HTTP and by the Python client.

Outputs are checked against ``synapse-bmz run`` (the runner in this process)
on the same inputs. Every wait is bounded in time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import tifffile

from serve_helpers import TOKENS, Server, headers

REPO = Path(__file__).resolve().parents[1]
CROP = REPO / "synapse_bmz" / "sample_data" / "epfl_vesicles_crop.tif"
MODEL = "vesicles_2d"


def _write_tif(path: Path, img: np.ndarray) -> Path:
    tifffile.imwrite(path, img, imagej=True, resolution=(1 / 5.0, 1 / 5.0), metadata={"unit": "nm", "axes": "YX"})
    return path


def small_inputs(folder: Path, n: int, size: int = 128) -> list:
    """``n`` distinct crops of the bundled EPFL sample (real FIB-SEM, 5 nm)."""
    img = tifffile.imread(CROP)  # (3, 384, 512)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        y, x = (i * 61) % (img.shape[1] - size + 1), (i * 113) % (img.shape[2] - size + 1)
        out.append(_write_tif(folder / f"crop{i:02d}.tif", img[i % 3, y:y + size, x:x + size]))
    return out


def local_run(inputs, out: Path, tile=None) -> dict:
    """``synapse-bmz run`` (the same runner) on each input: name -> output folder."""
    from synapse_bmz.runner.run import RunOptions, run

    res = run(MODEL, [str(p) for p in inputs], out, RunOptions(progress=False, overwrite=True, tile=tile))
    return {r.output_dir.name: r.output_dir for r in res}


def assert_same_outputs(a: Path, b: Path) -> None:
    """Labels, object table and prediction of two output folders are equal."""
    import zarr

    np.testing.assert_array_equal(tifffile.imread(a / "vesicles.tif"), tifffile.imread(b / "vesicles.tif"))
    pd.testing.assert_frame_equal(pd.read_csv(a / "vesicles.csv"), pd.read_csv(b / "vesicles.csv"))
    pa = zarr.open_group(str(a / "prediction.ome.zarr"), mode="r")["0"][...]
    pb = zarr.open_group(str(b / "prediction.ome.zarr"), mode="r")["0"][...]
    np.testing.assert_array_equal(pa, pb)


def wait_state(url: str, job_id: str, states, user: str = "alice", timeout_s: float = 120.0,
               pred=None) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/jobs/{job_id}", headers=headers(user), timeout=10).json()
        if job["state"] in states and (pred is None or pred(job)):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not in {states} within {timeout_s} s: {job}")


@pytest.fixture(scope="module")
def crop_objects(tmp_path_factory) -> int:
    """Vesicles `synapse-bmz run` finds on the demo crop: what a job on the same file must report."""
    out = local_run([CROP], tmp_path_factory.mktemp("crop_local"))[Path(CROP).stem]
    return len(pd.read_csv(out / "vesicles.csv"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    srv = Server(root, extra=["--max-upload-mb", "2", "--allow-package-upload"], workers=2).start()
    shutil.copy(CROP, srv.data / "crop.tif")
    (srv.data / "sub").mkdir()
    shutil.copy(CROP, srv.data / "sub" / "inner.tif")
    outside = root / "outside.tif"
    shutil.copy(CROP, outside)
    os.symlink(outside, srv.data / "escape.tif")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    from synapse_bmz.client import Client

    with Client(server.url, TOKENS["alice"]) as c:
        yield c


# -- auth, models ---------------------------------------------------------------------------
def test_health_needs_no_token_and_everything_else_does(server):
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    for method, path in [("GET", "/models"), ("GET", f"/models/{MODEL}"), ("GET", f"/models/{MODEL}/card"),
                         ("POST", f"/models/{MODEL}/test"), ("GET", "/jobs"), ("POST", "/jobs"),
                         ("GET", "/jobs/x"), ("GET", "/jobs/x/events"), ("GET", "/jobs/x/outputs"),
                         ("GET", "/jobs/x/outputs/y"), ("DELETE", "/jobs/x")]:
        for h in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": f"Basic {TOKENS['alice']}"},
                  {"Authorization": "Bearer " + TOKENS["alice"][:-1]}):
            r = httpx.request(method, server.url + path, headers=h)
            assert r.status_code == 401, (method, path, h, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["detail"] == "missing or invalid bearer token"
            assert r.headers["www-authenticate"] == "Bearer"


def test_models_rdf_card(server, client):
    models = {m["name"]: m for m in client.models()}
    assert {"vesicles_2d", "mitochondria_2d", "synapse_cleft", "ribbon"} <= set(models)
    m = models[MODEL]
    assert m["task"] == "vesicles" and m["axes"] == "bcyx" and m["voxel_size_nm"] == [5.0, 5.0]
    assert "torchscript" in m["weight_formats"] and m["channels"] == ["foreground", "boundary", "distance"]
    rdf = client.model(MODEL)
    assert rdf["type"] == "model" and rdf["inputs"][0]["axes"]
    assert client.card(MODEL).lstrip().startswith("#")
    for path in ("/models/nope", "/models/nope/card", "/models/..%2F..%2Fetc/card", "/models/%2e%2e/card"):
        r = httpx.get(server.url + path, headers=headers())
        assert r.status_code == 404, (path, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    assert "unknown model" in httpx.get(server.url + "/models/nope", headers=headers()).json()["detail"]
    r = httpx.post(server.url + "/jobs", headers=headers(), data={"model": "https://example.org/model.zip",
                                                                  "path": "crop.tif"})
    assert r.status_code == 404 and "unknown model" in r.json()["detail"]


def test_model_test_job(server, client):
    job_id = client.test_model(MODEL)
    job = client.wait(job_id, timeout_s=300)
    assert job["result"]["passed"] is True, job
    assert set(job["result"]["weight_formats"]) == {"torchscript", "pytorch_state_dict", "onnx"}
    files = {f["name"] for f in client.outputs(job_id)}
    assert files == {"test.json"}


# -- jobs end to end --------------------------------------------------------------------------
def test_upload_job_equals_local_run(server, client, tmp_path):
    inp = small_inputs(tmp_path / "in", 1, size=256)[0]
    ref = local_run([inp], tmp_path / "local")[inp.stem]
    seen = []
    job_id = client.submit(MODEL, inp)
    job = client.wait(job_id, progress=seen.append, timeout_s=120)
    assert job["state"] == "succeeded" and job["result"]["n_objects"] > 0
    assert any(j["stage"] == "predict" for j in seen), seen
    names = {f["name"] for f in client.outputs(job_id)}
    assert {"vesicles.tif", "vesicles.csv", "provenance.json", "prediction.ome.zarr.zip"} <= names
    got = client.download(job_id, tmp_path / "remote")
    assert got == tmp_path / "remote" / inp.stem
    assert_same_outputs(ref, got)
    assert not [p for p in (tmp_path / "remote").iterdir() if p.name.startswith(".")]
    # outputs name the input as uploaded and never reveal the server's folders
    assert json.loads((got / "provenance.json").read_text())["input"] == inp.name
    for f in got.rglob("*"):
        if f.is_file() and f.suffix in ("", ".json", ".csv") and f.stat().st_size < 1 << 20:
            text = f.read_bytes().decode("utf-8", "replace")
            assert str(server.root) not in text and str(server.state) not in text, f
    # the caller's job list has it; another user neither lists nor reads it
    assert job_id in {j["id"] for j in client.jobs()}
    assert job_id not in {j["id"] for j in httpx.get(server.url + "/jobs", headers=headers("bob")).json()}
    for path in (f"/jobs/{job_id}", f"/jobs/{job_id}/outputs", f"/jobs/{job_id}/outputs/vesicles.tif",
                 f"/jobs/{job_id}/events"):
        assert httpx.get(server.url + path, headers=headers("bob")).status_code == 404
    assert httpx.delete(server.url + f"/jobs/{job_id}", headers=headers("bob")).status_code == 404
    assert client.job(job_id)["state"] == "succeeded"


def test_path_job_and_slice_zip_and_events(server, client, tmp_path, crop_objects):
    job_id = client.submit(MODEL, path="sub/inner.tif")
    r = httpx.get(f"{server.url}/jobs/{job_id}/events", headers=headers(), timeout=120)
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [ln.split(":", 1)[1].strip() for ln in r.text.splitlines() if ln.startswith("event:")]
    assert events[-1] == "end" and "progress" in events
    last = json.loads([ln for ln in r.text.splitlines() if ln.startswith("data:")][-1][5:])
    assert last["state"] == "succeeded" and last["result"]["n_objects"] == crop_objects > 0
    # a folder of PNG slices, zipped by the client, is one 3D input
    from PIL import Image

    img = tifffile.imread(CROP)[0, :96, :96]
    folder = tmp_path / "slices"
    folder.mkdir()
    for z in range(3):
        Image.fromarray(np.roll(img, z, axis=0)).save(folder / f"s{z:03d}.png")
    job_id = client.submit(MODEL, folder, options={"voxel_size_nm": [40.0, 5.0, 5.0]})
    job = client.wait(job_id, timeout_s=120)
    labels = tifffile.imread(client.download(job_id, tmp_path / "out") / "vesicles.tif")
    assert labels.shape == (3, 96, 96)


def test_hundred_concurrent_jobs_none_lost_or_mixed(server, tmp_path):
    """100 jobs from 4 clients over 10 distinct inputs; each output equals the local run of its input."""
    from synapse_bmz.client import Client

    inputs = small_inputs(tmp_path / "in", 10, size=96)
    refs = local_run(inputs, tmp_path / "local")
    submitted, errors = [], []
    lock = threading.Lock()

    def client_thread(k: int) -> None:
        user = "alice" if k % 2 == 0 else "bob"
        try:
            with Client(server.url, TOKENS[user]) as c:
                for i in range(25):
                    inp = inputs[(k * 25 + i) % len(inputs)]
                    job_id = c.submit(MODEL, inp)
                    with lock:
                        submitted.append((user, job_id, inp.stem))
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=client_thread, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert len(submitted) == 100 and len({j for _, j, _ in submitted}) == 100
    deadline = time.monotonic() + 300
    mixed = 0
    for n, (user, job_id, stem) in enumerate(submitted):
        with Client(server.url, TOKENS[user]) as c:
            job = c.wait(job_id, timeout_s=max(1.0, deadline - time.monotonic()))
            assert job["input"] == f"{stem}.tif"
            if n % 5 == 0:  # every fifth output downloaded and compared in full; all labels compared
                got = c.download(job_id, tmp_path / "remote" / job_id)
                assert_same_outputs(refs[stem], got)
            else:
                r = httpx.get(f"{server.url}/jobs/{job_id}/outputs/vesicles.tif", headers=headers(user), timeout=30)
                tmp = tmp_path / f"{job_id}.tif"
                tmp.write_bytes(r.content)
                mixed += not np.array_equal(tifffile.imread(tmp), tifffile.imread(refs[stem] / "vesicles.tif"))
    assert mixed == 0
    listed = httpx.get(server.url + "/jobs", params={"limit": 1000}, headers=headers("alice")).json()
    alice = {j["id"] for j in listed}
    assert {j for u, j, _ in submitted if u == "alice"} <= alice
    assert not {j for u, j, _ in submitted if u == "bob"} & alice
    # a limit keeps the most recent jobs, still oldest first
    assert [j["created"] for j in listed] == sorted(j["created"] for j in listed)
    with Client(server.url, TOKENS["alice"]) as c:
        assert [j["id"] for j in c.jobs(limit=5)] == [j["id"] for j in listed[-5:]]
    for bad in ("0", "1001", "many"):
        r = httpx.get(server.url + "/jobs", params={"limit": bad}, headers=headers("alice"))
        assert r.status_code == 422 and "limit" in r.json()["detail"], (bad, r.text)


def test_cancel_queued_and_running(server, client, tmp_path):
    big = _write_tif(tmp_path / "big.tif", np.tile(tifffile.imread(CROP)[0], (3, 3)))
    shutil.copy(big, server.data / "big.tif")
    running = [client.submit(MODEL, path="big.tif") for _ in range(2)]  # occupies both workers
    queued = client.submit(MODEL, path="big.tif")
    assert client.cancel(queued)["state"] == "cancelled"
    assert not (server.state / "jobs" / queued).exists()
    job = wait_state(server.url, running[0], ("running",), pred=lambda j: j["stage"] == "predict")
    assert job["state"] == "running"
    client.cancel(running[0])
    job = wait_state(server.url, running[0], ("cancelled",), timeout_s=60)
    assert job["error"] == "cancelled by request"
    assert not (server.state / "jobs" / running[0]).exists()
    # the second job may finish before the request arrives; cancelling a finished job deletes
    # its files and leaves the record 'expired', so every outcome ends with no files left
    client.cancel(running[1])
    job = wait_state(server.url, running[1], ("cancelled", "expired"), timeout_s=120)
    assert job["error"] in ("cancelled by request", "deleted by request")
    assert not (server.state / "jobs" / running[1]).exists()
    assert client.outputs(queued) == []


# -- bad requests ----------------------------------------------------------------------------
@pytest.mark.parametrize("path, status, words", [
    ("../tokens", 400, "'..' is not allowed"),
    ("sub/../../tokens", 400, "'..' is not allowed"),
    ("/etc/passwd", 400, "absolute paths are not allowed"),
    ("escape.tif", 400, "resolves outside the data root"),
    ("%2e%2e/tokens", 400, "no such file under the data root"),
    ("..%2Ftokens", 400, "no such file under the data root"),
    ("sub\\..\\..\\tokens", 400, "not a valid relative path"),
    ("missing.tif", 400, "no such file under the data root"),
])
def test_paths_are_confined_to_the_data_root(server, path, status, words):
    r = httpx.post(server.url + "/jobs", headers=headers(), data={"model": MODEL, "path": path})
    assert r.status_code == status, r.text
    body = r.json()
    assert words in body["detail"] and str(server.root) not in body["detail"]
    assert r.headers["content-type"].startswith("application/problem+json")


def test_output_names_cannot_escape(server, client):
    job_id = client.submit(MODEL, path="crop.tif")
    client.wait(job_id, timeout_s=120)
    for name in ("..%2F..%2Ftokens", "%2e%2e%2fprovenance.json", "../../tokens", "prediction.ome.zarr"):
        r = httpx.get(f"{server.url}/jobs/{job_id}/outputs/{name}", headers=headers())
        assert r.status_code == 404, (name, r.status_code)
    assert httpx.get(f"{server.url}/jobs/{job_id}/outputs/provenance.json", headers=headers()).status_code == 200
    # deleting a finished job removes its files; the record stays, as 'expired'
    assert client.cancel(job_id)["state"] == "expired"
    assert client.outputs(job_id) == [] and not (server.state / "jobs" / job_id).exists()
    assert httpx.get(f"{server.url}/jobs/{job_id}/outputs/provenance.json", headers=headers()).status_code == 404


@pytest.mark.parametrize("options, words", [
    ('{"tile": [1]}', "options.tile"),
    ('{"voxel_size_nm": [-1, 5]}', "options.voxel_size_nm"),
    ('{"label_format": "exe"}', "options.label_format"),
    ('{"unknown": 1}', "options.unknown"),
    ('{"recipe_params": {"min_radius_nm": [1, 2]}}', "options.recipe_params"),
    ("[1, 2]", "must be a JSON object"),
    ("{not json", "not valid JSON"),
])
def test_malformed_options(server, options, words):
    r = httpx.post(server.url + "/jobs", headers=headers(), data={"model": MODEL, "path": "crop.tif", "options": options})
    assert r.status_code == 422 and words in r.json()["detail"], r.text


def test_bad_submissions(server, tmp_path):
    url = server.url + "/jobs"
    r = httpx.post(url, headers=headers(), data={"model": MODEL})
    assert r.status_code == 400 and "exactly one input" in r.json()["detail"]
    r = httpx.post(url, headers=headers(), data={"model": MODEL, "path": "crop.tif"},
                   files={"file": ("a.tif", CROP.read_bytes())})
    assert r.status_code == 400 and "exactly one input" in r.json()["detail"]
    r = httpx.post(url, headers=headers(), files={"file": ("a.tif", CROP.read_bytes())})
    assert r.status_code == 422 and "model" in r.json()["detail"]
    r = httpx.post(url, headers=headers(), data={"model": MODEL}, files={"file": ("evil.sh", b"#!/bin/sh\n")})
    assert r.status_code == 415 and "evil.sh" in r.json()["detail"]
    r = httpx.post(url, headers=headers(), data={"model": MODEL}, files={"file": ("broken.tif", b"not a tiff")})
    assert r.status_code == 400 and r.json()["detail"].startswith("broken.tif: ")
    assert "Traceback" not in r.text
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../escaped.png", b"x")
    r = httpx.post(url, headers=headers(), data={"model": MODEL}, files={"file": ("evil.zip", evil.read_bytes())})
    assert r.status_code == 400 and "unsafe path" in r.json()["detail"]
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:  # 17 MB of zeros in a few kB
        for i in range(2):
            zf.writestr(f"s{i}.png", b"\0" * ((17 << 20) // 2))
    assert bomb.stat().st_size < 1 << 20
    r = httpx.post(url, headers=headers(), data={"model": MODEL}, files={"file": ("bomb.zip", bomb.read_bytes())})
    assert r.status_code == 413 and "unpacks to" in r.json()["detail"]
    assert not list(server.state.rglob("escaped.png")) and not (server.root / "escaped.png").exists()
    # nothing of the refused submissions is left in the state folder
    known = {j["id"] for user in TOKENS for j in httpx.get(server.url + "/jobs", headers=headers(user)).json()}
    assert not [p.name for p in (server.state / "jobs").iterdir() if p.name not in known]


def test_oversized_upload_gets_413(server):
    big = b"\0" * (3 << 20)  # the server was started with --max-upload-mb 2
    r = httpx.post(server.url + "/jobs", headers=headers(), data={"model": MODEL},
                   files={"file": ("big.npy", big)})
    assert r.status_code == 413 and "upload limit" in r.json()["detail"]

    def chunks():  # no Content-Length (chunked): counted as it arrives
        yield (b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.npy\"\r\n"
               b"Content-Type: application/octet-stream\r\n\r\n")
        for _ in range(3):
            yield b"\0" * (1 << 20)
        yield b"\r\n--xyz--\r\n"

    r = httpx.post(server.url + "/jobs", headers={**headers(), "Content-Type": "multipart/form-data; boundary=xyz"},
                   content=chunks())
    assert r.status_code == 413, r.text


def test_package_upload_checks_sha256_and_traversal(server, client, tmp_path, tiny_package_2d):
    from synapse_bmz.packaging.checks import zip_package
    from synapse_bmz.zoo.registry import sha256_file

    z = zip_package(tiny_package_2d, tmp_path / "pkg.zip")
    digest = sha256_file(z)
    url = server.url + "/models"
    r = httpx.post(url, headers=headers(), data={"name": "uploaded_ves", "sha256": "0" * 64},
                   files={"file": ("pkg.zip", z.read_bytes())})
    assert r.status_code == 400 and "sha256" in r.json()["detail"]
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../evil.yaml", b"type: model")
    r = httpx.post(url, headers=headers(), data={"name": "evil", "sha256": sha256_file(evil)},
                   files={"file": ("evil.zip", evil.read_bytes())})
    assert r.status_code in (400, 413) and not (server.root / "evil.yaml").exists()
    assert z.stat().st_size < 2 << 20
    r = httpx.post(url, headers=headers(), data={"name": "uploaded_ves", "sha256": digest},
                   files={"file": ("pkg.zip", z.read_bytes())})
    assert r.status_code == 201 and "uploaded_ves" in {m["name"] for m in client.models()}
    r = httpx.post(url, headers=headers(), data={"name": "uploaded_ves", "sha256": digest},
                   files={"file": ("pkg.zip", z.read_bytes())})
    assert r.status_code == 400 and "exists" in r.json()["detail"]
    big = b"\0" * (3 << 20)
    r = httpx.post(url, headers=headers(), data={"name": "big", "sha256": "0" * 64}, files={"file": ("b.zip", big)})
    assert r.status_code == 413


def test_served_schema_is_the_committed_one(server):
    from synapse_bmz.serve.openapi import COMMITTED, dumps

    served = httpx.get(server.url + "/openapi.json").json()
    assert dumps(served) == COMMITTED.read_text(), "run: python -m synapse_bmz.serve.openapi --write"


def test_schemathesis_finds_no_server_errors(tmp_path):
    """Property-based requests from the committed schema; its own server, as it queues real jobs."""
    from synapse_bmz.serve.openapi import COMMITTED

    srv = Server(tmp_path / "srv", extra=["--max-upload-mb", "2", "--allow-package-upload",
                                          "--max-queued-jobs", "5"], workers=1)
    shutil.copy(CROP, srv.data / "crop.tif")
    srv.start()
    try:
        cmd = [str(Path(sys.executable).with_name("schemathesis")), "run", str(COMMITTED), "--url", srv.url,
               "-H", f"Authorization: Bearer {TOKENS['bob']}", "--checks", "not_a_server_error",
               "--max-examples", "15", "--phases", "examples,coverage,fuzzing", "--max-time", "30",
               "--exclude-path", "/jobs/{job_id}/events", "--workers", "1"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    finally:
        srv.stop()
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "Fuzzing" in r.stdout and "failed" not in r.stdout.split("WARNINGS")[0], r.stdout[-2000:]
    assert "Internal Server Error" not in srv.log.read_text()


def test_queued_jobs_per_user_are_bounded(tmp_path):
    srv = Server(tmp_path / "srv", extra=["--max-queued-jobs", "2"], workers=1)
    shutil.copy(CROP, srv.data / "crop.tif")
    srv.start()
    try:
        codes = [httpx.post(srv.url + "/jobs", headers=headers(), data={"model": MODEL, "path": "crop.tif"}).status_code
                 for _ in range(4)]
        assert codes[:2] == [202, 202] and 429 in codes[2:], codes
        r = httpx.post(srv.url + "/jobs", headers=headers("bob"), data={"model": MODEL, "path": "crop.tif"})
        assert r.status_code == 202  # the limit is per user
    finally:
        srv.stop()


# -- restart ----------------------------------------------------------------------------------
def test_server_killed_mid_job_resumes_to_identical_output(tmp_path):
    srv = Server(tmp_path / "srv", workers=1)
    big = _write_tif(srv.data / "big.tif", np.tile(tifffile.imread(CROP)[0], (2, 2)))
    tile = {"tile": [304, 304]}  # 12 tiles: some finished before the kill, the rest after the restart
    ref = local_run([big], tmp_path / "local", tile=tile["tile"])["big"]
    srv.start()
    try:
        from synapse_bmz.client import Client

        with Client(srv.url, TOKENS["alice"]) as c:
            job_id = c.submit(MODEL, path="big.tif", options=tile)
            queued = c.submit(MODEL, path="big.tif", options=tile)
            wait_state(srv.url, job_id, ("running",), pred=lambda j: j["stage"] == "predict" and j["done"] >= 1)
        workers = srv.worker_pids()
        srv.kill()
        assert workers and not any(os.path.exists(f"/proc/{p}") and open(f"/proc/{p}/stat").read().split()[2] != "Z"
                                   for p in workers), "workers outlived the killed server"
        orphan = srv.state / "jobs" / "0123456789abcdef0123456789abcdef"  # a submission killed mid-upload
        (orphan / "input").mkdir(parents=True)
        (orphan / "input" / "half.tif").write_bytes(b"II*\0")
        srv.start()
        assert not orphan.exists()
        with Client(srv.url, TOKENS["alice"]) as c:
            job = c.wait(job_id, timeout_s=180)
            assert job["attempts"] == 2 and job["result"]["blocks_computed"] < job["result"]["blocks_total"]
            assert_same_outputs(ref, c.download(job_id, tmp_path / "remote"))
            assert c.wait(queued, timeout_s=180)["state"] == "succeeded"
    finally:
        srv.stop()


def test_finished_outputs_expire_after_retention(tmp_path, crop_objects):
    srv = Server(tmp_path / "srv", extra=["--retention-hours", str(2.0 / 3600)], workers=1)
    shutil.copy(CROP, srv.data / "crop.tif")
    srv.start()
    try:
        from synapse_bmz.client import Client

        with Client(srv.url, TOKENS["alice"]) as c:
            job_id = c.submit(MODEL, path="crop.tif")
            c.wait(job_id, timeout_s=120)
            assert c.outputs(job_id)
            job = wait_state(srv.url, job_id, ("expired",), timeout_s=30)
            assert c.outputs(job_id) == [] and not (srv.state / "jobs" / job_id).exists()
            assert job["result"]["n_objects"] == crop_objects > 0
    finally:
        srv.stop()


def test_cli_run_server_writes_the_same_folder(server, tmp_path):
    inp = small_inputs(tmp_path / "in", 1, size=160)[0]
    ref = local_run([inp], tmp_path / "local")[inp.stem]
    tok = tmp_path / "tok"
    tok.write_text(TOKENS["alice"] + "\n")
    cmd = [sys.executable, "-m", "synapse_bmz", "run", MODEL, str(inp), "-o", str(tmp_path / "remote"),
           "--server", server.url, "--token-file", str(tok)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert_same_outputs(ref, tmp_path / "remote" / inp.stem)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "output exists" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(cmd[:-2] + ["--cluster", "local:2"], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "SYNAPSE_BMZ_TOKEN": TOKENS["alice"]})
    assert r.returncode == 2 and "--cluster: not used with --server" in r.stderr
    bad = tmp_path / "bad"
    bad.write_text("not-a-valid-token-123456\n")
    r = subprocess.run(cmd[:-1] + [str(bad), "--overwrite"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "401" in r.stderr and "invalid bearer token" in r.stderr


def test_serve_option_errors_are_one_line(tmp_path):
    base = [sys.executable, "-m", "synapse_bmz", "serve", "--state", str(tmp_path / "st")]
    for extra, words in [(["--models", str(tmp_path / "nope")], "--models"),
                         (["--token-file", str(tmp_path / "nope")], "--token-file"),
                         (["--data-root", str(tmp_path / "nope")], "--data-root"),
                         (["--workers", "0"], "--workers")]:
        r = subprocess.run(base + extra, capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    short = tmp_path / "short"
    short.write_text("alice abc\n")
    r = subprocess.run(base + ["--token-file", str(short)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "shorter than 16" in r.stderr


def test_killed_worker_is_replaced_and_its_job_resumes(server, client, tmp_path):
    big = _write_tif(server.data / "big2.tif", np.tile(tifffile.imread(CROP)[1], (2, 2)))
    tile = [304, 304]
    ref = local_run([big], tmp_path / "local", tile=tile)["big2"]
    job_id = client.submit(MODEL, path="big2.tif", options={"tile": tile})
    wait_state(server.url, job_id, ("running",), pred=lambda j: j["stage"] == "predict" and j["done"] >= 1)
    before = server.worker_pids()
    for pid in before:  # the one running the job among them
        os.kill(pid, 9)
    job = client.wait(job_id, timeout_s=180)
    assert job["attempts"] == 2 and job["result"]["blocks_computed"] < job["result"]["blocks_total"], job
    assert_same_outputs(ref, client.download(job_id, tmp_path / "remote"))
    after = server.worker_pids()
    assert len(after) == len(before) and not set(after) & set(before)


def test_cluster_jobs_run_on_dask_with_the_same_output(tmp_path):
    srv = Server(tmp_path / "srv", extra=["--cluster", "local:1"], workers=1)
    shutil.copy(CROP, srv.data / "crop.tif")
    ref = local_run([srv.data / "crop.tif"], tmp_path / "local")["crop"]
    srv.start()
    try:
        from synapse_bmz.client import Client

        with Client(srv.url, TOKENS["alice"]) as c:
            job_id = c.submit(MODEL, path="crop.tif")
            c.wait(job_id, timeout_s=300)
            got = c.download(job_id, tmp_path / "remote")
        assert json.loads((got / "provenance.json").read_text())["executor"] == "dask"
        assert_same_outputs(ref, got)
    finally:
        srv.stop()


def test_job_errors_are_the_runners_one_line(server, client):
    job_id = client.submit(MODEL, path="crop.tif", options={"tile": [64, 64]})
    job = client.wait(job_id, timeout_s=120, raise_on_error=False)
    assert job["state"] == "failed" and "use at least 112,112" in job["error"], job
    assert "\n" not in job["error"] and "Traceback" not in job["error"]
    with pytest.raises(Exception, match="use at least 112,112"):
        client.wait(job_id, timeout_s=10)
    assert client.outputs(job_id) == []


def test_cancel_after_last_progress_event_is_not_lost(tmp_path):
    """A cancel that reaches a running job after its last progress event still wins over success."""
    from synapse_bmz.serve.store import CANCELLED, RUNNING, SUCCEEDED, JobStore

    store = JobStore(tmp_path / "state")
    try:
        a = store.add("alice", "run", MODEL, {}, input_name="a.tif")
        b = store.add("alice", "run", MODEL, {}, input_name="b.tif")
        assert store.claim(1).id == a.id and store.claim(1).id == b.id
        assert store.request_cancel(a.id) == RUNNING
        assert store.finish_succeeded(a.id, {"n_objects": 1}) is False
        assert store.get(a.id).state == RUNNING  # left for the worker to clean up and finish as cancelled
        assert store.finish_succeeded(b.id, {"n_objects": 2}) is True
        job = store.get(b.id)
        assert job.state == SUCCEEDED and job.result == {"n_objects": 2} and job.error is None
        store.finish(a.id, CANCELLED, error="cancelled by request")
        assert store.get(a.id).state == CANCELLED
    finally:
        store.close()
