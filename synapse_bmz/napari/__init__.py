"""napari plugin of synapse-bmz (npe2 manifest ``napari.yaml``): ``napari -w synapse-bmz``.

Every contribution is a thin layer over the Python API:

- reader (`_reader`) and writer (`_writer`): `synapse_bmz.io` (voxel sizes in
  nm become layer scales, (z, y, x)); IMOD ``.mod`` through `analysis.imod`;
- sample data (`_sample_data`): the bundled EPFL crop and a
  `synapse_bmz.simulate` tomogram with its ground truth;
- widgets: Segmentation (`synapse_bmz.api.predict_events` /
  ``segment_events``), Postprocessing and Size filter (`postprocessing`),
  Distances, Morphology, Pools (`analysis`). Long work runs in a worker
  thread (`_worker`) with a progress bar and a Cancel that closes the API's
  generator; user errors appear as one-line notifications, worded as the CLI
  prints them (`_errors`).

Nothing here is imported by ``synapse_bmz`` itself: Qt and napari are needed
only when napari loads the plugin (extra ``napari``).
"""
