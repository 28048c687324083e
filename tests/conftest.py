"""Shared fixtures: the real EM data beside the repo, and tiny packages built in code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synapse_bmz.paths import shared_data_dir

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = shared_data_dir()  # $SYNAPSE_BMZ_DATA, default ../shared/data beside the checkout


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real EM data not found at {SHARED_DATA} (it lives beside the repository in CI and dev machines; "
                    "set $SYNAPSE_BMZ_DATA to move it)")
    return SHARED_DATA


def _tiny_package(tmp_path_factory, ndim: int, with_config: bool = True) -> Path:
    import torch

    from synapse_bmz.models import UNet
    from synapse_bmz.packaging import PackageInfo, build_package
    from synapse_bmz.zoo.config import SynapseBmzConfig

    torch.manual_seed(0)
    if ndim == 2:
        model = UNet(2, 1, 2, base_channels=4, depth=3)
        # raw intensities, not normalised: `bioimageio test` must apply the RDF's preprocessing
        sample = np.random.default_rng(0).integers(0, 255, size=(1, 1, 64, 64)).astype(np.float32)
        kw = dict(min_shape=[32, 32], step=[4, 4])
        cfg = SynapseBmzConfig(task="vesicles", channels=["foreground", "boundary"], voxel_size_nm=[5.0, 5.0],
                               halo=[8, 8], postprocessing={"recipe": "vesicles", "params": {}})
    else:
        model = UNet(3, 1, 1, base_channels=4, depth=2, pool_factors=[(1, 2, 2)])
        sample = np.random.default_rng(0).integers(0, 255, size=(1, 1, 8, 32, 32)).astype(np.float32)
        kw = dict(min_shape=[8, 32, 32], step=[1, 2, 2])
        cfg = SynapseBmzConfig(task="clefts", channels=["cleft"], voxel_size_nm=[40.0, 4.0, 4.0],
                               halo=[2, 4, 4], postprocessing={"recipe": "clefts", "params": {}})
    out = tmp_path_factory.mktemp(f"pkg{ndim}d") / f"tiny_{ndim}d"
    info = PackageInfo(name=f"tiny_{ndim}d", description=f"Tiny random {ndim}D U-Net for tests.")
    build_package(model, sample, out, info, cfg, **kw)
    return out


@pytest.fixture(scope="session")
def tiny_package_2d(tmp_path_factory) -> Path:
    return _tiny_package(tmp_path_factory, 2)


@pytest.fixture(scope="session")
def tiny_package_3d(tmp_path_factory) -> Path:
    return _tiny_package(tmp_path_factory, 3)


@pytest.fixture
def em_stack(tmp_path) -> Path:
    """A 4 x 96 x 128 uint8 ImageJ TIFF with 5 nm voxels and blob-like texture."""
    return write_em_stack(tmp_path / "stack.tif", (4, 96, 128), seed=1, sigma_px=3)


def write_em_stack(path: Path, shape, *, seed: int, sigma_px: float) -> Path:
    """Write a uint8 ImageJ TIFF stack with 5 nm voxels: noise smoothed in-plane by ``sigma_px``."""
    import tifffile
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    img = ndi.gaussian_filter(rng.normal(size=shape), (0, sigma_px, sigma_px))
    img = ((img - img.min()) / np.ptp(img) * 255).astype(np.uint8)
    tifffile.imwrite(path, img, imagej=True, resolution=(1 / 5.0, 1 / 5.0),
                     metadata={"spacing": 5.0, "unit": "nm", "axes": "ZYX"})
    return path
