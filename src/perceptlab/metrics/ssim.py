"""SSIM and MS-SSIM with a separable Gaussian window and no padding.

The conventions (Gaussian window applied "valid", statistics per channel then
averaged over channels, 2x2 average pooling between scales, odd sides padded
by one zero before pooling) are those of the ``pytorch_msssim`` package, which
the tests check against. They differ from the MATLAB reference code, which
works on the grey image and downsamples the original image first; published
values computed that way are not comparable with these.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from perceptlab._checks import check_min_size, check_pair, check_range, reduce

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def gaussian_window(win_size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Normalised 1-D Gaussian of odd length ``win_size``, centred on its middle tap."""
    coords = torch.arange(win_size, dtype=dtype, device=device) - win_size // 2
    g = torch.exp(-coords.pow(2) / (2.0 * sigma**2))
    return g / g.sum()


def _check_window(win_size: int, sigma: float) -> None:
    if not isinstance(win_size, int) or win_size < 1 or win_size % 2 == 0:
        raise ValueError(f"win_size must be a positive odd int, got {win_size!r}")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")


def _blur(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of every channel, "valid" (the output shrinks by win_size - 1)."""
    c, k = x.shape[1], window.numel()
    x = F.conv2d(x, window.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)
    return F.conv2d(x, window.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)


def _ssim_and_cs(
    x: torch.Tensor, y: torch.Tensor, window: torch.Tensor, data_range: float, k1: float, k2: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM and mean contrast-structure term of each channel, both (N, C)."""
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    # One grouped convolution for all five local moments instead of five passes.
    moments = _blur(torch.cat([x, y, x * x, y * y, x * y]), window)
    mu_x, mu_y, xx, yy, xy = moments.chunk(5)
    var_x, var_y, cov = xx - mu_x.pow(2), yy - mu_y.pow(2), xy - mu_x * mu_y
    cs_map = (2 * cov + c2) / (var_x + var_y + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x.pow(2) + mu_y.pow(2) + c1)
    return (luminance * cs_map).flatten(2).mean(-1), cs_map.flatten(2).mean(-1)


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float = 1.0,
    win_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    reduction: str = "mean",
) -> torch.Tensor:
    """Structural similarity index, 1 for identical images, higher is better.

    Local means, variances and covariance come from a ``win_size`` Gaussian
    window of standard deviation ``sigma`` applied without padding; the SSIM map
    is averaged over the valid positions of each channel, then over channels.

    Args:
        pred: predicted images in ``[0, data_range]`` (clamp network outputs
            first; :func:`perceptlab.losses.ssim_loss` takes them unclamped).
        target: reference images in ``[0, data_range]``.
        data_range: the value of full intensity (1.0 or 255); sets the
            stabilising constants ``C1 = (k1 data_range)^2``, ``C2 = (k2 data_range)^2``.
        win_size: odd side of the Gaussian window.
        sigma: standard deviation of the Gaussian window, in pixels.
        k1: luminance stabiliser.
        k2: contrast stabiliser.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"`` over the batch.

    Returns:
        SSIM, one value per image for ``reduction="none"``, else a scalar.

    Shape:
        ``pred``, ``target``: (N, C, H, W) with H, W >= ``win_size``;
        output: (N,) or ().

    Example:
        >>> x = torch.rand(2, 3, 32, 32)
        >>> ssim(x, x)
        tensor(1.)

    Reference:
        Wang, Bovik, Sheikh and Simoncelli, "Image quality assessment: from error
        visibility to structural similarity", IEEE TIP 13(4), 2004.
    """
    check_pair(pred, target)
    check_range(pred, "pred", data_range)
    return reduce(ssim_per_image(pred, target, data_range, win_size, sigma, k1, k2), reduction)


def ssim_per_image(
    pred: torch.Tensor, target: torch.Tensor, data_range: float, win_size: int, sigma: float, k1: float, k2: float
) -> torch.Tensor:
    """SSIM of each image, shape (N,), checking the target's range but not the prediction's.

    The body of :func:`ssim` and of :func:`perceptlab.losses.ssim_loss`, which
    takes unclamped network outputs (:mod:`perceptlab._checks`).
    """
    check_pair(pred, target)
    check_range(target, "target", data_range)
    _check_window(win_size, sigma)
    check_min_size(pred, win_size, f"SSIM with win_size={win_size}")
    window = gaussian_window(win_size, sigma, pred.dtype, pred.device)
    per_channel, _ = _ssim_and_cs(pred, target, window, data_range, k1, k2)
    return per_channel.mean(dim=1)


def ms_ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float = 1.0,
    weights: tuple[float, ...] = MS_SSIM_WEIGHTS,
    win_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    reduction: str = "mean",
) -> torch.Tensor:
    """Multi-scale structural similarity, 1 for identical images, higher is better.

    ``MS-SSIM = prod_{j<M} relu(cs_j)^{w_j} * relu(ssim_M)^{w_M}`` over
    ``M = len(weights)`` scales, each scale a 2x2 average pooling of the previous
    one (odd sides padded by one zero first). The ReLU keeps a negative
    contrast term from producing NaN under the fractional power. Values are
    computed per channel, then averaged over channels.

    Args:
        pred: predicted images in ``[0, data_range]`` (clamp network outputs
            first; :func:`perceptlab.losses.ms_ssim_loss` takes them unclamped).
        target: reference images in ``[0, data_range]``.
        data_range: the value of full intensity (1.0 or 255).
        weights: exponent of each scale, finest first; the default is the
            paper's five-scale set.
        win_size: odd side of the Gaussian window.
        sigma: standard deviation of the Gaussian window, in pixels.
        k1: luminance stabiliser.
        k2: contrast stabiliser.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"`` over the batch.

    Returns:
        MS-SSIM, one value per image for ``reduction="none"``, else a scalar.

    Shape:
        ``pred``, ``target``: (N, C, H, W) with
        ``min(H, W) > (win_size - 1) * 2 ** (len(weights) - 1)``, i.e. at least
        161 pixels with the defaults; output: (N,) or ().

    Example:
        >>> x = torch.rand(1, 3, 192, 192)
        >>> ms_ssim(x, x)
        tensor(1.)

    Reference:
        Wang, Simoncelli and Bovik, "Multiscale structural similarity for image
        quality assessment", Asilomar Conference on Signals, Systems and
        Computers, 2003.
    """
    check_pair(pred, target)
    check_range(pred, "pred", data_range)
    return reduce(ms_ssim_per_image(pred, target, data_range, weights, win_size, sigma, k1, k2), reduction)


def ms_ssim_per_image(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float,
    weights: tuple[float, ...],
    win_size: int,
    sigma: float,
    k1: float,
    k2: float,
) -> torch.Tensor:
    """MS-SSIM of each image, shape (N,), checking the target's range but not the prediction's.

    The body of :func:`ms_ssim` and of :func:`perceptlab.losses.ms_ssim_loss` (see :func:`ssim_per_image`).
    """
    check_pair(pred, target)
    check_range(target, "target", data_range)
    _check_window(win_size, sigma)
    if len(weights) < 1:
        raise ValueError("weights must hold at least one scale")
    # The coarsest scale must still hold a full window after len(weights) - 1 halvings.
    min_side = (win_size - 1) * 2 ** (len(weights) - 1) + 1
    check_min_size(pred, min_side, f"MS-SSIM with win_size={win_size} and {len(weights)} scales")
    window = gaussian_window(win_size, sigma, pred.dtype, pred.device)
    terms = []
    for scale in range(len(weights)):
        if scale > 0:
            pred, target = _halve(pred), _halve(target)
        ssim_value, cs = _ssim_and_cs(pred, target, window, data_range, k1, k2)
        terms.append(cs)
    terms[-1] = ssim_value
    exponents = pred.new_tensor(weights).view(-1, 1, 1)
    per_channel = torch.relu(torch.stack(terms)).pow(exponents).prod(dim=0)
    return per_channel.mean(dim=1)


def _halve(x: torch.Tensor) -> torch.Tensor:
    padding = [side % 2 for side in x.shape[-2:]]
    return F.avg_pool2d(x, kernel_size=2, padding=padding)


class SSIM(nn.Module):
    """Module form of :func:`ssim`; see there for the arguments.

    Example:
        >>> metric = SSIM(data_range=255)
        >>> value = metric(255 * torch.rand(2, 3, 32, 32), 255 * torch.rand(2, 3, 32, 32))
    """

    def __init__(
        self,
        data_range: float = 1.0,
        win_size: int = 11,
        sigma: float = 1.5,
        k1: float = 0.01,
        k2: float = 0.03,
        reduction: str = "mean",
    ):
        super().__init__()
        _check_window(win_size, sigma)
        self.data_range = data_range
        self.win_size = win_size
        self.sigma = sigma
        self.k1 = k1
        self.k2 = k2
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ssim(pred, target, self.data_range, self.win_size, self.sigma, self.k1, self.k2, self.reduction)


class MSSSIM(nn.Module):
    """Module form of :func:`ms_ssim`; see there for the arguments.

    Example:
        >>> metric = MSSSIM()
        >>> value = metric(torch.rand(1, 3, 192, 192), torch.rand(1, 3, 192, 192))
    """

    def __init__(
        self,
        data_range: float = 1.0,
        weights: tuple[float, ...] = MS_SSIM_WEIGHTS,
        win_size: int = 11,
        sigma: float = 1.5,
        k1: float = 0.01,
        k2: float = 0.03,
        reduction: str = "mean",
    ):
        super().__init__()
        _check_window(win_size, sigma)
        self.data_range = data_range
        self.weights = tuple(weights)
        self.win_size = win_size
        self.sigma = sigma
        self.k1 = k1
        self.k2 = k2
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ms_ssim(
            pred, target, self.data_range, self.weights, self.win_size, self.sigma, self.k1, self.k2, self.reduction
        )
