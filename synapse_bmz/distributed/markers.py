"""Done markers: which blocks of a stage are finished, kept beside the output store.

A marker is a small file ``<root>/<stage>/<block id>.npy`` written *after*
the block's data, so a block whose marker exists is complete (a run killed
mid-write leaves no marker and the block is recomputed). A marker may carry
a small array (e.g. the instance anchors a postprocessing block found),
which later stages read back without recomputing the block.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Set

import numpy as np

__all__ = ["DoneMarkers"]


class DoneMarkers:
    """Markers of one stage of one run.

    Parameters
    ----------
    root : str or Path
        Folder that holds the markers of every stage (inside the run's
        partial output folder); created on first use.
    stage : str
        ``"predict"``, ``"label"``, ``"relabel"``...
    """

    def __init__(self, root: str | Path, stage: str):
        self.folder = Path(root) / stage
        self.stage = stage

    def mark(self, block_id: int, payload: Optional[np.ndarray] = None) -> None:
        """Record block ``block_id`` as finished (atomically: temp file, then rename)."""
        from analysis._atomic import write_atomic

        self.folder.mkdir(parents=True, exist_ok=True)
        data = np.zeros(0, np.int64) if payload is None else np.asarray(payload)

        def save(tmp):
            with open(tmp, "wb") as f:
                np.save(f, data)

        write_atomic(self.folder / f"{int(block_id)}.npy", save)

    def done(self) -> Set[int]:
        """Ids of the finished blocks."""
        if not self.folder.is_dir():
            return set()
        return {int(p.stem) for p in self.folder.glob("*.npy") if p.stem.isdigit()}

    def payloads(self) -> Dict[int, np.ndarray]:
        """Block id -> the array stored with its marker."""
        return {int(p.stem): np.load(p, allow_pickle=False) for p in self.folder.glob("*.npy") if p.stem.isdigit()}

    def __reduce__(self):
        return (DoneMarkers, (self.folder.parent, self.stage))
