"""Distance widget: vesicle-to-structure or nearest-neighbour distances (`analysis.distances`).

The measured segments (closest boundary voxels of each pair, in nm) are shown
as a Vectors layer whose features hold ``label`` and ``distance_nm``, and the
whole table in the dock (exportable).
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, create_widget

from ..errors import OptionError, SynapseBmzError
from ._errors import notify_error
from ._layers import labels_of, meta_of, put_layer, voxel_size_of
from ._table import TablePanel
from ._worker import TaskPanel

TO_STRUCTURE = "to structure"
NEAREST = "nearest neighbour"


def distance_work(labels: np.ndarray, structure, voxel_size_nm, exclude_crossing: bool):
    """Worker: the distance table (structure None: nearest neighbours)."""
    from analysis.distances import distances_to_structure, nearest_neighbor_distances

    yield "measuring distances"
    if structure is None:
        return nearest_neighbor_distances(labels, voxel_size_nm, exclude_crossing=exclude_crossing)
    return distances_to_structure(labels, structure, voxel_size_nm, exclude_crossing=exclude_crossing)


def segments_of(table, ndim: int):
    """Vectors-layer data ``(N, 2, ndim)`` in nm (start, direction) of the rows with a finite distance."""
    axes = "zyx"[-ndim:]
    end = "structure" if f"structure_point_{axes[0]}_nm" in table.columns else "neighbor"
    keep = np.isfinite(table["distance_nm"].to_numpy(dtype=float))
    start = table.loc[keep, [f"object_point_{a}_nm" for a in axes]].to_numpy(dtype=float)
    stop = table.loc[keep, [f"{end}_point_{a}_nm" for a in axes]].to_numpy(dtype=float)
    return np.stack([start, stop - start], axis=1), table.loc[keep, ["label", "distance_nm"]].reset_index(drop=True)


class DistanceWidget(Container):
    """Dock widget: objects (labels), a structure (labels) or nearest neighbours; segments + table."""

    def __init__(self, napari_viewer):
        import napari.layers

        self.viewer = napari_viewer
        self.objects = create_widget(annotation=napari.layers.Labels, label="objects", name="objects")
        self.mode = ComboBox(label="distance", name="mode", choices=[TO_STRUCTURE, NEAREST])
        self.structure = create_widget(annotation=napari.layers.Labels, label="structure", name="structure")
        self.exclude_crossing = CheckBox(label="skip lines through other objects", name="exclude_crossing", value=False)
        self.task = TaskPanel("Measure")
        self.results = TablePanel()
        super().__init__(widgets=[self.objects, self.mode, self.structure, self.exclude_crossing, self.task,
                                  self.results])
        self.mode.changed.connect(lambda *_: setattr(self.structure, "visible", self.mode.value == TO_STRUCTURE))
        self.task.run_button.changed.connect(self.run)

    def run(self, *_):
        """Measure in the worker thread; then the Vectors layer and the table."""
        layer = self.objects.value
        try:
            labels = labels_of(layer, "objects")
            structure = None
            if self.mode.value == TO_STRUCTURE:
                if self.structure.value is None or self.structure.value is layer:
                    raise OptionError("structure", "choose a structure layer other than the objects")
                structure = labels_of(self.structure.value, "structure")
        except SynapseBmzError as error:
            self.task.status.value = notify_error(error)
            return
        voxel = voxel_size_of(layer)
        translate = tuple(layer.translate)
        target = "nearest" if structure is None else self.structure.value.name
        info = {"kind": "distances", "objects": layer.name, "to": target, **{k: v for k, v in meta_of(layer).items()
                                                                           if k in ("model", "task")}}

        def show(table):
            self.results.set_frame(table)
            vectors, features = segments_of(table, labels.ndim)
            put_layer(self.viewer, "vectors", vectors, f"distances {layer.name} -> {target}",
                      scale=(1.0,) * labels.ndim, translate=translate, metadata=info, features=features,
                      edge_width=2 * max(voxel), edge_color="distance_nm", edge_colormap="plasma",
                      out_of_slice_display=True, vector_style="line")

        self.task.start(distance_work, labels, structure, voxel, self.exclude_crossing.value, on_result=show)
