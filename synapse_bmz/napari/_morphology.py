"""Morphology widget: size, radius, shape (and intensity) of every object, in nm (`synapse_bmz.api.measure`)."""

from __future__ import annotations

from magicgui.widgets import CheckBox, Container, create_widget

from ..errors import OptionError, SynapseBmzError
from ._errors import notify_error
from ._layers import features_of, labels_of, level0, voxel_size_of
from ._table import TablePanel
from ._worker import TaskPanel


def morphology_work(labels, voxel_size_nm, raw, per_section: bool):
    """Worker: `synapse_bmz.api.measure` (per section for a 2D model's profiles in a stack)."""
    from ..api import measure

    yield "measuring objects"
    return measure(labels, voxel_size_nm, raw=raw, per_section=per_section)


class MorphologyWidget(Container):
    """Dock widget: labels (+ optional raw image for intensities) -> table and layer features."""

    def __init__(self, napari_viewer):
        import napari.layers

        self.viewer = napari_viewer
        self.layer = create_widget(annotation=napari.layers.Labels, label="labels", name="labels")
        self.raw = create_widget(annotation=napari.layers.Image, label="intensities from", name="raw",
                                 options={"nullable": True})
        self.per_section = CheckBox(label="2D profiles per section", name="per_section", value=False,
                                    tooltip="objects of a 2D model on a stack: measure each section in 2D")
        self.task = TaskPanel("Measure")
        self.results = TablePanel()
        super().__init__(widgets=[self.layer, self.raw, self.per_section, self.task, self.results])
        self.layer.changed.connect(self._labels_changed)
        self.task.run_button.changed.connect(self.run)
        self._labels_changed()

    def _labels_changed(self, *_):
        # labels of a 2D model carry a `section` column (segment_events measured them per section)
        layer = self.layer.value
        if layer is not None:
            self.per_section.value = layer.ndim == 3 and "section" in getattr(layer.features, "columns", ())

    def run(self, *_):
        """Measure in the worker thread; the table goes to the dock and to the layer's features."""
        layer = self.layer.value
        try:
            labels = labels_of(layer)
            raw = None
            if self.raw.value is not None:
                import numpy as np

                raw = np.asarray(level0(self.raw.value))
                if raw.shape != labels.shape:
                    raise OptionError("intensities from", f"image {self.raw.value.name!r} has shape {raw.shape}, "
                                                           f"labels {layer.name!r} {labels.shape}")
        except SynapseBmzError as error:
            self.task.status.value = notify_error(error)
            return

        def show(table):
            self.results.set_frame(table)
            layer.features = features_of(table)

        self.task.start(morphology_work, labels, voxel_size_of(layer), raw,
                        self.per_section.value and labels.ndim == 3, on_result=show)
