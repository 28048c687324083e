"""Analysis of instance segmentations: distances, morphology, pools, evaluation, IMOD, reports.

Every function takes plain numpy arrays in (z, y, x) axis order (or (y, x)
for 2D) and voxel sizes in nanometres in the same order. Tables carry the
unit in every column name (``distance_nm``, ``radius_nm``, ``volume_nm3``).

This package never imports torch, bioimageio or ``synapse_bmz``.
Submodules are imported explicitly, e.g. ``from analysis import distances``.
"""
