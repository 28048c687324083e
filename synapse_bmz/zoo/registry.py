"""Find and load model packages: by name, folder, ``.zip`` or RDF path.

Package names are looked up in the folders of ``$SYNAPSE_BMZ_MODEL_DIR``
(``os.pathsep``-separated), then in the packages shipped with synapse-bmz: the
checkout's ``model_packages/`` when running from one, and the same folder
installed as package data (``synapse_bmz_models``) by a wheel or an editable
install.
Zip packages are extracted once into a cache keyed by their sha256, refusing
members that would land outside it. Every weight file's sha256 is checked
against the RDF before a model is used.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..errors import ModelError
from .config import SynapseBmzConfig, read_config

RDF_NAMES = ("rdf.yaml", "bioimageio.yaml")


def model_dirs() -> List[Path]:
    """Folders searched for packages by name, in priority order.

    ``$SYNAPSE_BMZ_MODEL_DIR`` first, then the shipped packages: the checkout's
    ``model_packages/`` (when this code runs from a checkout, so code and
    packages match), then the installed package data. Missing folders and
    duplicates are dropped.
    """
    from ..paths import checkout_model_dir, installed_model_dirs

    dirs = [Path(p).expanduser() for p in os.environ.get("SYNAPSE_BMZ_MODEL_DIR", "").split(os.pathsep) if p]
    dirs.append(checkout_model_dir())
    dirs.extend(installed_model_dirs())
    out: List[Path] = []
    seen = set()
    for d in dirs:
        if d is None or not d.is_dir() or d.resolve() in seen:
            continue
        seen.add(d.resolve())
        out.append(d)
    return out


def cache_dir() -> Path:
    base = os.environ.get("SYNAPSE_BMZ_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "synapse-bmz"
    return Path(base)


def _rdf_in(folder: Path) -> Optional[Path]:
    for n in RDF_NAMES:
        if (folder / n).is_file():
            return folder / n
    return None


def available_packages() -> Dict[str, Path]:
    """Package name (folder name) -> RDF path, for every package in `model_dirs`."""
    found: Dict[str, Path] = {}
    for d in model_dirs():
        for sub in sorted(d.iterdir()):
            rdf = _rdf_in(sub) if sub.is_dir() else None
            if rdf is not None and sub.name not in found:
                found[sub.name] = rdf
    return found


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def safe_extract(zip_path: Path, dest: Path) -> None:
    """Extract a zip, refusing absolute paths and ``..`` components (path traversal)."""
    dest = dest.resolve()
    with zipfile.ZipFile(zip_path) as zf:
        for member in zf.infolist():
            target = (dest / member.filename).resolve()
            if member.filename.startswith(("/", "\\")) or (dest not in target.parents and target != dest):
                raise ModelError(f"{zip_path}: refusing unsafe path in archive: {member.filename!r}")
        zf.extractall(dest)


def _extract_into_cache(zip_path: Path, dest: Path) -> None:
    """Extract beside ``dest`` under a per-process name, then rename; never leave a partial tree.

    Leftovers of extractions killed earlier (their process is gone) are removed first,
    so failed or interrupted extractions do not make the cache grow.
    """
    import shutil

    from ..io.atomic import process_alive

    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob("*.tmp-*"):
        pid = stale.name.rpartition(".tmp-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    if dest.exists():  # a tree without an RDF: a broken earlier cache entry
        shutil.rmtree(dest, ignore_errors=True)
    tmp = dest.with_name(dest.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        safe_extract(zip_path, tmp)
        try:
            tmp.rename(dest)
        except OSError:  # another process extracted the same package first
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def resolve_package(source: str | Path) -> Path:
    """Turn a package name, folder, zip or RDF path into the path of its RDF.

    Raises
    ------
    ModelError
        When nothing matches; the message lists the known package names.
    """
    s = str(source)
    p = Path(s)
    if p.is_file() and p.suffix in (".yaml", ".yml"):
        return p
    if p.is_dir():
        rdf = _rdf_in(p)
        if rdf is None:
            raise ModelError(f"{p}: folder has no rdf.yaml / bioimageio.yaml")
        return rdf
    if p.is_file() and p.suffix == ".zip":
        try:
            digest = sha256_file(p)
            dest = cache_dir() / "packages" / digest[:16]
            if _rdf_in(dest) is None:
                _extract_into_cache(p, dest)
        except zipfile.BadZipFile as e:
            raise ModelError(f"{p}: not a valid zip package: {e}") from None
        rdf = _rdf_in(dest)
        if rdf is None:
            raise ModelError(f"{p}: zip contains no rdf.yaml / bioimageio.yaml at its top level")
        return rdf
    known = available_packages()
    if s in known:
        return known[s]
    names = ", ".join(sorted(known)) or "none installed"
    raise ModelError(f"{s}: unknown model (not a package name, folder, .zip or rdf.yaml; available: {names})")


def one_line(text: object, limit: int = 400) -> str:
    """``text`` on one line: list markers dropped, lines joined with ``; ``, cut at ``limit``."""
    parts = [ln.strip().lstrip("-").strip() for ln in str(text).splitlines()]
    line = "; ".join(p for p in parts if p)
    return line if len(line) <= limit else line[: limit - 3] + "..."


def read_rdf(rdf: Path) -> Dict[str, Any]:
    """The RDF as a dict, after checking it is YAML describing a model.

    Raises
    ------
    ModelError
        One line naming ``rdf``: unreadable, not valid YAML (with line and
        column), not a mapping, or ``type`` other than ``model``.
    """
    import yaml

    from analysis._checks import yaml_problem

    rdf = Path(rdf)
    try:
        data = yaml.safe_load(rdf.read_text(encoding="utf-8"))
    except OSError as e:
        raise ModelError(f"{rdf}: cannot read the RDF: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ModelError(f"{rdf}: not a text (UTF-8) file, so not an RDF") from None
    except yaml.YAMLError as e:
        raise ModelError(f"{rdf}: not valid YAML: {yaml_problem(e)}") from None
    if not isinstance(data, dict):
        got = "empty" if data is None else f"a {type(data).__name__}"
        raise ModelError(f"{rdf}: not a bioimage.io model RDF: the YAML is {got}, not a mapping with `type: model`")
    if data.get("type") != "model":
        raise ModelError(f"{rdf}: not a bioimage.io model RDF: `type` is {data.get('type')!r}, need 'model'")
    return data


@dataclass
class LoadedModel:
    """A validated model description with our typed config.

    Attributes
    ----------
    name : str
    rdf_path : Path
    descr : bioimageio.spec ModelDescr (format 0.5)
    config : SynapseBmzConfig or None
        None for packages without ``config.synapse_bmz`` (prediction only).
    weights_sha256 : dict of str to str
        Weight format -> verified sha256.
    """

    name: str
    rdf_path: Path
    descr: Any
    config: Optional[SynapseBmzConfig]
    weights_sha256: Dict[str, str]


def load_model(source: str | Path) -> LoadedModel:
    """Resolve, validate and hash-check a package.

    Raises
    ------
    ModelError
        Unknown source, RDF that is not YAML or not a model, invalid RDF,
        unsupported format, or a weight file whose sha256 differs from the RDF.
        The message is one line and starts with the offending file.
    """
    from bioimageio.spec import ValidationContext, load_description
    from bioimageio.spec.model import v0_5

    rdf = resolve_package(source)
    read_rdf(rdf)
    try:
        with ValidationContext(perform_io_checks=False):
            descr = load_description(rdf, format_version="latest")
    except Exception as e:  # the spec's YAML reader (ruyaml) may still refuse what PyYAML read
        raise ModelError(f"{rdf}: bioimage.io cannot read this RDF: {one_line(e)}") from None
    if not isinstance(descr, v0_5.ModelDescr):
        reason = descr.get_reason() if hasattr(descr, "get_reason") else type(descr).__name__
        raise ModelError(f"{rdf}: not a valid bioimage.io model (format 0.5): {one_line(reason)}")
    if len(descr.inputs) != 1:
        raise ModelError(f"{rdf}: models with {len(descr.inputs)} inputs are not supported (need exactly one)")
    hashes: Dict[str, str] = {}
    for fmt, entry in descr.weights.available_formats.items():
        local = rdf.parent / str(entry.source.path if hasattr(entry.source, "path") else entry.source)
        if not local.exists():
            continue
        digest = sha256_file(local)
        if entry.sha256 is not None and digest != str(entry.sha256):
            raise ModelError(f"{local}: sha256 {digest[:12]}... does not match the RDF ({str(entry.sha256)[:12]}...); refusing to load altered weights")
        hashes[fmt] = digest
    if not hashes:
        raise ModelError(f"{rdf}: none of the weight files is present beside the RDF")
    config = read_config(descr.config, str(rdf))
    name = rdf.parent.name if rdf.parent.name not in ("", ".") else str(descr.name)
    return LoadedModel(name=name, rdf_path=rdf, descr=descr, config=config, weights_sha256=hashes)
