"""Job options: the options of ``synapse-bmz run`` as a validated JSON object.

One definition serves the HTTP schema (pydantic), the client and the worker,
which turns it into `synapse_bmz.runner.run.RunOptions`; the values are
checked again by the runner (tile against the package's minimum halo, etc.),
whose one-line errors become the job's error.
"""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..runner.run import LABEL_FORMATS, RunOptions
from ..zoo.config import TTA_MODES


class JobOptions(BaseModel):
    """Options of one job; sizes per spatial axis, (z, y, x) or (y, x)."""

    model_config = ConfigDict(extra="forbid")

    tile: Optional[List[int]] = Field(None, description="network input size per spatial axis (voxels)")
    halo: Optional[List[int]] = Field(None, description="context per side between tiles (voxels)")
    batch_size: Optional[int] = Field(None, ge=1, le=1024)
    voxel_size_nm: Optional[List[float]] = Field(None, description="voxel size in nm, z,y,x or y,x")
    postprocess: bool = True
    label_format: Literal[LABEL_FORMATS] = "tif"  # the runner's formats, one list
    weight_format: Optional[Literal["torchscript", "pytorch_state_dict", "onnx"]] = None
    test_time_augmentation: Optional[Literal[TTA_MODES]] = Field(
        None, description="flips: each tile averaged over its 4 in-plane mirror images; default: the package's")
    recipe_params: Dict[str, Any] = Field(default_factory=dict, description="recipe parameters (sizes in nm)")
    max_in_memory_voxels: Optional[int] = Field(None, ge=0)

    @field_validator("tile", "halo")
    @classmethod
    def _sizes(cls, v):
        if v is not None:
            if not 2 <= len(v) <= 3:
                raise ValueError("give 2 (y,x) or 3 (z,y,x) values")
            if any(int(i) < 0 or int(i) > 1 << 16 for i in v):
                raise ValueError("values must be between 0 and 65536")
        return v

    @field_validator("voxel_size_nm")
    @classmethod
    def _voxel(cls, v):
        if v is not None:
            if not 2 <= len(v) <= 3:
                raise ValueError("give 2 (y,x) or 3 (z,y,x) values in nm")
            if any(not (0 < float(i) < 1e6) for i in v):
                raise ValueError("voxel sizes must be positive numbers of nm")
        return v

    @field_validator("recipe_params")
    @classmethod
    def _params(cls, v):
        for key, value in v.items():
            if not isinstance(value, (int, float, str, bool)):
                raise ValueError(f"{key}: recipe parameters are numbers, strings or booleans")
        return v

    def run_options(self, resume: bool = False) -> RunOptions:
        return RunOptions(tile=self.tile, halo=self.halo, batch_size=self.batch_size,
                          voxel_size_nm=self.voxel_size_nm, postprocess=self.postprocess,
                          label_format=self.label_format, weight_format=self.weight_format,
                          test_time_augmentation=self.test_time_augmentation,
                          recipe_params=dict(self.recipe_params), in_memory_voxels=self.max_in_memory_voxels,
                          overwrite=True, progress=False, resume=resume)
