"""synapse-bmz: synapse segmentation and analysis for EM with bioimage.io model packages.

``synapse_bmz.predict`` and ``synapse_bmz.segment`` are the array API
(`synapse_bmz.api`). Importing this package is cheap: torch and bioimageio
are imported lazily by the modules that need them, so ``synapse-bmz --help``
answers at once.
"""

__version__ = "0.1.0"

__all__ = ["predict", "predict_events", "segment", "segment_events", "__version__"]


def __getattr__(name):
    if name in ("predict", "predict_events", "segment", "segment_events"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'synapse_bmz' has no attribute {name!r}")
