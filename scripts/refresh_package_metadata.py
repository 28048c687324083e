"""Give shipped packages today's upload metadata without retraining.

Runs `synapse_bmz.packaging.refresh.refresh_package` on each package folder
(default: every folder of model_packages/): id, version, git_repo, authors with
affiliation, citations with DOIs, pytorch_version = the oldest tested torch, and
sample tensors from the package's own torchscript; weights and test tensors
stay as they are. ``--rehash train.yaml`` recomputes the sha256 of an attachment
edited on purpose (a ``data.citation`` added); ``--absolute-tolerance`` sets the
RDF's reproducibility tolerance (synaptic_partners: 1e-3, its direction vectors
move by up to 4.5e-4 under bioimageio.core's float32 normalisation).

Usage: ``python scripts/refresh_package_metadata.py [--rehash FILE] [--absolute-tolerance T] [NAME_OR_FOLDER ...]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    from synapse_bmz.packaging.refresh import refresh_package

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("packages", nargs="*", help="package names (model_packages/NAME) or folders")
    ap.add_argument("--rehash", action="append", default=[], help="attachment whose sha256 is recomputed")
    ap.add_argument("--absolute-tolerance", type=float, help="new reproducibility absolute tolerance")
    args = ap.parse_args(argv)
    folders = [Path(p) if Path(p).is_dir() else REPO / "model_packages" / p for p in args.packages] or sorted(
        p.parent for p in (REPO / "model_packages").glob("*/rdf.yaml"))
    for folder in folders:
        rdf = refresh_package(folder, rehash=args.rehash, absolute_tolerance=args.absolute_tolerance)
        size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
        print(f"{rdf}  ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
