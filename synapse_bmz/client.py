"""Python client of ``synapse-bmz serve``, and ``synapse-bmz run --server``.

::

    from synapse_bmz.client import Client
    c = Client("http://127.0.0.1:8000", token)
    job = c.submit("vesicles_2d", "crop.tif", options={"voxel_size_nm": [5, 5]})
    c.wait(job, progress=print)
    c.download(job, "out/")          # out/crop/ as `synapse-bmz run` writes it

Errors of the server arrive as problem details and are raised as `ServerError`
with the server's one-line ``detail``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Union

from .errors import OptionError, SynapseBmzError

UPLOADABLE = (".tif", ".tiff", ".mrc", ".rec", ".npy")


class ServerError(SynapseBmzError):
    """The server refused a request or a job failed; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0):
        self.status = status
        super().__init__(message)


class Client:
    """A connection to one server with one bearer token.

    Parameters
    ----------
    url : str
        ``http://host:port``.
    token : str
        A token from the server's token file.
    timeout_s : float
        Per request (uploads and downloads stream, so this bounds silence, not size).
    """

    def __init__(self, url: str, token: str, timeout_s: float = 120.0):
        import httpx

        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"},
                                  timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- plumbing --------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kw):
        import httpx

        try:
            r = self._http.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise ServerError(f"{self.url}: cannot reach the server: {type(e).__name__}: {e}") from None
        if r.status_code >= 400:
            raise ServerError(f"{self.url}{path}: {r.status_code} {_detail(r)}", r.status_code)
        return r

    # -- models ----------------------------------------------------------------------------
    def health(self) -> Dict[str, Any]:
        return self._request("GET", "/health").json()

    def models(self) -> List[Dict[str, Any]]:
        """Name, task, axes, voxel size (nm), weight formats and channels of every package."""
        return self._request("GET", "/models").json()

    def model(self, name: str) -> Dict[str, Any]:
        """The RDF of ``name``."""
        return self._request("GET", f"/models/{name}").json()

    def card(self, name: str) -> str:
        return self._request("GET", f"/models/{name}/card").text

    def test_model(self, name: str) -> str:
        """Start bioimageio.core's test of ``name`` as a job; returns the job id."""
        return self._request("POST", f"/models/{name}/test").json()["id"]

    # -- jobs ------------------------------------------------------------------------------
    def submit(self, model: str, input: Union[str, Path, None] = None, *, path: Optional[str] = None,
               options: Optional[Dict[str, Any]] = None, upload_name: Optional[str] = None) -> str:
        """Queue a job and return its id.

        Parameters
        ----------
        model : str
            A package name of the server.
        input : str or Path, optional
            A local tif/mrc/rec/npy file or a folder of PNG/TIFF slices (zipped on the fly); uploaded.
        path : str, optional
            Instead of ``input``: a file under the server's data root, relative to it.
        options : dict, optional
            Job options (`synapse_bmz.serve.options.JobOptions`): ``tile``, ``halo``,
            ``voxel_size_nm``, ``postprocess``, ``label_format``, ``recipe_params``, ...
        upload_name : str, optional
            File name the server sees (its output folder is named after it).
        """
        data = {"model": model, "options": json.dumps(options or {})}
        if (input is None) == (path is None):
            raise OptionError("input", "give exactly one of a local input or a server-side path")
        if path is not None:
            data["path"] = path
            return self._request("POST", "/jobs", data=data).json()["id"]
        local = Path(input)
        with _upload_file(local) as (file, suffix):
            name = upload_name or (local.name if local.is_file() else local.name + ".zip")
            if not name.lower().endswith(suffix):
                name += suffix
            with open(file, "rb") as f:
                return self._request("POST", "/jobs", data=data,
                                     files={"file": (name, f, "application/octet-stream")}).json()["id"]

    def job(self, job_id: str) -> Dict[str, Any]:
        return self._request("GET", f"/jobs/{job_id}").json()

    def jobs(self, limit: int = 100) -> List[Dict[str, Any]]:
        """The caller's ``limit`` most recent jobs (at most 1000), oldest first."""
        return self._request("GET", "/jobs", params={"limit": int(limit)}).json()

    def events(self, job_id: str, timeout_s: float = 3600.0) -> Iterator[tuple]:
        """``(event, job)`` pairs of the job's server-sent events until it finishes."""
        import httpx

        try:
            with self._http.stream("GET", f"/jobs/{job_id}/events", params={"timeout_s": timeout_s},
                                   timeout=httpx.Timeout(self._http.timeout.connect, read=timeout_s + 30)) as r:
                if r.status_code >= 400:
                    r.read()
                    raise ServerError(f"{self.url}/jobs/{job_id}/events: {r.status_code} {_detail(r)}", r.status_code)
                event = None
                for line in r.iter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        yield event, json.loads(line[5:].strip() or "{}")
                        if event in ("end", "timeout"):
                            return
        except httpx.HTTPError as e:
            raise ServerError(f"{self.url}: lost the event stream of job {job_id}: {type(e).__name__}") from None

    def wait(self, job_id: str, progress: Optional[Callable[[Dict[str, Any]], None]] = None,
             timeout_s: float = 3600.0, raise_on_error: bool = True) -> Dict[str, Any]:
        """Block until the job is finished; ``progress(job)`` gets every update. Returns the job.

        Raises
        ------
        ServerError
            The job failed or was cancelled (its one-line error), when ``raise_on_error``;
            or it did not finish within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        job = None
        while time.monotonic() < deadline:
            try:
                for event, job in self.events(job_id, timeout_s=max(1.0, deadline - time.monotonic())):
                    if progress is not None and job:
                        progress(job)
                    if event == "end":
                        break
            except ServerError as e:
                if e.status:  # 404 and friends: not a dropped connection
                    raise
                time.sleep(0.5)  # a restarting server: reconnect until the deadline
                continue
            job = self.job(job_id)
            if job["state"] in ("succeeded", "failed", "cancelled", "expired"):
                break
        else:
            raise ServerError(f"{self.url}: job {job_id} did not finish within {timeout_s:g} s")
        if raise_on_error and job["state"] != "succeeded":
            raise ServerError(f"job {job_id} {job['state']}: {job.get('error') or 'no reason given'}")
        return job

    def outputs(self, job_id: str) -> List[Dict[str, Any]]:
        return self._request("GET", f"/jobs/{job_id}/outputs").json()

    def download(self, job_id: str, dest: Union[str, Path], name: Optional[str] = None) -> Path:
        """Write the job's outputs to ``dest/NAME/`` (the layout of ``synapse-bmz run``) and return it.

        Files arrive under a hidden temporary name that is renamed when all are
        complete; zipped folders are unpacked (refusing unsafe member paths).
        """
        from .zoo.registry import safe_extract

        job = self.job(job_id)
        if job["state"] != "succeeded":
            raise ServerError(f"job {job_id} is {job['state']}, nothing to download")
        files = self.outputs(job_id)
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        final = dest / (name or job["result"]["name"])
        tmp = dest / f".{final.name}.tmp-{secrets.token_hex(4)}"
        tmp.mkdir()
        try:
            for f in files:
                target = tmp / f["name"]
                with self._http.stream("GET", f"/jobs/{job_id}/outputs/{f['name']}") as r:
                    if r.status_code >= 400:
                        r.read()
                        raise ServerError(f"{self.url}: {f['name']}: {r.status_code} {_detail(r)}", r.status_code)
                    with open(target, "wb") as out:
                        for chunk in r.iter_bytes(1 << 20):
                            out.write(chunk)
                if f["kind"] == "zip":
                    safe_extract(target, tmp)
                    target.unlink()
            if final.exists():
                old = dest / f".{final.name}.old-{secrets.token_hex(4)}"
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return final

    def cancel(self, job_id: str) -> Dict[str, Any]:
        """Cancel a queued or running job (its outputs are removed), or delete a finished one."""
        return self._request("DELETE", f"/jobs/{job_id}").json()


def _detail(r) -> str:
    try:
        body = r.json()
        return " ".join(str(body.get("detail") or body.get("title") or body).split())
    except ValueError:
        return r.text[:200]


class _upload_file:
    """Context manager: (file to send, suffix); folders of slices are zipped into a temporary file."""

    def __init__(self, local: Path):
        self.local, self.tmp = local, None

    def __enter__(self):
        from .errors import InputError

        if self.local.is_dir():
            import zipfile

            from .io.slices import slice_files

            files = slice_files(self.local)
            if not files:
                raise InputError(self.local, "folder holds no PNG/TIFF slices to upload")
            fd, name = tempfile.mkstemp(suffix=".zip")
            os.close(fd)
            self.tmp = Path(name)
            with zipfile.ZipFile(self.tmp, "w", zipfile.ZIP_STORED) as zf:
                for f in files:
                    zf.write(f, f.name)
            return self.tmp, ".zip"
        if not self.local.is_file():
            raise InputError(self.local, "no such file or directory")
        suffix = self.local.suffix.lower()
        if suffix not in UPLOADABLE:
            raise InputError(self.local, f"cannot be uploaded as is; the server takes {', '.join(UPLOADABLE)} "
                                         "files or folders of slices")
        return self.local, suffix

    def __exit__(self, *exc):
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)


def read_token(token_file: Optional[Path]) -> str:
    """The first token of ``token_file`` (``USER TOKEN`` or ``TOKEN`` lines), else ``$SYNAPSE_BMZ_TOKEN``."""
    if token_file is not None:
        from .serve.security import read_tokens  # the server's parser: one format for both ends

        return next(iter(read_tokens(Path(token_file))))
    token = os.environ.get("SYNAPSE_BMZ_TOKEN")
    if not token:
        raise OptionError("--server", "needs a token: --token-file FILE or $SYNAPSE_BMZ_TOKEN")
    return token


def job_options(options) -> Dict[str, Any]:
    """`RunOptions` -> the JSON job options; options that only make sense locally are refused."""
    local_only = {"resume": "--resume", "cluster": "--cluster", "device": "--device",
                  "worker_memory": "--worker-memory", "postprocess_block": "postprocess_block",
                  "neurons": "--neurons"}
    for attr, flag in local_only.items():
        if getattr(options, attr, None):
            raise OptionError(flag, "not used with --server (the server decides where and how jobs run)")
    out = {"tile": options.tile, "halo": options.halo, "batch_size": options.batch_size,
           "voxel_size_nm": options.voxel_size_nm, "postprocess": options.postprocess,
           "label_format": options.label_format, "weight_format": options.weight_format,
           "test_time_augmentation": options.test_time_augmentation,
           "recipe_params": dict(options.recipe_params), "max_in_memory_voxels": options.in_memory_voxels}
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in out.items() if v is not None}


def _object_size_check(output_dir: Path) -> Optional[dict]:
    """The job's ``object_size_check`` from its downloaded ``provenance.json`` (None if it has none)."""
    try:
        return json.loads((output_dir / "provenance.json").read_text()).get("object_size_check")
    except (OSError, ValueError):
        return None


def iter_remote_run(server: str, token_file: Optional[Path], model: str, inputs: Sequence[str],
                    out_root: Path, options) -> Iterator[object]:
    """`synapse_bmz.runner.run.iter_run`, but each input runs on a server; yields RunResult/RunFailure."""
    from .io import list_inputs
    from .runner.run import RunFailure, RunResult, output_dir_for

    token = read_token(token_file)
    opts = job_options(options)
    out_root = Path(out_root)
    with Client(server, token) as client:
        client.health()
        expanded: List[str] = []
        for item in inputs:
            expanded.extend(str(p) for p in list_inputs(item))
        for path in expanded:
            t0 = time.perf_counter()
            out_dir = output_dir_for(out_root, path)
            try:
                if out_dir.exists() and not options.overwrite:
                    if options.skip_existing:
                        yield RunResult(input=path, output_dir=out_dir, prediction=None, labels=None, table=None,
                                        n_objects=None, voxels=0, predict_s=0.0, total_s=0.0, skipped=True)
                        continue
                    from .errors import OutputError

                    raise OutputError(f"{out_dir}: output exists (pass --overwrite to replace it, "
                                      "--skip-existing to keep it)")
                local = Path(path)
                job_id = client.submit(model, local, options=opts,
                                       upload_name=out_dir.name + (local.suffix if local.is_file() else ".zip"))
                job = client.wait(job_id)
                final = client.download(job_id, out_root, name=out_dir.name)
                res = job["result"]
                yield RunResult(input=path, output_dir=final, prediction=final / "prediction.ome.zarr",
                                labels=final / res["labels"] if res.get("labels") else None,
                                table=final / res["table"] if res.get("table") else None,
                                n_objects=res.get("n_objects"), voxels=int(res.get("voxels") or 0),
                                predict_s=float(res.get("predict_s") or 0.0), total_s=time.perf_counter() - t0,
                                blocks_computed=int(res.get("blocks_computed") or 0),
                                blocks_total=int(res.get("blocks_total") or 0),
                                object_size_check=_object_size_check(final))
            except SynapseBmzError as e:
                yield RunFailure(path, str(e), True, e)
