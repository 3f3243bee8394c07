"""imresize and gaussian_blur: MATLAB's bicubic weights, shapes, boundaries, gradients.

The bit-exact check against MATLAB-made files (the benchmark LR images) is in
test_sr_protocol.py, through perceptlab.sr.benchmark_lr.
"""

import math

import pytest
import torch

from perceptlab.ops import gaussian_blur, imresize
from perceptlab.ops.resize import cubic

# Keys' kernel (a = -0.5) at the quarter-pixel offsets an x2 resize samples, worked out by hand
# from the kernel's two polynomials: these are the taps of MATLAB's imresize x2.
K_025, K_075, K_125, K_175 = 0.8671875, 0.2265625, -0.0703125, -0.0234375


def impulse(length: int, at: int, dtype=torch.float64) -> torch.Tensor:
    """A (1, 1, 1, length) row that is 1 at ``at`` and 0 elsewhere."""
    x = torch.zeros(1, 1, 1, length, dtype=dtype)
    x[..., at] = 1.0
    return x


def test_cubic_kernel_values():
    d = torch.tensor([0.0, 0.25, 0.75, 1.0, 1.25, 1.75, 2.0, 2.5], dtype=torch.float64)
    expected = torch.tensor([1.0, K_025, K_075, 0.0, K_125, K_175, 0.0, 0.0], dtype=torch.float64)
    assert torch.equal(cubic(d), expected)
    assert torch.equal(cubic(-d), expected)


def test_upscale_by_two_uses_matlab_taps():
    # Output pixel 8 (0-based 7) of an x2 enlargement sits at input coordinate 4.25 (1-based):
    # its weights on input pixels 3, 4, 5, 6 are cubic(1.25), cubic(0.25), cubic(0.75), cubic(1.75).
    # So input pixel 5 (0-based 4) contributes cubic(0.75) to it.
    row = torch.cat([imresize(impulse(12, j), size=(1, 24))[..., 7] for j in range(12)], dim=-1).flatten()
    expected = torch.zeros(12, dtype=torch.float64)
    expected[2:6] = torch.tensor([K_125, K_025, K_075, K_175], dtype=torch.float64)
    torch.testing.assert_close(row, expected, rtol=0, atol=1e-15)


def test_downscale_by_two_widens_the_kernel():
    # With antialiasing the kernel is stretched to 8 taps at distances 0.5, 1.5, 2.5, 3.5,
    # i.e. cubic at 0.25, 0.75, 1.25, 1.75 halved (the taps sum to 2 before normalising).
    x = torch.arange(16, dtype=torch.float64).view(1, 1, 1, 16) ** 2
    out = imresize(x, size=(1, 8))
    taps = torch.tensor([K_175, K_125, K_075, K_025, K_025, K_075, K_125, K_175], dtype=torch.float64) / 2
    torch.testing.assert_close(out[0, 0, 0, 3], (taps * x[0, 0, 0, 3:11]).sum(), rtol=0, atol=1e-12)
    # Without antialiasing, the 4-tap kernel at distances 0.5, 1.5: cubic(0.5) = 0.5625, cubic(1.5) = -0.0625.
    plain = imresize(x, size=(1, 8), antialias=False)
    expected = (torch.tensor([-0.0625, 0.5625, 0.5625, -0.0625], dtype=torch.float64) * x[0, 0, 0, 5:9]).sum()
    torch.testing.assert_close(plain[0, 0, 0, 3], expected, rtol=0, atol=1e-12)


def test_output_size_is_ceil_of_scale_times_input():
    x = torch.rand(2, 3, 10, 7, dtype=torch.float64)
    assert imresize(x, scale=0.25).shape == (2, 3, 3, 2)  # ceil(2.5), ceil(1.75)
    assert imresize(x, scale=4).shape == (2, 3, 40, 28)
    assert imresize(x, size=(5, 9)).shape == (2, 3, 5, 9)


@pytest.mark.parametrize("boundary", ["symmetric", "replicate"])
@pytest.mark.parametrize("kwargs", [{"scale": 0.25}, {"scale": 1 / 3}, {"scale": 3}, {"size": (17, 9)}])
def test_constant_image_stays_constant(boundary, kwargs):
    x = torch.full((1, 2, 24, 20), 0.3, dtype=torch.float64)
    out = imresize(x, boundary=boundary, **kwargs)
    torch.testing.assert_close(out, torch.full_like(out, 0.3), rtol=0, atol=1e-14)


def test_linear_ramp_is_reproduced_inside():
    # Keys' cubic reproduces polynomials up to degree 2 exactly; away from the border an x4
    # enlargement of a ramp is the ramp sampled at the output centres k / 4 + 3 / 8.
    x = torch.arange(1, 21, dtype=torch.float64).view(1, 1, 1, 20)
    out = imresize(x, size=(1, 80))[0, 0, 0]
    centres = torch.arange(1, 81, dtype=torch.float64) / 4 + 0.375
    torch.testing.assert_close(out[8:-8], centres[8:-8], rtol=0, atol=1e-12)


def test_scale_one_is_identity_and_a_copy():
    x = torch.rand(1, 3, 9, 11)
    out = imresize(x, scale=1)
    assert torch.equal(out, x)
    assert out.data_ptr() != x.data_ptr()


def test_boundaries_differ_only_near_the_edge():
    x = torch.rand(1, 1, 64, 64, dtype=torch.float64)
    sym, rep = imresize(x, scale=0.25), imresize(x, scale=0.25, boundary="replicate")
    # A 1/4 reduction reads 8 input pixels either side, i.e. 2 output pixels from each edge.
    torch.testing.assert_close(sym[..., 2:-2, 2:-2], rep[..., 2:-2, 2:-2], rtol=0, atol=1e-14)
    assert not torch.allclose(sym[..., 0, :], rep[..., 0, :])


def test_symmetric_boundary_mirrors_with_the_edge_repeated():
    # Resizing the mirrored-padded image and cutting the middle equals resizing with symmetric boundary.
    x = torch.rand(1, 1, 1, 16, dtype=torch.float64)
    padded = torch.cat([x.flip(-1), x, x.flip(-1)], dim=-1)  # ... x1 x0 | x0 x1 ... x15 | x15 x14 ...
    wide = imresize(padded, size=(1, 24), antialias=True)
    torch.testing.assert_close(imresize(x, size=(1, 8)), wide[..., 8:16], rtol=0, atol=1e-14)


def test_batch_items_are_independent_and_dtype_kept():
    x = torch.rand(3, 2, 20, 12)
    out = imresize(x, scale=0.5)
    assert out.dtype == torch.float32
    for i in range(3):
        torch.testing.assert_close(out[i : i + 1], imresize(x[i : i + 1], scale=0.5))


def test_rectangular_resize_order_does_not_matter_numerically():
    x = torch.rand(1, 1, 30, 16, dtype=torch.float64)
    both = imresize(x, size=(10, 32))
    steps = imresize(imresize(x, size=(10, 16)), size=(10, 32))
    torch.testing.assert_close(both, steps, rtol=0, atol=1e-13)


def test_gradcheck():
    x = torch.rand(1, 2, 8, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: imresize(t, scale=0.5), (x,))
    assert torch.autograd.gradcheck(lambda t: imresize(t, size=(11, 13)), (x,))
    assert torch.autograd.gradcheck(lambda t: gaussian_blur(t, 1.0), (x,))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "exactly one"),
        ({"scale": 0.5, "size": (2, 2)}, "exactly one"),
        ({"scale": -1.0}, "positive"),
        ({"scale": math.inf}, "positive"),
        ({"size": (0, 4)}, "positive ints"),
        ({"size": (4,)}, "positive ints"),
        ({"scale": 0.5, "boundary": "circular"}, "boundary"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        imresize(torch.rand(1, 1, 8, 8), **kwargs)


def test_bad_input_raises():
    with pytest.raises(TypeError, match="floating"):
        imresize(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), scale=0.5)
    with pytest.raises(ValueError, match="NCHW"):
        imresize(torch.rand(3, 8, 8), scale=0.5)


def test_gaussian_blur_matches_direct_convolution_inside():
    x = torch.rand(1, 1, 20, 20, dtype=torch.float64)
    sigma, radius = 1.0, 3  # the kernel is cut at ceil(3 sigma)
    taps = torch.exp(-torch.arange(-radius, radius + 1, dtype=torch.float64) ** 2 / (2 * sigma**2))
    taps = taps / taps.sum()
    kernel = (taps[:, None] * taps[None, :]).view(1, 1, 7, 7)
    direct = torch.nn.functional.conv2d(x, kernel)  # valid: the 14x14 interior
    torch.testing.assert_close(gaussian_blur(x, sigma)[..., 3:-3, 3:-3], direct, rtol=0, atol=1e-14)


def test_gaussian_blur_edges_and_zero_sigma():
    flat = torch.full((1, 3, 9, 9), 0.7, dtype=torch.float64)
    torch.testing.assert_close(gaussian_blur(flat, 2.0), flat, rtol=0, atol=1e-14)
    x = torch.rand(1, 1, 9, 9)
    assert torch.equal(gaussian_blur(x, 0.0), x)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_blur(x, -1.0)
