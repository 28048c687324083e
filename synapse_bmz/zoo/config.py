"""The ``config.synapse_bmz`` section of a model RDF, read through one typed object.

A package without the section still runs (prediction only); a package whose
section is malformed is rejected with a message naming the RDF and the field.
"""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import ModelError

Task = Literal[
    "vesicles", "mitochondria", "active_zone", "compartments", "ribbon",
    "clefts", "synapses", "membranes", "segmentation",
    # feature extractors (vgg3d_features): output batch x features, no spatial axes, no recipe
    "features",
]


#: ``none``: one pass; ``flips``: the mean over the 4 in-plane mirror images (`synapse_bmz.runner.flips`)
TTA_MODES = ("none", "flips")


class PostprocessingSpec(BaseModel):
    """Which `postprocessing` recipe turns the outputs into instances, with its parameters.

    Sizes among ``params`` are in nm (the recipe converts them with the voxel size).
    """

    model_config = ConfigDict(extra="forbid")
    recipe: str
    params: Dict[str, Any] = Field(default_factory=dict)
    #: Context (nm) block-wise postprocessing reads around each block; default: the
    #: recipe's own (`postprocessing.recipes.recipe_context_nm`). Raise it for larger objects.
    context_nm: Optional[float] = Field(default=None, gt=0)


class SynapseBmzConfig(BaseModel):
    """Typed view of ``config.synapse_bmz`` in a model RDF.

    Attributes
    ----------
    task : str
        What the network segments.
    channels : list of str
        Meaning of each output channel, in channel order.
    voxel_size_nm : list of float
        Training voxel size, one per spatial axis of the model, (z, y, x) or (y, x).
    tile, halo : list of int
        Default tile (input size) and halo per spatial axis, in voxels. The
        halo is the measured minimum for which tiled prediction equals
        untiled prediction within the RDF's reproducibility tolerance
        (`synapse_bmz.packaging.halo`); the runner refuses smaller ones.
    receptive_field : list of int or None
        Theoretical receptive-field radius per spatial axis (voxels), from the
        architecture; recorded beside the halo, not used by the runner.
    postprocessing : PostprocessingSpec or None
        Recipe applied by ``synapse-bmz run`` unless ``--no-postprocess``.
    activation_bytes_per_voxel : float or None
        Peak forward-pass memory per input voxel (bytes), measured with the
        torch profiler when the package was built; the runner sizes tiles with it.
    accuracy : dict
        Figures on the held-out split, as stated in the model card.
    object_radius_nm : [low, high] of float or None
        Equivalent radius (nm) of the objects the package was trained on;
        the runner says when the objects it finds are far outside it (a
        wrong voxel size, `synapse_bmz.zoo.object_sizes`). Optional: without
        it the recipe's or the task's default applies.
    test_time_augmentation : {"none", "flips"}
        What the runner applies by default (`synapse_bmz.runner.flips`):
        ``flips`` averages each tile's prediction over its 4 in-plane mirror
        images. The card's figures are measured with it; other consumers of
        the weights (bioimageio.core, ilastik, deepImageJ) run one plain pass.
    """

    model_config = ConfigDict(extra="forbid")
    task: Task
    channels: List[str]
    voxel_size_nm: List[float]
    tile: Optional[List[int]] = None
    halo: List[int]
    receptive_field: Optional[List[int]] = None
    postprocessing: Optional[PostprocessingSpec] = None
    activation_bytes_per_voxel: Optional[float] = None
    accuracy: Dict[str, Any] = Field(default_factory=dict)
    object_radius_nm: Optional[List[float]] = None
    test_time_augmentation: Literal[TTA_MODES] = "none"

    @field_validator("object_radius_nm")
    @classmethod
    def _radius_range(cls, v: Optional[List[float]]) -> Optional[List[float]]:
        if v is not None and (len(v) != 2 or not 0 < v[0] <= v[1]):
            raise ValueError("object_radius_nm must be [low, high] in nm with 0 < low <= high")
        return v

    @field_validator("voxel_size_nm")
    @classmethod
    def _positive(cls, v: List[float]) -> List[float]:
        if not v or any(x <= 0 for x in v):
            raise ValueError("voxel sizes must be positive numbers in nm")
        return v


def read_config(raw_config: Any, rdf_source: str) -> Optional[SynapseBmzConfig]:
    """Parse the ``synapse_bmz`` entry of an RDF's ``config`` mapping.

    Parameters
    ----------
    raw_config : mapping or pydantic model
        The RDF's ``config`` field.
    rdf_source : str
        Where the RDF came from, for error messages.

    Returns
    -------
    SynapseBmzConfig or None
        None when the package has no ``synapse_bmz`` section.

    Raises
    ------
    ModelError
        When the section is present but malformed.
    """
    if raw_config is None:
        return None
    if hasattr(raw_config, "model_dump"):
        raw_config = raw_config.model_dump()
    section = dict(raw_config).get("synapse_bmz")
    if section is None:
        return None
    try:
        return SynapseBmzConfig.model_validate(section)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ModelError(
            f"{rdf_source}: malformed config.synapse_bmz: {loc}: {first['msg']}"
        ) from None
