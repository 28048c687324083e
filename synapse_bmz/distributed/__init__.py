"""Executors over the block engine: the same block jobs serially or on dask.distributed.

`make_executor` turns ``--cluster`` (``local[:N]``, ``slurm[:N]``,
``tcp://ADDRESS``) into an executor; without it the work runs serially in
this process. See `synapse_bmz.distributed.executors`.
"""

from .executors import BlockJob, DaskExecutor, SerialExecutor, make_executor
from .markers import DoneMarkers

__all__ = ["BlockJob", "DaskExecutor", "DoneMarkers", "SerialExecutor", "make_executor"]
