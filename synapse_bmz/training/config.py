"""Training configuration (``synapse-bmz train CONFIG.yaml``), validated by pydantic.

Relative data paths are resolved against the directory of the YAML file, so
a package's ``train.yaml`` reproduces its weights from any working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, ValidationError, model_validator

from ..errors import InputError
from ..zoo.config import TTA_MODES


class ExtraTraining(BaseModel):
    """More training volumes in another look: seeds ``seeds[0]..seeds[1]-1`` simulated with
    ``simulator_params`` on top of the simulation's own (e.g. ``{fibsem: {}}`` for
    `synapse_bmz.simulate.tomogram.FIBSEM_LIKE`, `synapse_bmz.simulate.sstem.VNC_LIKE`).
    Validation (and test) seeds stay in the simulation's own look, so the held-out figures
    of a config do not move when a look is added. The one way to mix looks, for U-Net and
    partner configs alike."""

    model_config = ConfigDict(extra="forbid")
    seeds: List[int] = Field(min_length=2, max_length=2)
    simulator_params: Dict[str, Any] = Field(default_factory=dict)

    def seed_range(self, path) -> range:
        """``range(low, high)``; a one-line `InputError` naming ``path`` when empty."""
        r = range(*self.seeds)
        if not r:
            raise InputError(path, f"data.simulation.extra_training.seeds: [low, high) with low < high, "
                                   f"got {self.seeds}")
        return r

    @staticmethod
    def describe(extra: Optional["ExtraTraining"]) -> str:
        """The card's words for it (``""`` for None), to follow the main look's description."""
        if extra is None:
            return ""
        lo, hi = extra.seeds
        return (f", and {hi - lo} more (seeds {lo}-{hi - 1}) with {extra.simulator_params} on top "
                "(`extra_training`; validation and test seeds are in the first look only)")


class SimulationData(BaseModel):
    """Training data drawn from `synapse_bmz.simulate` instead of image folders.

    One simulated volume per seed: training seeds ``0 .. n_train - 1``, held-out
    seeds ``validation_seeds`` (disjoint, so validation never sees a training
    volume). ``targets`` names the network's output channels: for
    ``target: foreground_boundary`` one instance label (``vesicles``); for
    ``target: mask`` one or more masks (``active_zone``; ``ribbon,
    presynaptic_density, membrane``), where ``<instances>_boundaries`` and
    ``<instances>_foreground`` are also available. ``instances`` names the
    instance label the recipe's output is scored against (instance F1).
    ``extra_training`` adds training seeds in another look (`ExtraTraining`).
    """

    model_config = ConfigDict(extra="forbid")
    kind: Literal["tomogram", "ribbon", "cryo"]
    shape: List[int]
    n_train: int = Field(ge=1)
    validation_seeds: List[int]
    targets: List[str]
    instances: Optional[str] = None
    simulator_params: Dict[str, Any] = Field(default_factory=dict)
    extra_training: Optional[ExtraTraining] = None


class DataConfig(BaseModel):
    """Where the images and labels are and how they are split.

    ``raw`` and ``labels`` are folders of 2D images with matching file names
    (slices of one volume, sorted by name). ``labels`` are masks (> threshold
    is foreground, boolean images as they are; instances are its connected
    components) or instance maps.

    The held-out split is either ``validation`` (file names) or
    ``validation_z`` (``[start, stop)`` section indices in sorted order). For
    a 3D model (``model.ndim: 3``) the slices are stacked into a volume and
    the held-out sections form their own sub-volume; the remaining sections
    are cut into contiguous runs (training never sees a held-out section).
    """

    model_config = ConfigDict(extra="forbid")
    raw: Optional[Path] = None
    labels: Optional[Path] = None
    simulation: Optional[SimulationData] = None
    label_threshold: float = 127
    labels_are_instances: bool = False
    validation: List[str] = Field(default_factory=list)
    validation_z: Optional[List[int]] = None
    voxel_size_nm: List[float]
    licence: str = "unknown"
    citation: Optional[Dict[str, str]] = None
    description: str = ""


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ndim: Literal[2, 3] = 2
    base_channels: int = 16
    depth: int = 4
    pool_factors: Optional[List[Any]] = None
    kernel_sizes: Optional[List[Any]] = None


class OptimConfig(BaseModel):
    """Optimisation settings; ``patch`` is per spatial axis in voxels."""

    model_config = ConfigDict(extra="forbid")
    patch: List[int]
    batch_size: int = 4
    iterations: int = 1000
    learning_rate: float = 1e-3
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    reject_empty_probability: float = 0.95
    foreground_weight: float = 1.0
    # chance per patch of a random loss of resolution (`augment.degrade_resolution`):
    # for simulation-trained models meant to run on coarser real data
    degrade_probability: float = Field(default=0.0, ge=0.0, le=1.0)
    # chance per patch of a random change of scale (`augment.zoom_window`): objects drawn
    # `zoom_range` times their size, as real data with a wrong or unknown voxel size look on
    # the model grid; 0 leaves the patch stream of a config exactly as before
    zoom_probability: float = Field(default=0.0, ge=0.0, le=1.0)
    zoom_range: Tuple[PositiveFloat, PositiveFloat] = (0.6, 3.0)
    validate_every: int = 100
    checkpoint_every: int = 100
    mixed_precision: bool = True
    threads: Optional[int] = None

    @model_validator(mode="after")
    def _zoom_range_ordered(self):
        if self.zoom_range[0] > self.zoom_range[1]:
            raise ValueError(f"train.zoom_range: [low, high] with low <= high, got {list(self.zoom_range)}")
        return self


class PackageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str
    task: str
    channels: List[str]
    halo: List[int]
    min_shape: List[int]
    step: List[int]
    postprocessing: Optional[Dict[str, Any]] = None
    #: what the runner applies by default and the card is measured with (`synapse_bmz.runner.flips`)
    test_time_augmentation: Literal[TTA_MODES] = "none"
    # the figure the card stands for; default: CREMI score for clefts, instance F1 with a recipe, else Dice
    primary_metric: Optional[Literal["instance_f1", "foreground_dice", "foreground_iou", "cremi_score_nm"]] = None
    tags: Optional[List[str]] = None
    authors: List[str] = Field(default_factory=lambda: ["synapse-bmz developers"])


class TrainConfig(BaseModel):
    """Everything needed to reproduce a package's weights."""

    model_config = ConfigDict(extra="forbid")
    seed: int = 0
    #: network target (`synapse_bmz.training.targets.training_targets`): foreground + boundary,
    #: those two + per-instance normalised distance (instance geometry for a seeded watershed), or masks
    target: Literal["foreground_boundary", "foreground_boundary_distance", "mask"] = "foreground_boundary"
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: OptimConfig
    package: PackageConfig
    source: Optional[Path] = None

    @property
    def out_channels(self) -> int:
        if self.target != "mask":
            from .targets import TARGET_CHANNELS

            return TARGET_CHANNELS[self.target]
        return len(self.data.simulation.targets) if self.data.simulation else 1


def load_train_config(path: Path) -> TrainConfig:
    """Read and validate a training YAML; relative paths are resolved against its folder."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise InputError(path, f"cannot read training config: {e}") from None
    try:
        cfg = TrainConfig.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        raise InputError(path, f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    cfg.source = path.resolve()
    if cfg.data.simulation is not None:
        _check_simulation(cfg, path)
        return cfg
    if cfg.data.raw is None or cfg.data.labels is None:
        raise InputError(path, "data: give `raw` and `labels` folders, or a `simulation` section")
    base = path.resolve().parent
    cfg.data.raw = (base / cfg.data.raw).resolve()
    cfg.data.labels = (base / cfg.data.labels).resolve()
    for p in (cfg.data.raw, cfg.data.labels):
        if not p.exists():
            from ..paths import shared_data_dir

            raise InputError(p, f"training data not found (the shared EM data live in {shared_data_dir()}; "
                                "set $SYNAPSE_BMZ_DATA to point elsewhere)")
    _check_dims(cfg, path)
    return cfg


def _check_simulation(cfg: TrainConfig, path: Path) -> None:
    """A simulation source: 3D model, one instance target for foreground_boundary, seeds disjoint."""
    sim = cfg.data.simulation
    if cfg.data.raw is not None or cfg.data.labels is not None:
        raise InputError(path, "data: give either `raw`/`labels` folders or `simulation`, not both")
    if cfg.model.ndim != 3 or len(sim.shape) != 3:
        raise InputError(path, "data.simulation: simulated tomograms train 3D models (model.ndim: 3, shape [z, y, x])")
    if cfg.target != "mask" and len(sim.targets) != 1:
        raise InputError(path, f"data.simulation.targets: {cfg.target} needs exactly one instance label")
    if set(sim.validation_seeds) & set(range(sim.n_train)):
        raise InputError(path, f"data.simulation: validation_seeds {sim.validation_seeds} overlap the training seeds 0..{sim.n_train - 1}")
    if sim.extra_training is not None:
        extra = set(sim.extra_training.seed_range(path))
        if extra & (set(range(sim.n_train)) | set(sim.validation_seeds)):
            raise InputError(path, "data.simulation: training seeds 0..n_train-1, extra_training seeds and "
                                   "validation_seeds must be disjoint")
    _check_axis_lengths(cfg, path, 3)


def _check_dims(cfg: TrainConfig, path: Path) -> None:
    """Per-axis lists must match ``model.ndim``; exactly one held-out split is named."""
    _check_axis_lengths(cfg, path, cfg.model.ndim)
    vz = cfg.data.validation_z
    if bool(cfg.data.validation) == (vz is not None):
        raise InputError(path, "data: give exactly one of `validation` (file names) or `validation_z` ([start, stop))")
    if vz is not None and (len(vz) != 2 or not 0 <= vz[0] < vz[1]):
        raise InputError(path, f"data.validation_z: expected [start, stop) with 0 <= start < stop, got {vz}")


def _check_axis_lengths(cfg: TrainConfig, path: Path, nd: int) -> None:
    """Every per-axis list has ``nd`` entries; the voxel size is also finite and > 0 nm."""
    from postprocessing._units import check_voxel_size

    try:
        check_voxel_size(cfg.data.voxel_size_nm, nd, name="data.voxel_size_nm")
    except ValueError as error:
        raise InputError(path, f"{error} for a {nd}D model") from None
    for name, values in (("train.patch", cfg.train.patch),
                         ("package.halo", cfg.package.halo), ("package.min_shape", cfg.package.min_shape),
                         ("package.step", cfg.package.step)):
        if len(values) != nd:
            raise InputError(path, f"{name}: needs {nd} entries for a {nd}D model, got {values}")
