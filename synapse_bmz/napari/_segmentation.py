"""Segmentation widget: any zoo package (or a folder / zip / rdf.yaml) on an image layer.

A thin layer over `synapse_bmz.api`: ``predict_events`` then, if the package
has a recipe, ``segment_events``, in a worker thread (`TaskPanel`). The
prediction is added as one image layer per channel (``"<model> <channel>"``),
the instances as a labels layer ``"<task> (<model>)"`` with the object table as
features; all scaled in nm on the model's grid (`predict` views the input on
the training voxel size when they differ, so the layers still overlay the
input in world coordinates).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, LineEdit, create_widget

from ..errors import OptionError, SynapseBmzError
from ._errors import error_message, notify_error
from ._layers import META, features_of, level0, put_layer, voxel_size_of
from ._worker import TaskPanel

#: Model chooser entry that switches to the file field (a package folder's rdf.yaml, or a .zip).
OTHER = "other package (rdf.yaml or .zip) ..."
DEVICES = ("auto", "cpu", "cuda")


def parse_numbers(text: str, what: str, kind=float) -> Optional[Tuple]:
    """``"5, 5, 5"`` (or ``5x5x5``) -> ``(5.0, 5.0, 5.0)``; empty -> None; else `OptionError` naming ``what``."""
    text = text.strip()
    if not text:
        return None
    try:
        return tuple(kind(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise OptionError(what, f"expected comma-separated {'integers' if kind is int else 'numbers'}, got {text!r}") from None


def card_summary(source: str) -> str:
    """A few lines from a package's RDF and ``config.synapse_bmz`` (no weights loaded).

    Raises
    ------
    ModelError
        When the source does not resolve to a readable model RDF.
    """
    from ..zoo.config import read_config
    from ..zoo.registry import read_rdf, resolve_package

    rdf = resolve_package(source)
    data = read_rdf(rdf)
    cfg = read_config(data.get("config"), str(rdf))
    lines = [f"{data.get('name', rdf.parent.name)}: {' '.join(str(data.get('description', '')).split())}"]
    if cfg is None:
        lines.append("prediction only (no config.synapse_bmz)")
    else:
        recipe = cfg.postprocessing.recipe if cfg.postprocessing else "none"
        lines.append(f"task {cfg.task}; channels {', '.join(cfg.channels)}; "
                     f"trained at {' x '.join(f'{v:g}' for v in cfg.voxel_size_nm)} nm; recipe {recipe}"
                     + ("; test-time flips (4 passes per tile)" if cfg.test_time_augmentation == "flips" else ""))
        acc = dict(cfg.accuracy)
        primary = acc.get("primary_metric")
        shown = [primary] if primary in acc else [k for k, v in acc.items() if isinstance(v, (int, float))][:2]
        if shown:
            lines.append("held-out " + ", ".join(f"{k} {acc[k]:.3g}" for k in shown))
    lines.append(f"licence {data.get('license', '?')}")
    return "\n".join(lines)


def segmentation_work(sessions: Dict, source: str, device: Optional[str], image, voxel_size_nm: Sequence[float],
                      tile: Optional[Sequence[int]], postprocess: bool):
    """The widget's work, run in the worker thread: load (cached), predict, segment.

    Yields
    ------
    str or ProgressEvent

    Returns
    -------
    (ModelSession, xarray.DataArray, SegmentResult or None)
    """
    from .. import api

    key = (source, device)
    if key not in sessions:
        yield f"loading {source}"
        sessions[key] = api.load_session(source, device=device)
    session = sessions[key]
    pred = yield from api.predict_events(session, image, voxel_size_nm, tile=tile)
    cfg = session.model.config
    result = None
    if postprocess and cfg is not None and cfg.postprocessing is not None:
        result = yield from api.segment_events(session, pred)
    return session, pred, result


class SegmentationWidget(Container):
    """Dock widget: image layer, package, voxel size (nm), tile, device; Run / Cancel.

    Parameters
    ----------
    napari_viewer : napari.Viewer
    """

    def __init__(self, napari_viewer):
        import napari.layers

        from ..zoo.registry import available_packages

        self.viewer = napari_viewer
        self.image = create_widget(annotation=napari.layers.Image, label="image", name="image")
        self.model = ComboBox(label="model", name="model", choices=[*sorted(available_packages()), OTHER])
        self.package = FileEdit(label="package", name="package", mode="r", filter="*.yaml *.yml *.zip", visible=False)
        self.card = Label(name="card", value="")
        self.card.native.setWordWrap(True)
        self.voxel_size = LineEdit(label="voxel size (nm)", name="voxel_size", tooltip="z, y, x (or y, x) in nm; from the layer's scale")
        self.tile = LineEdit(label="tile", name="tile", tooltip="network input per model axis, e.g. 256,256; empty = as large as memory allows")
        self.device = ComboBox(label="device", name="device", choices=list(DEVICES))
        self.postprocess = CheckBox(label="instances (recipe)", name="postprocess", value=True)
        self.task = TaskPanel("Segment")
        super().__init__(widgets=[self.image, self.model, self.package, self.card, self.voxel_size, self.tile,
                                  self.device, self.postprocess, self.task])
        self._sessions: Dict = {}
        self._voxel_from = None  # the layer whose scale filled the voxel-size field
        self.image.changed.connect(self._layer_changed)
        self.model.changed.connect(self._model_changed)
        self.package.changed.connect(self._model_changed)
        self.task.run_button.changed.connect(self.run)
        self._model_changed()

    def reset_choices(self, *args):
        super().reset_choices(*args)
        self._layer_changed()

    @property
    def source(self) -> str:
        """The package as `synapse_bmz.api.load_session` takes it: a name, or the chosen file."""
        return str(self.package.value) if self.model.value == OTHER else str(self.model.value)

    def _layer_changed(self, *_):
        # only when another layer is chosen: layers added by a run must not undo the user's edit
        layer = self.image.value
        if layer is not None and layer is not self._voxel_from:
            self.voxel_size.value = ", ".join(f"{v:g}" for v in voxel_size_of(layer))
        self._voxel_from = layer

    def _model_changed(self, *_):
        self.package.visible = self.model.value == OTHER
        if self.model.value == OTHER and str(self.package.value) in ("", "."):
            self.card.value = "choose a package's rdf.yaml or .zip"
            return
        try:
            self.card.value = card_summary(self.source)
        except SynapseBmzError as error:
            self.card.value = error_message(error)

    def options(self) -> dict:
        """The run's arguments from the form; `OptionError` for unusable values."""
        layer = self.image.value
        if layer is None:
            raise OptionError("image", "choose an image layer")
        if getattr(layer, "rgb", False):
            raise OptionError("image", f"layer {layer.name!r} is RGB; EM images are single-channel")
        voxel = parse_numbers(self.voxel_size.value, "voxel size")
        data = level0(layer)
        if voxel is None or len(voxel) != data.ndim:
            raise OptionError("voxel size", f"give {data.ndim} values in nm ({', '.join('zyx'[-data.ndim:])}) "
                                            f"for layer {layer.name!r} of shape {tuple(data.shape)}")
        return dict(source=self.source, device=None if self.device.value == "auto" else self.device.value,
                    image=data, voxel_size_nm=voxel, tile=parse_numbers(self.tile.value, "tile", int),
                    postprocess=self.postprocess.value)

    def run(self, *_):
        """Start prediction (+ instances) in the worker thread."""
        try:
            opts = self.options()
        except SynapseBmzError as error:
            self.task.status.value = notify_error(error)
            return
        layer = self.image.value
        translate = tuple(layer.translate)
        self.task.start(segmentation_work, self._sessions, opts["source"], opts["device"], opts["image"],
                        opts["voxel_size_nm"], opts["tile"], opts["postprocess"],
                        on_result=lambda r: self.add_results(*r, translate=translate))

    def add_results(self, session, pred, result, translate: Sequence[float] = ()) -> List:
        """Add (or update) the prediction and instance layers; return them."""
        from ._reader import prediction_layer_data

        name = session.model.name
        spatial = len(pred.attrs["voxel_size_nm"])
        translate = tuple(translate)[-spatial:] or None
        layers = []
        for data, kwargs, kind in prediction_layer_data(pred, name):
            kwargs = dict(kwargs)
            meta = kwargs.pop("metadata")[META]
            layers.append(put_layer(self.viewer, kind, data, kwargs.pop("name"), scale=kwargs.pop("scale"),
                                    translate=translate, metadata=meta, **kwargs))
        if result is not None:
            cfg = session.model.config
            meta = {"kind": "labels", "model": name, "rdf": str(session.model.rdf_path), "recipe": result.recipe,
                    "params": dict(result.params), "task": cfg.task, "voxel_size_nm": list(result.voxel_size_nm)}
            layers.append(put_layer(self.viewer, "labels", result.labels, f"{cfg.task} ({name})",
                                    scale=result.voxel_size_nm, translate=translate, metadata=meta,
                                    features=features_of(result.table)))
        return layers
