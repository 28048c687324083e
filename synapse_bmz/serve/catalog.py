"""The packages a server offers: the folders of one configured model folder, nothing else.

Names are looked up only among the sub-folders of ``--models`` that hold an
RDF, so a request can never make the server load a URL, a zip from
elsewhere or a path outside that folder. With ``--allow-package-upload`` a
zip may be added; it is sha256-checked against what the uploader declared,
extracted with the path-traversal guard, validated, and renamed into place.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List

from ..errors import ModelError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class Catalog:
    """Packages in ``models_dir`` (one sub-folder each)."""

    def __init__(self, models_dir: Path):
        self.models_dir = Path(models_dir)

    def packages(self) -> Dict[str, Path]:
        """Name -> RDF path."""
        from ..zoo.registry import _rdf_in

        found: Dict[str, Path] = {}
        if not self.models_dir.is_dir():
            return found
        for sub in sorted(self.models_dir.iterdir()):
            rdf = _rdf_in(sub) if sub.is_dir() and not sub.name.startswith(".") else None
            if rdf is not None:
                found[sub.name] = rdf
        return found

    def names(self) -> List[str]:
        return sorted(self.packages())

    def rdf(self, name: str) -> Path:
        """The RDF of package ``name``.

        Raises
        ------
        ModelError
            ``name`` is not a package of this server (the message lists those that are).
        """
        known = self.packages()
        if not _NAME.match(name or "") or name not in known:
            raise ModelError(f"{name}: unknown model (this server has: {', '.join(sorted(known)) or 'none'})")
        return known[name]

    def add_zip(self, zip_path: Path, name: str, sha256: str) -> Path:
        """Install an uploaded package zip as ``models_dir/name`` and return its RDF.

        Raises
        ------
        ModelError
            Bad name, sha256 mismatch, an existing package of that name, an unsafe
            archive member, no RDF at the zip's top level, or a package that fails to load.
        """
        from ..zoo.registry import RDF_NAMES, load_model, safe_extract, sha256_file

        if not _NAME.match(name or ""):
            raise ModelError(f"{name!r}: package names are letters, digits, '_', '-', '.' (at most 100)")
        digest = sha256_file(zip_path)
        if digest != (sha256 or "").lower():
            raise ModelError(f"{name}: uploaded zip has sha256 {digest[:12]}..., not the declared {str(sha256)[:12]}...")
        dest = self.models_dir / name
        if dest.exists():
            raise ModelError(f"{name}: a package of that name exists on this server")
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=self.models_dir))
        try:
            import zipfile

            try:
                safe_extract(zip_path, tmp)
            except zipfile.BadZipFile as e:
                raise ModelError(f"{name}: not a valid zip: {e}") from None
            if not any((tmp / n).is_file() for n in RDF_NAMES):
                raise ModelError(f"{name}: the zip has no rdf.yaml / bioimageio.yaml at its top level")
            load_model(tmp)  # validates the RDF and checks every weight's sha256
            tmp.rename(dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return self.rdf(name)
