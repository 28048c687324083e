"""synapse-bmz: synapse segmentation and analysis for EM with bioimage.io model packages.

Importing this package is cheap: torch and bioimageio are imported lazily by
the modules that need them, so ``synapse-bmz --help`` answers at once.
"""

__version__ = "0.1.0"
