"""Build bioimage.io model packages from torch modules."""

from .build import PackageInfo, build_package

__all__ = ["PackageInfo", "build_package"]
