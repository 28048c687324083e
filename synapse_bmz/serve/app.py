"""The HTTP API of ``synapse-bmz serve`` (FastAPI): models, jobs, outputs.

A thin layer: jobs are rows of `JobStore`; worker processes run them with
the same runner as ``synapse-bmz run`` (`synapse_bmz.serve.worker`). Every
route but ``/health`` needs ``Authorization: Bearer TOKEN``; a user sees only
their own jobs (another user's job answers 404, as an unknown one does).
Errors are RFC 9457 problem details (``application/problem+json``) with a
one-line ``detail`` and never a stack trace.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from fastapi import Depends, FastAPI, File, Form, Query, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import InputError, ModelError, SynapseBmzError
from .catalog import Catalog
from .options import JobOptions
from .security import confine, safe_filename, user_for
from .store import CANCELLED, EXPIRED, QUEUED, RUNNING, SUCCEEDED, TERMINAL, Job, JobStore

UPLOAD_SUFFIXES = (".tif", ".tiff", ".mrc", ".rec", ".npy", ".zip")


@dataclass
class ServeConfig:
    """What ``synapse-bmz serve`` was started with (paths resolved)."""

    models_dir: Path
    state_dir: Path
    tokens: Dict[str, str]
    data_root: Optional[Path] = None
    max_upload_bytes: int = 1 << 30
    retention_s: float = 7 * 24 * 3600.0
    allow_package_upload: bool = False
    workers: int = 1
    device: Optional[str] = None
    cluster: Optional[str] = None
    cache_size: int = 4
    max_queued_per_user: int = 1000
    sweep_interval_s: float = 60.0


class Problem(Exception):
    """An HTTP error answered as problem details."""

    def __init__(self, status: int, title: str, detail: str, headers: Optional[dict] = None):
        self.status, self.title, self.detail, self.headers = status, title, " ".join(str(detail).split()), headers
        super().__init__(detail)


def problem_response(status: int, title: str, detail: str, headers: Optional[dict] = None) -> JSONResponse:
    return JSONResponse({"type": "about:blank", "title": title, "status": status, "detail": detail},
                        status_code=status, media_type="application/problem+json", headers=headers)


class JobAccepted(BaseModel):
    id: str
    state: str
    model: str
    input: Optional[str] = None


class OutputFile(BaseModel):
    name: str
    size_bytes: Optional[int] = None
    kind: str


class UploadLimit:
    """ASGI middleware: bodies larger than the limit get 413 before they are read to the end.

    ``Content-Length`` over the limit is refused at once; a chunked body is
    counted as it arrives and cut off when it passes the limit.
    """

    def __init__(self, app, limit: int):
        self.app, self.limit = app, int(limit)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        too_big = problem_response(413, "Payload Too Large",
                                   f"request body exceeds the upload limit of {self.limit} bytes")
        if length is not None:
            try:
                if int(length) > self.limit:
                    return await too_big(scope, receive, send)
            except ValueError:
                return await problem_response(400, "Bad Request", "invalid Content-Length")(scope, receive, send)
        seen = 0
        over = {"limit": False}

        async def counted_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    over["limit"] = True
                    # the app sees the client go away; whatever it answers is replaced by the 413
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not over["limit"]:
                await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not over["limit"]:
                raise
        if over["limit"]:
            await too_big(scope, receive, send)


def create_app(cfg: ServeConfig, supervisor=None) -> FastAPI:
    """The FastAPI application; ``supervisor`` (see `synapse_bmz.serve.server`) runs the workers."""
    from contextlib import asynccontextmanager

    store = JobStore(cfg.state_dir)
    catalog = Catalog(cfg.models_dir)
    summaries: Dict[str, tuple] = {}

    @asynccontextmanager
    async def lifespan(app):
        if supervisor is not None:
            supervisor.start()
        try:
            yield
        finally:
            if supervisor is not None:
                supervisor.stop()

    app = FastAPI(title="synapse-bmz", version=__version__, lifespan=lifespan,
                  description="Every synapse-bmz model package behind an authenticated job API. "
                              "Sizes are in nm, axes in (z, y, x) order.")
    app.state.store, app.state.catalog, app.state.cfg = store, catalog, cfg
    app.add_middleware(UploadLimit, limit=cfg.max_upload_bytes)
    bearer = HTTPBearer(auto_error=False, description="a token from the server's token file")

    # -- errors: problem details, one line, no traces ------------------------------------------
    @app.exception_handler(Problem)
    async def _problem(request, exc: Problem):
        return problem_response(exc.status, exc.title, exc.detail, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request, exc: StarletteHTTPException):
        return problem_response(exc.status_code, _title(exc.status_code), str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc: RequestValidationError):
        return problem_response(422, "Unprocessable Content", _validation_line(exc.errors()))

    @app.exception_handler(Exception)
    async def _internal(request, exc: Exception):  # never a stack trace to the client
        import traceback

        traceback.print_exc()
        return problem_response(500, "Internal Server Error", f"internal error: {type(exc).__name__}")

    def user(creds: Optional[HTTPAuthorizationCredentials] = Depends(bearer)) -> str:
        header = f"{creds.scheme} {creds.credentials}" if creds else None
        name = user_for(header, cfg.tokens)
        if name is None:
            raise Problem(401, "Unauthorized", "missing or invalid bearer token",
                          headers={"WWW-Authenticate": "Bearer"})
        return name

    def own_job(job_id: str, who: str) -> Job:
        job = store.get(job_id) if len(job_id) <= 64 else None
        if job is None or job.owner != who:
            raise Problem(404, "Not Found", f"{job_id}: no such job")
        return job

    def check_quota(who: str) -> None:
        if store.active(who) >= cfg.max_queued_per_user:
            raise Problem(429, "Too Many Requests",
                          f"{cfg.max_queued_per_user} jobs of yours are queued or running; wait for some to finish")

    def model_rdf(name: str) -> Path:
        try:
            return catalog.rdf(name)
        except ModelError as e:
            raise Problem(404, "Not Found", str(e)) from None

    # -- routes ----------------------------------------------------------------------------
    @app.get("/health", tags=["service"])
    def health() -> Dict[str, Any]:
        """Liveness: no authentication."""
        return {"status": "ok", "version": __version__}

    @app.get("/models", tags=["models"])
    def models(who: str = Depends(user)) -> List[Dict[str, Any]]:
        """Every package of the server: name, task, axes, voxel size (nm), weight formats, channels."""
        from ..zoo.table import model_summary

        out = []
        for name, rdf in catalog.packages().items():
            stamp = rdf.stat().st_mtime_ns
            if name not in summaries or summaries[name][0] != stamp:
                summaries[name] = (stamp, model_summary(name, rdf))
            out.append(summaries[name][1])
        return out

    @app.get("/models/{name}", tags=["models"])
    def model(name: str, who: str = Depends(user)) -> Dict[str, Any]:
        """The package's RDF as JSON."""
        from ..zoo.registry import read_rdf

        try:
            return json.loads(json.dumps(read_rdf(model_rdf(name)), default=str))
        except ModelError as e:
            raise Problem(422, "Unprocessable Content", str(e)) from None

    @app.get("/models/{name}/card", tags=["models"], response_class=PlainTextResponse)
    def card(name: str, who: str = Depends(user)) -> PlainTextResponse:
        """The model card (Markdown)."""
        from ..zoo.registry import read_rdf

        rdf = model_rdf(name)
        doc = read_rdf(rdf).get("documentation") or "README.md"
        path = (rdf.parent / str(doc)).resolve()
        if rdf.parent.resolve() not in path.parents or not path.is_file():
            raise Problem(404, "Not Found", f"{name}: the package has no model card")
        return PlainTextResponse(path.read_text(encoding="utf-8"), media_type="text/markdown")

    @app.post("/models/{name}/test", tags=["models"], status_code=202, response_model=JobAccepted)
    def test_model(name: str, who: str = Depends(user)) -> JobAccepted:
        """bioimageio.core's test of every weight format, as a job (result in the job's ``result``)."""
        model_rdf(name)
        check_quota(who)
        job = store.add(who, "test", name, {})
        return JobAccepted(id=job.id, state=job.state, model=name)

    if cfg.allow_package_upload:
        @app.post("/models", tags=["models"], status_code=201)
        def upload_package(name: str = Form(...), sha256: str = Form(...), file: UploadFile = File(...),
                           who: str = Depends(user)) -> Dict[str, Any]:
            """Add a package zip (only with ``--allow-package-upload``): sha256-checked, traversal-guarded."""
            import tempfile

            with tempfile.NamedTemporaryFile(dir=cfg.state_dir, suffix=".zip") as tmp:
                shutil.copyfileobj(file.file, tmp)
                tmp.flush()
                try:
                    catalog.add_zip(Path(tmp.name), name, sha256)
                except ModelError as e:
                    raise Problem(400, "Bad Request", str(e)) from None
            return {"name": name}

    @app.post("/jobs", tags=["jobs"], status_code=202, response_model=JobAccepted)
    def submit(model: str = Form(..., description="package name (see GET /models)"),
               options: str = Form("{}", description="JSON object of job options (JobOptions)"),
               path: Optional[str] = Form(None, description="input path relative to the server's data root"),
               file: Optional[UploadFile] = File(None, description="input upload: tif, mrc/rec, npy or a zip of slices"),
               who: str = Depends(user)) -> JobAccepted:
        """Queue a job: ``model``, and the input as an upload (``file``) or a ``path`` under the data root."""
        model_rdf(model)
        opts = _parse_options(options)
        check_quota(who)
        if (file is None) == (path is None):
            raise Problem(400, "Bad Request", "give exactly one input: an upload ('file') or a 'path' under the data root")
        import uuid

        job_id = uuid.uuid4().hex
        job_dir = store.job_dir(job_id)
        try:
            if path is not None:
                try:
                    target = confine(cfg.data_root, path)
                except InputError as e:
                    raise Problem(400, "Bad Request", str(e)) from None
                input_path, input_name = str(target), safe_filename(path.rpartition("/")[2])
            else:
                input_path, input_name = _save_upload(file, job_dir / "input", 8 * cfg.max_upload_bytes)
            _check_readable(input_path, opts, shown=input_name)
        except BaseException:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise
        job = store.add(who, "run", model, opts.model_dump(), input_name=input_name, input_path=input_path,
                        job_id=job_id)
        return JobAccepted(id=job.id, state=job.state, model=model, input=input_name)

    @app.get("/jobs", tags=["jobs"])
    def list_jobs(limit: int = Query(100, ge=1, le=1000, description="how many of the most recent jobs"),
                  who: str = Depends(user)) -> List[Dict[str, Any]]:
        """The caller's ``limit`` most recent jobs (default 100, at most 1000), oldest first."""
        return [j.public() for j in store.list(owner=who, limit=limit)]

    @app.get("/jobs/{job_id}", tags=["jobs"])
    def get_job(job_id: str, who: str = Depends(user)) -> Dict[str, Any]:
        """State, progress (stage, done of total, fraction), error message, result summary."""
        return own_job(job_id, who).public()

    @app.get("/jobs/{job_id}/events", tags=["jobs"])
    async def events(job_id: str, timeout_s: float = 3600.0, who: str = Depends(user)) -> StreamingResponse:
        """Server-sent events: ``progress`` whenever the job changes, ``end`` when it is finished."""
        own_job(job_id, who)
        timeout_s = min(max(float(timeout_s), 0.0), 24 * 3600.0)

        async def stream():
            last, t0, beat = None, time.monotonic(), time.monotonic()
            while True:
                job = store.get(job_id)
                if job is None:
                    return
                now = (job.state, job.stage, job.done, job.total, job.error)
                if now != last:
                    last = now
                    kind = "end" if job.state in TERMINAL else "progress"
                    yield f"event: {kind}\ndata: {json.dumps(job.public())}\n\n"
                    if kind == "end":
                        return
                if time.monotonic() - t0 > timeout_s:
                    yield "event: timeout\ndata: {}\n\n"
                    return
                if time.monotonic() - beat > 10:
                    beat = time.monotonic()
                    yield ": keep-alive\n\n"
                await asyncio.sleep(0.01)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.get("/jobs/{job_id}/outputs", tags=["jobs"], response_model=List[OutputFile])
    def outputs(job_id: str, who: str = Depends(user)) -> List[OutputFile]:
        """Output files of a finished job; folders (the prediction's zarr) are offered as ``NAME.zip``."""
        job = own_job(job_id, who)
        return [OutputFile(name=n, size_bytes=s, kind=k) for n, (p, s, k) in _outputs(store, job).items()]

    @app.get("/jobs/{job_id}/outputs/{file_name}", tags=["jobs"])
    def output_file(job_id: str, file_name: str, who: str = Depends(user)) -> FileResponse:
        """One output file (folders zipped on first request)."""
        job = own_job(job_id, who)
        files = _outputs(store, job)
        if file_name not in files:
            raise Problem(404, "Not Found", f"{file_name}: no such output of job {job_id}")
        path, _, kind = files[file_name]
        if kind == "zip":
            path = _zip_of(store, job, path)
        return FileResponse(path, filename=file_name, media_type="application/octet-stream")

    @app.delete("/jobs/{job_id}", tags=["jobs"])
    def delete_job(job_id: str, who: str = Depends(user)) -> Dict[str, Any]:
        """Cancel a queued or running job, or delete a finished one's outputs."""
        job = own_job(job_id, who)
        if job.state in (QUEUED, RUNNING):
            # a queued job is cancelled now; a running one at its worker's next progress event,
            # and the worker removes its files
            if store.request_cancel(job.id) == CANCELLED:
                shutil.rmtree(store.job_dir(job.id), ignore_errors=True)
        else:
            if job.state != EXPIRED:
                store.finish(job.id, EXPIRED, error="deleted by request", result=job.result)
            shutil.rmtree(store.job_dir(job.id), ignore_errors=True)
        return store.get(job.id).public()

    return app


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _validation_line(errors) -> str:
    parts = []
    for e in list(errors)[:3]:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body",))
        parts.append(f"{loc}: {e.get('msg', 'invalid')}" if loc else str(e.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"


def _parse_options(text: str) -> JobOptions:
    try:
        data = json.loads(text or "{}")
    except ValueError as e:
        raise Problem(422, "Unprocessable Content", f"options: not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise Problem(422, "Unprocessable Content", "options: must be a JSON object")
    try:
        return JobOptions(**data)
    except ValidationError as e:
        raise Problem(422, "Unprocessable Content", "options." + _validation_line(e.errors())) from None
    except TypeError as e:
        raise Problem(422, "Unprocessable Content", f"options: {e}") from None


def _save_upload(file: UploadFile, folder: Path, max_unpacked_bytes: int) -> tuple:
    """Store an upload under the job folder; a zip of slices becomes a folder (traversal-guarded,
    at most ``max_unpacked_bytes`` once unpacked, so a small zip cannot fill the disk)."""
    name = safe_filename(file.filename)
    suffix = Path(name).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise Problem(415, "Unsupported Media Type",
                      f"{name}: uploads are {', '.join(UPLOAD_SUFFIXES)} (a zip holds PNG/TIFF slices)")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    with open(target, "wb") as out:
        shutil.copyfileobj(file.file, out, 1 << 20)
    if suffix != ".zip":
        return str(target), name
    import zipfile

    from ..zoo.registry import safe_extract

    stack = folder / Path(name).stem
    try:
        with zipfile.ZipFile(target) as zf:
            unpacked = sum(m.file_size for m in zf.infolist())
        if unpacked > max_unpacked_bytes:
            raise Problem(413, "Payload Too Large",
                          f"{name}: unpacks to {unpacked} bytes, more than {max_unpacked_bytes} (8x the upload limit)")
        safe_extract(target, stack)
    except zipfile.BadZipFile as e:
        raise Problem(400, "Bad Request", f"{name}: not a valid zip: {e}") from None
    except ModelError as e:
        raise Problem(400, "Bad Request", str(e)) from None
    finally:
        target.unlink(missing_ok=True)
    entries = [p for p in stack.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir():  # a zip of a folder of slices
        stack = entries[0]
    return str(stack), name


def _check_readable(input_path: str, opts: JobOptions, shown: str) -> None:
    """Read the input's header now, so a bad file is a 400 at submission, not a failed job."""
    from .. import api

    try:
        api.FileInput(input_path, tuple(opts.voxel_size_nm) if opts.voxel_size_nm else None).volume()
    except SynapseBmzError as e:
        raise Problem(400, "Bad Request", f"{shown}: {_without_path(str(e), input_path)}") from None
    except Exception as e:  # unreadable data of an unexpected kind
        raise Problem(400, "Bad Request", f"{shown}: cannot read: {type(e).__name__}") from None


def _without_path(message: str, path: str) -> str:
    """Server-side paths are not shown to clients."""
    for p in (path, str(Path(path).parent)):
        message = message.replace(p + ": ", "").replace(p, "")
    return message.strip(" :")


def _outputs(store: JobStore, job: Job) -> Dict[str, tuple]:
    """Output name -> (path, size, kind) for a succeeded job (empty otherwise)."""
    if job.state != SUCCEEDED or not job.result:
        return {}
    from .worker import output_root

    folder = output_root(store, job.id) / str(job.result.get("name", ""))
    if not folder.is_dir():
        return {}
    out = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            out[p.name + ".zip"] = (p, None, "zip")
        elif p.is_file():
            out[p.name] = (p, p.stat().st_size, "file")
    return out


def _zip_of(store: JobStore, job: Job, folder: Path) -> Path:
    """``STATE/jobs/<id>/zips/NAME.zip`` of an output folder, written once, atomically."""
    import zipfile

    from ..io.atomic import write_atomic

    target = store.job_dir(job.id) / "zips" / (folder.name + ".zip")
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:  # zarr chunks are compressed already
            for p in sorted(folder.rglob("*")):
                if p.is_file():
                    zf.write(p, str(Path(folder.name) / p.relative_to(folder)))

    return write_atomic(target, write)
