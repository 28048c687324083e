"""Sample tensors of a package (bioimage.io ``sample_tensor``, asked for FAIR compliance).

The spec wants an image file imageio reads (numpy ``.npy`` is not accepted) whose
dimensionality matches the tensor's axes; `bioimageio predict --example` feeds the
input sample to the model. We write a centre crop of the test input as 8-bit
(PNG for 2D, zlib TIFF for 3D: what Fiji, napari and the bioimage.io site show),
and as output sample the model's prediction for exactly that image after the RDF's
preprocessing, float32 in a zlib TIFF, channels first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence, Tuple

import numpy as np

#: at most this many output values per sample (float32: 2 MB before compression; probabilities
#: hardly compress), so that the samples add little to a package that must stay under 15 MB
MAX_SAMPLE_OUTPUT_VALUES = 1 << 19
SAMPLE_INPUT_2D = "sample_input.png"
SAMPLE_INPUT_3D = "sample_input.tif"
SAMPLE_OUTPUT = "sample_output.tif"


def sample_crop(spatial_shape: Sequence[int], min_shape: Sequence[int], step: Sequence[int],
                values_per_voxel: int, max_values: int = MAX_SAMPLE_OUTPUT_VALUES) -> Tuple[slice, ...]:
    """Centre crop of the test input, a valid input size, whose output has at most `max_values` values.

    While the output is too large, the axis largest relative to its ``min`` shrinks by its
    ``step`` (never below ``min``); sizes stay ``min + n * step`` when the test input's are.
    """
    sizes = [int(s) for s in spatial_shape]
    while int(np.prod(sizes)) * values_per_voxel > max_values:
        can = [i for i in range(len(sizes)) if sizes[i] - int(step[i]) >= int(min_shape[i]) and int(step[i]) > 0]
        if not can:
            break
        i = max(can, key=lambda i: sizes[i] / max(int(min_shape[i]), 1))
        sizes[i] -= int(step[i])
    return tuple(slice((n - s) // 2, (n - s) // 2 + s) for n, s in zip(spatial_shape, sizes))


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Linear map of min..max to 0..255 (no clipping: the normalised input is the same up to rounding)."""
    x = np.asarray(x, np.float64)
    lo, hi = float(x.min()), float(x.max())
    return np.round((x - lo) / max(hi - lo, 1e-12) * 255).astype(np.uint8)


def write_sample_tensors(folder: Path, test_input: np.ndarray, predict: Callable[[np.ndarray], np.ndarray],
                         min_shape: Sequence[int], step: Sequence[int], n_out: int) -> Tuple[str, str]:
    """Write the input and output sample into `folder`; return their file names.

    Parameters
    ----------
    test_input : ndarray, shape (1, 1, [Z,] Y, X)
        The package's test input (before preprocessing).
    predict : callable
        Normalised float32 input (1, 1, [Z,] Y, X) -> output (1, C, ...) as numpy; the package's model.
    min_shape, step : sequence of int
        The input's ``ParameterizedSize`` per spatial axis.
    n_out : int
        Output values per input voxel (the output channels); a feature vector passes 0.
    """
    import tifffile
    from PIL import Image

    from .build import normalise_like_rdf

    folder = Path(folder)
    image = to_uint8(np.asarray(test_input)[0, 0][sample_crop(test_input.shape[2:], min_shape, step, max(n_out, 1))])
    y = np.asarray(predict(normalise_like_rdf(image[None, None].astype(np.float32))), np.float32)[0]
    if image.ndim == 2:
        in_name = SAMPLE_INPUT_2D
        Image.fromarray(image).save(folder / in_name)
    else:
        in_name = SAMPLE_INPUT_3D
        tifffile.imwrite(folder / in_name, image, compression="zlib", metadata={"axes": "ZYX"})
    if y.ndim == 1:  # a feature vector: one row
        y = y[None]
    axes = ("C" + "ZYX"[-image.ndim:]) if y.ndim == image.ndim + 1 else "YX"
    tifffile.imwrite(folder / SAMPLE_OUTPUT, np.ascontiguousarray(y), compression="zlib", metadata={"axes": axes})
    return in_name, SAMPLE_OUTPUT
