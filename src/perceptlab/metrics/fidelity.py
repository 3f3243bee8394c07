"""Plain measures of what LPIPS and DISTS miss: a fixed grid, a colour cast, an unfaithful output, lost detail.

A network with transposed or strided convolutions can print a pattern that
repeats every few output pixels, and a perceptual loss can shift colours;
LPIPS and DISTS hardly react to either (docs/experiments/sr_default.md). These
measures do, and need no learned weights:

* :func:`grid_score`: the luma is high-passed (minus its 9x9 box mean) and
  averaged over each phase ``(y mod p, x mod p)`` of the output grid; the RMS
  of the ``p * p`` phase means over the RMS of the high-pass. Natural detail
  averages out over the phases (HR photos of the SR benchmarks: about 0.007),
  a lattice pattern does not (the Johnson x4 VGG model: about 0.2).
* :func:`color_shift`: the largest difference of a channel's image mean to
  the reference's, in 8-bit levels.
* :func:`chroma_psnr`: PSNR over the two BT.601 chroma channels (Cb, Cr, full range) alone. A codec
  trained against a luma-only measure (VMAF, its proxy) may spend fewer bits on colour: skin turns olive at
  the same luma PSNR, and only this shows it.
* :func:`lr_psnr`: an SR output shrunk back by its scale (MATLAB bicubic with
  antialiasing, the degradation of the benchmarks) against its LR input, RGB
  PSNR. A faithful output shrinks back to its input (bicubic: about 36.6 dB
  on Set14 x4).
* :func:`detail_ratio`: the RMS of the output's high-passed luma over the
  reference's. Below 1 the output is smoother than the reference (the
  over-smoothing of a pixel loss), above 1 it has more fine contrast
  (invented texture, noise, ringing).

All take NCHW float images in ``[0, 1]`` and return one value per image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from perceptlab._checks import check_image, check_pair, check_range


def _luma(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma in [0, 1] of an (N, 3, H, W) image; a 1-channel image is its own luma."""
    if x.shape[1] == 1:
        return x
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return 0.299 * r + 0.587 * g + 0.114 * b


def phase_means(x: torch.Tensor, period: int = 4, window: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
    """The high-passed luma of ``x`` and its mean over each phase ``(y mod period, x mod period)``.

    Differentiable (:func:`perceptlab.losses.grid_loss` trains with it); no range or size checks
    beyond the image being large enough: :func:`grid_score` makes those.

    Returns:
        ``(phases, high)``: (N, period, period) phase means and (N, 1, h, w) the high-pass
        (luma minus its ``window`` x ``window`` box mean) where the box fits, cropped to whole
        periods that start on a multiple of the period of the image's own pixel grid.
    """
    y = _luma(x)
    r = window // 2
    high = y[..., r:-r or None, r:-r or None] - F.avg_pool2d(y, window, stride=1)
    # The crop starts r pixels in; restart it on a multiple of the period so phase 0 is the image's.
    skip = (-r) % period
    high = high[..., skip:, skip:]
    h, w = (high.shape[-2] // period) * period, (high.shape[-1] // period) * period
    if h == 0 or w == 0:
        raise ValueError(f"image of {x.shape[-2]}x{x.shape[-1]} is too small for a {window}x{window} window "
                         f"and a period of {period}")  # fmt: skip
    high = high[..., :h, :w]
    phases = high.reshape(high.shape[0], h // period, period, w // period, period).mean(dim=(1, 3))
    return phases, high


def grid_score(x: torch.Tensor, period: int = 4, window: int = 9) -> torch.Tensor:
    """How much of an image's fine detail is a pattern fixed to the pixel grid with period ``period``.

    Args:
        x: images in [0, 1], (N, 3, H, W) or (N, 1, H, W).
        period: the pattern's period in pixels (4 for the x4 networks and the
            style networks' two stride-2 stages; a period of 2 is caught by 4 too).
        window: side of the box mean that is subtracted (odd).

    Returns:
        (N,) float64: RMS of the ``period**2`` phase means of the high-passed
        luma over the high-pass's RMS; 0 for a flat image (high-pass RMS
        below a thousandth of an 8-bit level). Only the part of the image
        where the box fits is used, cropped to whole periods, so the phases
        are those of the image's own pixel grid.

    Example:
        >>> x = torch.rand(1, 3, 64, 64) * 0.1 + 0.45
        >>> grid = x + 0.1 * (torch.arange(64) % 4 == 0).float()   # a line every 4 columns
        >>> bool(grid_score(grid) > 10 * grid_score(x))
        True
    """
    check_image(x, "pred")
    check_range(x, "pred")
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd number, got {window}")
    if period < 2:
        raise ValueError(f"period must be >= 2, got {period}")
    phases, high = phase_means(x.detach().to(torch.float64), period, window)
    rms_phases = phases.square().mean(dim=(1, 2)).sqrt()
    rms_high = high.square().mean(dim=(1, 2, 3)).sqrt()
    # Below a thousandth of an 8-bit level the high-pass is rounding noise: a flat image has no grid.
    flat = rms_high < 1e-3 / 255
    return torch.where(flat, torch.zeros_like(rms_high), rms_phases / rms_high.clamp_min(1e-12))


def color_shift(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Largest absolute difference of the per-channel image means, in 8-bit levels (0-255).

    Shape:
        ``pred``, ``target``: (N, C, H, W); output (N,) float64.

    Example:
        >>> x = torch.full((1, 3, 8, 8), 0.5)
        >>> round(float(color_shift(x + torch.tensor([0.0, 0.0, 4 / 255]).view(1, 3, 1, 1), x)), 3)
        4.0
    """
    check_pair(pred, target)
    check_range(pred, "pred")
    check_range(target, "target")
    diff = pred.detach().to(torch.float64).mean(dim=(2, 3)) - target.detach().to(torch.float64).mean(dim=(2, 3))
    return diff.abs().amax(dim=1) * 255.0


def chroma_psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB over the BT.601 Cb and Cr channels (full range, as JPEG's), both channels together.

    Shape:
        ``pred``, ``target``: (N, 3, H, W) RGB; output (N,) float64 (``inf`` for identical chroma).

    Example:
        >>> x = torch.full((1, 3, 8, 8), 0.5)
        >>> float(chroma_psnr(x + torch.tensor([0.0, 0.0, 0.1]).view(1, 3, 1, 1), x))  # a blue cast
        28.9...
    """
    check_pair(pred, target)
    check_range(pred, "pred")
    check_range(target, "target")
    if pred.shape[1] != 3:
        raise ValueError(f"chroma needs RGB images (3 channels), got {pred.shape[1]}")
    diff = pred.detach().to(torch.float64) - target.detach().to(torch.float64)
    mse = rgb_to_cbcr(diff, offset=False).square().mean(dim=(1, 2, 3))
    return 10 * torch.log10(1.0 / mse)


# BT.601 full-range chroma rows of the RGB -> YCbCr matrix (JPEG's), for RGB in [0, 1].
CBCR = ((-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))


def rgb_to_cbcr(x: torch.Tensor, offset: bool = True) -> torch.Tensor:
    """The BT.601 full-range Cb and Cr channels of RGB images: (N, 3, H, W) -> (N, 2, H, W), differentiable,
    in ``x``'s dtype. ``offset`` adds the 0.5 that centres them in [0, 1]; without it the map is linear (for
    differences of images)."""
    weights = torch.tensor(CBCR, dtype=x.dtype, device=x.device)
    cbcr = torch.einsum("kc,nchw->nkhw", weights, x)
    return cbcr + 0.5 if offset else cbcr


def _high_rms(x: torch.Tensor, window: int) -> torch.Tensor:
    y = _luma(x.detach().to(torch.float64))
    r = window // 2
    high = y[..., r:-r or None, r:-r or None] - F.avg_pool2d(y, window, stride=1)
    return high.square().mean(dim=(1, 2, 3)).sqrt()


def detail_ratio(pred: torch.Tensor, target: torch.Tensor, window: int = 9) -> torch.Tensor:
    """How much fine contrast the output has against its reference: RMS of the high-passed luma, ``pred`` over
    ``target`` (the high-pass of :func:`grid_score`: luma minus its ``window`` x ``window`` box mean).

    1 for the same amount of detail; a blurred copy has less (Gaussian sigma 1.5 keeps 0.39-0.45 on Kodak),
    added noise more. It says nothing of where the detail is: read it beside a distance.

    Shape:
        ``pred``, ``target``: (N, C, H, W) in [0, 1], sides at least ``window``; output (N,) float64
        (``nan`` where the reference is flat).

    Example:
        >>> x = torch.rand(1, 3, 32, 32)
        >>> float(detail_ratio(x, x))
        1.0
        >>> float(detail_ratio(torch.full_like(x, 0.5), x)) < 1e-6  # no detail at all
        True
    """
    check_pair(pred, target)
    check_range(pred, "pred")
    check_range(target, "target")
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd number, got {window}")
    if min(pred.shape[-2:]) < window:
        raise ValueError(f"images of {pred.shape[-2]}x{pred.shape[-1]} are smaller than the {window}x{window} window")
    reference = _high_rms(target, window)
    ratio = _high_rms(pred, window) / reference.clamp_min(1e-12)
    return torch.where(reference < 1e-3 / 255, torch.full_like(ratio, float("nan")), ratio)


def lr_psnr(sr: torch.Tensor, lr: torch.Tensor, scale: int) -> torch.Tensor:
    """RGB PSNR (dB) of ``sr`` shrunk by ``scale`` (MATLAB bicubic, antialiased) against the LR input ``lr``.

    Args:
        sr: super-resolved images in [0, 1], (N, C, scale h, scale w).
        lr: their inputs, (N, C, h, w).
        scale: the SR factor.

    Returns:
        (N,) float64; ``inf`` where the shrunk output equals the input.
    """
    from perceptlab.ops.resize import imresize

    check_image(sr, "sr")
    check_image(lr, "lr")
    check_range(sr, "pred")
    check_range(lr, "target")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale!r}")
    if tuple(sr.shape[-2:]) != (lr.shape[-2] * scale, lr.shape[-1] * scale) or sr.shape[:2] != lr.shape[:2]:
        raise ValueError(f"sr {tuple(sr.shape)} is not lr {tuple(lr.shape)} enlarged {scale} times")
    small = imresize(sr.detach().to(torch.float64), scale=1 / scale).clamp(0, 1)
    mse = (small - lr.detach().to(torch.float64)).square().flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse)
