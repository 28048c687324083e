"""Block jobs of block-wise postprocessing (see `synapse_bmz.distributed.executors`).

``LabelJob`` runs the recipe on each block's read region and writes anchor
ids (global, identical for every block that sees an object whole) into an
int64 store, keeping the block's anchors with its done marker. ``RelabelJob``
maps anchors to 1..N through the sorted table of all anchors, block by block,
into the labels store. Both only read and write their own blocks, so they run
serially or on dask workers alike and give the same labels. ``PartnerJob``
extracts the partners each block owns (post-site in its write region) and
keeps that block's table with its done marker, so a resumed run reads the
finished blocks' partners back instead of recomputing them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

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


_PARTNER_FLOATS = ("pre_z_nm", "pre_y_nm", "pre_x_nm", "post_z_nm", "post_y_nm", "post_x_nm",
                   "score", "post_volume_nm3")
_PARTNER_IDS = ("pre_id", "post_id")
#: a partner table as a plain structured array (``np.save`` without pickle): ids as int64 beside
#: a flag for a missing id, since neuron ids may use the whole int64 range
PARTNER_PAYLOAD_DTYPE = np.dtype([(c, "<f8") for c in _PARTNER_FLOATS]
                                 + [(c, "<i8") for c in _PARTNER_IDS]
                                 + [(f"{c}_missing", "?") for c in _PARTNER_IDS])


def partner_payload(table: pd.DataFrame) -> np.ndarray:
    """A partner table (`postprocessing.partners.PARTNER_COLUMNS`) as a structured array."""
    out = np.zeros(len(table), PARTNER_PAYLOAD_DTYPE)
    for c in _PARTNER_FLOATS:
        out[c] = table[c].to_numpy(float)
    for c in _PARTNER_IDS:
        ids = pd.array(table[c], dtype="Int64")
        missing = np.asarray(ids.isna())
        out[f"{c}_missing"] = missing
        out[c] = np.where(missing, 0, ids.to_numpy(dtype="int64", na_value=0))
    return out


def partner_table(payload: np.ndarray) -> pd.DataFrame:
    """The partner table of :func:`partner_payload` (the inverse)."""
    from postprocessing.partners import PARTNER_COLUMNS

    data: Dict[str, Any] = {c: np.asarray(payload[c], float) for c in _PARTNER_FLOATS}
    for c in _PARTNER_IDS:
        data[c] = pd.array(np.asarray(payload[c], np.int64), dtype="Int64")
        data[c][np.asarray(payload[f"{c}_missing"], bool)] = pd.NA
    return pd.DataFrame(data, columns=list(PARTNER_COLUMNS))


@dataclass
class PartnerJob:
    key: str
    recipe: str
    params: Dict[str, Any]
    voxel_size_nm: Tuple[float, ...]
    grid: BlockGrid
    prediction: Any
    neurons: Any = None
    markers: Optional[Any] = None

    def setup(self):
        return None

    def run(self, state, block_ids: Sequence[int]) -> List[np.ndarray]:
        from postprocessing.partners import partners_of_block

        found = []
        for b in block_ids:
            table = partners_of_block(self.recipe, self.prediction, self.voxel_size_nm, self.params,
                                      self.grid[b], neurons=self.neurons)
            payload = partner_payload(table)
            if self.markers is not None:
                self.markers.mark(b, payload)
            found.append(payload)
        return found

    def describe(self, block_ids: Sequence[int]) -> str:
        return self.grid[block_ids[0]].describe()
