"""Histogram matching for colour correction."""

import numpy as np
import pytest

from perceptlab.ops.color import match_histograms


def test_matching_moves_each_channel_to_the_reference_distribution():
    rng = np.random.default_rng(0)
    reference = rng.integers(100, 200, (40, 30, 3), dtype=np.uint8)
    image = rng.integers(0, 256, (80, 64, 3), dtype=np.uint8)
    out = match_histograms(image, reference)
    assert out.shape == image.shape and out.dtype == np.uint8
    for c in range(3):
        assert abs(out[..., c].mean() - reference[..., c].mean()) < 2
        assert out[..., c].min() >= 99 and out[..., c].max() <= 200
        # Monotonic: the order of pixel values is kept.
        order = np.argsort(image[..., c].ravel(), kind="stable")
        assert (np.diff(out[..., c].ravel()[order].astype(int)) >= 0).all()


def test_matching_an_image_to_itself_changes_nothing():
    image = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert np.array_equal(match_histograms(image, image), image)


def test_colour_shift_is_undone():
    rng = np.random.default_rng(2)
    original = rng.integers(0, 200, (64, 64, 3), dtype=np.uint8)
    shifted = np.clip(original.astype(int) + [40, 0, -0], 0, 255).astype(np.uint8)
    assert np.abs(match_histograms(shifted, original).astype(int) - original).max() <= 1


def test_bad_input():
    with pytest.raises(TypeError):
        match_histograms(np.zeros((4, 4, 3)), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError):
        match_histograms(np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.uint8))
