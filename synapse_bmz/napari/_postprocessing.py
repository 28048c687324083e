"""Postprocessing and Size filter widgets: instances again from an existing prediction, no re-prediction.

Postprocessing shows the package's recipe (``config.synapse_bmz.postprocessing``)
with every keyword parameter of its `postprocessing` function (sizes in nm),
pre-filled with the package's values, and re-runs
`synapse_bmz.api.segment_events` on the prediction kept in the prediction
layers' metadata. Size filter removes objects below a physical size
(`postprocessing._labels.size_filter`, converted from nm with the layer's voxel size).
"""

from __future__ import annotations

import inspect
import typing
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, LineEdit, SpinBox, create_widget

from ..errors import OptionError, SynapseBmzError
from ._errors import notify_error
from ._layers import features_of, labels_of, meta_of, put_layer, voxel_size_of
from ._worker import TaskPanel


#: Keyword parameters that take arrays although their annotation does not say so.
ARRAY_PARAMETERS = ("neurons",)


def recipe_function(recipe: str):
    """The `postprocessing` function behind recipe ``recipe`` (``segment_<recipe>``, see `postprocessing.recipes`)."""
    import postprocessing
    from postprocessing import partners

    # partner recipes: the form shows the extraction's parameters (the labels use a subset of them)
    fn = {"synful_partners": partners.synful_partners, "polarity_partners": partners.polarity_partners}.get(
        recipe, getattr(postprocessing, f"segment_{recipe}", None))
    if fn is None:
        from postprocessing.recipes import RECIPES

        raise OptionError("recipe", f"unknown recipe {recipe!r}; available recipes: {', '.join(sorted(RECIPES))}")
    return fn


def recipe_parameters(recipe: str) -> List[Tuple[inspect.Parameter, Any]]:
    """``(parameter, type)`` of each keyword parameter of the recipe's function a form can set.

    Array-valued parameters (``vesicles=`` of the ribbon recipe, ``neurons=`` of the
    partner recipes) are left out: they are only available through the functions
    (see `postprocessing.recipes`).
    """
    fn = recipe_function(recipe)
    hints = typing.get_type_hints(fn)
    out = []
    for p in inspect.signature(fn).parameters.values():
        hint = hints.get(p.name, type(p.default))
        if p.name in ARRAY_PARAMETERS:
            continue
        if p.kind is inspect.Parameter.KEYWORD_ONLY and np.ndarray not in (hint, *typing.get_args(hint)):
            out.append((p, hint))
    return out


def _widget_for(p: inspect.Parameter, hint: Any, value: Any):
    tip = "nm" if p.name.endswith(("_nm", "_nm2", "_nm3")) else None
    if typing.get_origin(hint) is typing.Literal:
        return ComboBox(name=p.name, label=p.name, choices=list(typing.get_args(hint)), value=value)
    if hint is bool:
        return CheckBox(name=p.name, label=p.name, value=bool(value))
    if hint is int:
        return SpinBox(name=p.name, label=p.name, value=int(value), min=0, max=10**6)
    if hint is float:
        fine = "threshold" in p.name or p.name == "min_overlap"
        return FloatSpinBox(name=p.name, label=p.name, value=float(value), min=0.0, max=1e9,
                            step=0.05 if fine else 1.0, tooltip=tip)
    # optional numbers (default None: derived from other parameters by the recipe)
    return LineEdit(name=p.name, label=p.name, value="" if value is None else str(value),
                    tooltip=f"empty: the recipe's default{' (nm)' if tip else ''}")


class RecipeForm(Container):
    """One field per recipe parameter; ``values()`` gives the ``params`` for `segment_events`."""

    def __init__(self, recipe: str, params: Optional[dict] = None):
        params = dict(params or {})
        self.recipe = recipe
        self.parameters = [p for p, _ in recipe_parameters(recipe)]
        # free-text choices (e.g. the partner recipes' ``method``, ``location``): passed as strings
        self.text = {p.name for p, hint in recipe_parameters(recipe) if hint is str}
        # package parameters that are not the function's (e.g. a partner recipe's block context
        # ``max_extent_nm``) travel unchanged, so a re-run uses the package's full recipe
        names = {p.name for p in self.parameters}
        self.extra = {k: v for k, v in params.items() if k not in names}
        widgets = [_widget_for(p, hint, params.get(p.name, p.default)) for p, hint in recipe_parameters(recipe)]
        super().__init__(widgets=widgets)

    def values(self) -> Dict[str, Any]:
        """Parameter values (sizes in nm); optional fields left empty are not passed."""
        out = dict(self.extra)
        for p in self.parameters:
            w = self[p.name]
            if p.name in self.text:
                out[p.name] = w.value.strip()
            elif isinstance(w, LineEdit):
                text = w.value.strip()
                if not text:
                    continue
                try:  # one number, or one per axis (z, y, x) as "a, b, c" or "[a, b, c]"
                    numbers = [float(t) for t in text.strip("[]() ").split(",") if t.strip()]
                except ValueError:
                    numbers = []
                if not numbers:
                    raise OptionError(p.name, f"expected a number, numbers per axis, or nothing, got {text!r}")
                out[p.name] = numbers[0] if len(numbers) == 1 and "," not in text else numbers
            else:
                out[p.name] = w.value
        return out


def postprocess_work(sessions: Dict, rdf: str, pred, params: dict):
    """Worker: the package's recipe on ``pred`` with ``params`` (session cached per package)."""
    from .. import api

    if rdf not in sessions:
        yield "loading the package's recipe"
        sessions[rdf] = api.load_session(rdf)
    session = sessions[rdf]
    result = yield from api.segment_events(session, pred, params=params)
    return session, result


class PostprocessingWidget(Container):
    """Dock widget: a prediction layer, its package's recipe parameters (nm), Run / Cancel."""

    def __init__(self, napari_viewer):
        self.viewer = napari_viewer
        self.prediction = ComboBox(label="prediction", name="prediction", choices=self._prediction_layers)
        self.recipe = Label(label="recipe", name="recipe", value="")
        self.form: Optional[RecipeForm] = None
        self.form_box = Container(name="parameters", labels=False)
        self.task = TaskPanel("Re-run recipe")
        super().__init__(widgets=[self.prediction, self.recipe, self.form_box, self.task])
        self._sessions: Dict = {}
        self._form_for = None
        self.prediction.changed.connect(self._prediction_changed)
        self.task.run_button.changed.connect(self.run)
        self._prediction_changed()

    def _prediction_layers(self, *_) -> list:
        return [(layer.name, layer) for layer in self.viewer.layers if meta_of(layer).get("kind") == "prediction"]

    def _prediction_changed(self, *_):
        layer = self.prediction.value
        if layer is None:
            self.recipe.value = "no prediction layer: run Segmentation, or open a prediction.ome.zarr"
            self.form_box.clear()
            self.form, self._form_for = None, None
            return
        meta = meta_of(layer)
        key = (meta.get("rdf"), meta.get("model"))
        if key == self._form_for:
            return
        from ..zoo.config import read_config
        from ..zoo.registry import read_rdf, resolve_package

        try:
            rdf = resolve_package(meta.get("rdf") or meta.get("model"))
            cfg = read_config(read_rdf(rdf).get("config"), str(rdf))
            if cfg is None or cfg.postprocessing is None:
                raise OptionError("prediction", f"package {meta.get('model')} has no postprocessing recipe")
        except SynapseBmzError as error:
            self.recipe.value = notify_error(error)
            self.form_box.clear()
            self.form, self._form_for = None, None
            return
        self._rdf = str(rdf)
        self.recipe.value = f"{cfg.postprocessing.recipe} (package {meta.get('model')})"
        self.form = RecipeForm(cfg.postprocessing.recipe, cfg.postprocessing.params)
        self.form_box.clear()
        self.form_box.append(self.form)
        self._form_for = key

    def reset_choices(self, *args):
        super().reset_choices(*args)
        self._prediction_changed()

    def run(self, *_):
        """Re-run the recipe with the form's parameters in the worker thread."""
        layer = self.prediction.value
        try:
            if layer is None or self.form is None:
                raise OptionError("prediction", "choose a prediction layer of a package with a recipe")
            params = self.form.values()
        except SynapseBmzError as error:
            self.task.status.value = notify_error(error)
            return
        pred = meta_of(layer)["prediction"]
        translate = tuple(layer.translate)
        self.task.start(postprocess_work, self._sessions, self._rdf, pred, params,
                        on_result=lambda r: self.add_result(*r, translate=translate))

    def add_result(self, session, result, translate=None):
        """Replace (or add) the instance layer ``"<task> (<model>)"``."""
        cfg, name = session.model.config, session.model.name
        meta = {"kind": "labels", "model": name, "rdf": str(session.model.rdf_path), "recipe": result.recipe,
                "params": dict(result.params), "task": cfg.task, "voxel_size_nm": list(result.voxel_size_nm)}
        return put_layer(self.viewer, "labels", result.labels, f"{cfg.task} ({name})", scale=result.voxel_size_nm,
                         translate=translate, metadata=meta, features=features_of(result.table))


def size_filter_work(labels: np.ndarray, voxel_size_nm, min_size: float):
    """Worker: remove objects smaller than ``min_size`` nm^ndim, relabel 1..N, measure the rest."""
    from analysis.morphology import object_table
    from postprocessing._labels import size_filter

    yield "filtering"
    min_voxels = float(min_size) / float(np.prod(voxel_size_nm))
    kept = size_filter(labels, min_voxels)
    yield "measuring"
    return kept, object_table(kept, voxel_size_nm, surface_area=False)


class SizeFilterWidget(Container):
    """Dock widget: drop objects below a size in nm^3 (3D layers) or nm^2 (2D), into ``"<layer> filtered"``."""

    def __init__(self, napari_viewer):
        import napari.layers

        self.viewer = napari_viewer
        self.layer = create_widget(annotation=napari.layers.Labels, label="labels", name="labels")
        self.min_size = FloatSpinBox(label="min size (nm³ / nm²)", name="min_size", value=1000.0, min=0.0, max=1e15, step=100.0,
                                     tooltip="volume for 3D layers, area for 2D layers, in nm")
        self.task = TaskPanel("Filter")
        super().__init__(widgets=[self.layer, self.min_size, self.task])
        self.task.run_button.changed.connect(self.run)

    def run(self, *_):
        """Filter in the worker thread."""
        layer = self.layer.value
        try:
            labels = labels_of(layer)
        except SynapseBmzError as error:
            self.task.status.value = notify_error(error)
            return
        voxel = voxel_size_of(layer)
        translate, source = tuple(layer.translate), layer.name
        meta = {**meta_of(layer), "kind": "labels", "size_filter_min_nm": float(self.min_size.value), "source": source}

        def add(result):
            kept, table = result
            put_layer(self.viewer, "labels", kept, f"{source} filtered", scale=voxel, translate=translate,
                      metadata=meta, features=features_of(table))

        self.task.start(size_filter_work, labels, voxel, self.min_size.value, on_result=add)
