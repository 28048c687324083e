"""synapse_bmz.normalise: the one z-score, with the RDF's and the training data's eps semantics."""

import numpy as np

from synapse_bmz.normalise import RDF_EPS, zero_mean_unit_variance


def test_rdf_semantics_per_batch_and_channel():
    x = np.random.default_rng(0).normal(5, 3, (2, 3, 4, 16, 16)).astype(np.float32)
    axes = (2, 3, 4)
    y = x.astype(np.float64)
    expected = ((y - y.mean(axis=axes, keepdims=True)) / (y.std(axis=axes, keepdims=True) + RDF_EPS)).astype(np.float32)
    got = zero_mean_unit_variance(x, axes, dtype=np.float64)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


def test_training_semantics_floor_the_std_bit_for_bit():
    img = np.random.default_rng(1).integers(0, 255, (5, 33, 40)).astype(np.uint8)
    f = img.astype(np.float32)
    np.testing.assert_array_equal(zero_mean_unit_variance(img, eps=0.0), (f - f.mean()) / max(float(f.std()), 1e-6))
    flat = np.full((4, 4), 7, np.uint16)
    np.testing.assert_array_equal(zero_mean_unit_variance(flat, eps=0.0), np.zeros((4, 4), np.float32))


def test_statistics_of_the_whole_array():
    x = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    out = zero_mean_unit_variance(x, eps=0.0)
    assert abs(float(out.mean())) < 1e-6 and abs(float(out.std()) - 1) < 1e-6
