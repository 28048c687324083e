"""Small lazy array-likes: numpy-style slicing, ``shape``/``dtype``/``ndim``.

Readers return numpy memmaps, h5py datasets and zarr arrays directly; these
wrappers cover the two cases those cannot: dropping a singleton/channel axis
of a non-numpy array without loading it, and a folder of 2D slice files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def _expand_key(key: Any, ndim: int) -> tuple:
    """Expand `key` to a tuple of exactly `ndim` items (ints, slices, arrays)."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is None for k in key):
        raise IndexError("np.newaxis is not supported by lazy volumes")
    n_ellipsis = sum(1 for k in key if k is Ellipsis)
    if n_ellipsis > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if n_ellipsis:
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        fill = (slice(None),) * (ndim - len(key) + 1)
        key = key[:i] + fill + key[i + 1 :]
    if len(key) > ndim:
        raise IndexError(f"too many indices: array is {ndim}-dimensional")
    return key + (slice(None),) * (ndim - len(key))


class _LazyArray:
    """numpy interop shared by the lazy views: ``np.asarray(view)`` reads everything."""

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[...]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __len__(self) -> int:
        return self.shape[0]


class SelectView(_LazyArray):
    """Lazy view of `base` with some axes fixed to one index each.

    Parameters
    ----------
    base : array-like
        Anything with ``shape``, ``dtype`` and numpy-style ``__getitem__``
        (zarr array, h5py dataset, ...).
    fixed : dict of int to int
        ``{axis of base: index}``; those axes are absent from the view.
    """

    def __init__(self, base: Any, fixed: dict[int, int]):
        self.base = base
        self.fixed = dict(fixed)
        self.shape = tuple(s for i, s in enumerate(base.shape) if i not in self.fixed)
        self.dtype = np.dtype(base.dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        key = iter(_expand_key(key, self.ndim))
        full = tuple(
            self.fixed[i] if i in self.fixed else next(key) for i in range(len(self.base.shape))
        )
        return np.asarray(self.base[full])

    def __repr__(self) -> str:
        return f"SelectView(shape={self.shape}, dtype={self.dtype}, base={type(self.base).__name__})"


class SliceStack(_LazyArray):
    """A z-stack of 2D slice files, read one slice at a time on indexing.

    Parameters
    ----------
    files : sequence of Path
        One file per z index, in z order.
    shape : tuple of int
        ``(Y, X)`` of every slice.
    dtype : numpy dtype
        Data type of every slice (after channel selection).
    load : callable
        ``load(path) -> (Y, X) ndarray``.
    """

    def __init__(self, files: Sequence, shape: tuple[int, int], dtype, load: Callable):
        self.files = list(files)
        self.shape = (len(self.files), *shape)
        self.dtype = np.dtype(dtype)
        self.ndim = 3
        self._load = load

    def __getitem__(self, key: Any) -> np.ndarray:
        zkey, *rest = _expand_key(key, 3)
        rest = tuple(rest)
        z = np.arange(self.shape[0])[zkey]
        if np.ndim(z) == 0:
            return np.asarray(self._load(self.files[int(z)])[rest])
        planes = [np.asarray(self._load(self.files[int(i)])[rest]) for i in z]
        if not planes:
            empty = np.empty(self.shape[1:], self.dtype)[rest]
            return np.empty((0, *empty.shape), self.dtype)
        return np.stack(planes)

    def __repr__(self) -> str:
        return f"SliceStack({len(self.files)} files, shape={self.shape}, dtype={self.dtype})"


def select_axes(data: Any, fixed: dict[int, int]) -> Any:
    """Fix `fixed` axes of `data`: a view for numpy arrays, else a SelectView."""
    if not fixed:
        return data
    if isinstance(data, np.ndarray):
        return data[tuple(fixed.get(i, slice(None)) for i in range(data.ndim))]
    return SelectView(data, fixed)
