"""Pool widget: vesicle pools by distance rules (`analysis.pools`), defaults or a YAML rule file.

Structures are labels layers named as the rules name them (``active_zone``,
``membrane``, ``psd``, ``ribbon``): a layer made by Segmentation or the
simulation sample is named by its task, any other by its layer name.
Without a rule file the SynapseNet defaults apply, restricted to the pools
whose structures are given (as ``synapse-bmz analyze`` does).
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import Container, FileEdit, Select, create_widget

from ..errors import OptionError, SynapseBmzError
from ._errors import notify_error
from ._layers import features_of, labels_of, meta_of, put_layer, voxel_size_of
from ._table import TablePanel
from ._worker import TaskPanel


def structure_name(layer) -> str:
    """The name pool rules use for a structure layer: its task, else its layer name."""
    return str(meta_of(layer).get("task") or layer.name)


def pool_rules(path, structures):
    """Rules from ``path`` (checked as ``synapse-bmz analyze --pool-rules`` checks it), else the defaults."""
    from analysis.pools import PoolRules, load_pool_rules

    from ..analyze import _check_pool_rules

    if path is not None:
        _check_pool_rules(path, set(structures))
        return load_pool_rules(path)
    rules = load_pool_rules(None, structures)
    return PoolRules(tuple(p for p in rules.pools if set(p.max_distance_nm) <= set(structures)), rules.default_pool)


def pool_work(vesicles: np.ndarray, structures: dict, voxel_size_nm, rules_path):
    """Worker: `analysis.report.vesicle_table` with pools (morphology, distances, nearest neighbour, pool)."""
    from analysis.report import vesicle_table

    yield "reading pool rules"
    rules = pool_rules(rules_path, structures)
    yield "measuring vesicles"
    return vesicle_table(vesicles, structures, voxel_size_nm, None, rules)


class PoolWidget(Container):
    """Dock widget: vesicles, structures, optional rule file -> pool per vesicle (points + table)."""

    def __init__(self, napari_viewer):
        import napari.layers

        self.viewer = napari_viewer
        self.vesicles = create_widget(annotation=napari.layers.Labels, label="vesicles", name="vesicles")
        self.structures = Select(label="structures", name="structures", choices=self._labels_layers)
        self.rules = FileEdit(label="rule file (optional)", name="rules", mode="r", filter="*.yaml *.yml")
        self.task = TaskPanel("Assign pools")
        self.results = TablePanel()
        super().__init__(widgets=[self.vesicles, self.structures, self.rules, self.task, self.results])
        self.task.run_button.changed.connect(self.run)

    def _labels_layers(self, *_):
        import napari.layers

        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, napari.layers.Labels)]

    def run(self, *_):
        """Assign pools in the worker thread; then a Points layer coloured by pool and the table."""
        layer = self.vesicles.value
        try:
            vesicles = labels_of(layer, "vesicles")
            structures = {}
            for s in self.structures.value:
                if s is layer:
                    continue
                arr = labels_of(s, "structures")
                if arr.shape != vesicles.shape:
                    raise OptionError("structures", f"layer {s.name!r} has shape {arr.shape}, vesicles {vesicles.shape}")
                structures[structure_name(s)] = arr
        except SynapseBmzError as error:
            self.task.status.value = notify_error(error)
            return
        text = str(self.rules.value)
        rules_path = None if text in ("", ".") else self.rules.value
        voxel = voxel_size_of(layer)
        translate = tuple(layer.translate)

        def show(table):
            self.results.set_frame(table)
            layer.features = features_of(table)
            axes = "zyx"[-vesicles.ndim:]
            centers = table[[f"centroid_{a}_nm" for a in axes]].to_numpy(dtype=float)
            put_layer(self.viewer, "points", centers, f"pools ({layer.name})", scale=(1.0,) * vesicles.ndim,
                      translate=translate, metadata={"kind": "pools", "vesicles": layer.name},
                      features=table[["label", "pool", "radius_nm"]].reset_index(drop=True),
                      face_color="pool", size=2 * float(np.median(table["radius_nm"])) if len(table) else 10.0,
                      out_of_slice_display=True)

        self.task.start(pool_work, vesicles, structures, voxel, rules_path, on_result=show)
