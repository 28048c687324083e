"""Block jobs of block-wise postprocessing (see `synapse_bmz.distributed.executors`).

``LabelJob`` runs the recipe on each block's read region and writes anchor
ids (global, identical for every block that sees an object whole) into an
int64 store, keeping the block's anchors with its done marker. ``RelabelJob``
maps anchors to 1..N through the sorted table of all anchors, block by block,
into the labels store. Both only read and write their own blocks, so they run
serially or on dask workers alike and give the same labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from postprocessing.blocks import BlockGrid
from postprocessing.blockwise import label_block, relabel_block


@dataclass
class LabelJob:
    key: str
    recipe: str
    params: Dict[str, Any]
    voxel_size_nm: Tuple[float, ...]
    grid: BlockGrid
    prediction: Any
    anchors: Any
    markers: Any = None

    def setup(self):
        return None

    def run(self, state, block_ids: Sequence[int]) -> np.ndarray:
        found = []
        for b in block_ids:
            block = self.grid[b]
            ids = label_block(self.recipe, self.prediction, self.voxel_size_nm, self.params, block,
                              self.grid.shape, self.anchors)
            if self.markers is not None:
                self.markers.mark(b, ids)
            found.append(ids)
        return np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)

    def describe(self, block_ids: Sequence[int]) -> str:
        return self.grid[block_ids[0]].describe()


@dataclass
class RelabelJob:
    key: str
    grid: BlockGrid
    anchors_in: Any
    table: np.ndarray
    out: Any
    markers: Optional[Any] = None

    def setup(self):
        return None

    def run(self, state, block_ids: Sequence[int]) -> int:
        for b in block_ids:
            relabel_block(self.anchors_in, self.table, self.grid[b], self.out)
            if self.markers is not None:
                self.markers.mark(b)
        return len(block_ids)

    def describe(self, block_ids: Sequence[int]) -> str:
        return self.grid[block_ids[0]].describe()
