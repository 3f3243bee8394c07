"""Entropy models of the latents: what each quantised value costs, in training and in the file.

Two models, both as in Ballé et al. 2018:

- :class:`FactorizedDensity`: one learned non-parametric density per channel
  (appendix 6.1), the prior of bls2017's ``y`` and of the hyperprior's ``z``.
- :class:`GaussianConditional`: ``y`` given its scale, a zero-mean Gaussian
  convolved with a unit box, the scales coming from the hyper-synthesis.

Both give the likelihood of a quantised value ``ŷ`` as the mass of
``[ŷ - 0.5, ŷ + 0.5]``. Training replaces rounding by additive uniform noise
(:func:`quantize`, ``"noise"``), so the likelihoods are those of the noisy
latents; at test time values are rounded (a factorised density's around its
channel's median). :func:`bits` turns likelihoods into the rate.

For the file, each model becomes integer tables, built once from the trained
float model (:func:`factorized_tables`, :func:`gaussian_tables`) and stored
in the model file: per table, the probabilities of a range of symbols and of
one *escape* symbol, in units of ``2**-PRECISION`` (16 bits), every one at
least 1, summing exactly to ``2**PRECISION`` (:func:`quantize_pmf`). A value
outside its table's range is coded as the escape symbol followed by the value
itself in raw bits (:mod:`perceptlab.codec.coding`), so any integer can be
coded, at a high but bounded cost.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from perceptlab.nets.layers import lower_bound

# Probabilities of the integer tables are multiples of 2**-PRECISION.
PRECISION = 16
# The mass a table leaves to its escape symbol, at most: the factorised tables cover the quantiles
# TAIL_MASS / 2 and 1 - TAIL_MASS / 2, the Gaussian ones +-TAIL_SIGMAS scales.
TAIL_MASS = 1e-9
TAIL_SIGMAS = 6.109  # -Phi^-1(TAIL_MASS / 2)
# A table holds at most this many symbols (wider ranges escape); keeps tables small for a wild density.
MAX_SYMBOLS = 4095
# No likelihood is taken below this, so the rate stays finite (CompressAI's choice).
LIKELIHOOD_BOUND = 1e-9
# The Gaussian scales' table: 64 values log-spaced from 0.11 to 256 (Ballé et al. 2018 as in CompressAI);
# scales are bounded below by the first.
SCALE_MIN, SCALE_MAX, SCALE_LEVELS = 0.11, 256.0, 64


def scale_table() -> torch.Tensor:
    """The Gaussian conditional's scales, float64, (SCALE_LEVELS,)."""
    return torch.exp(torch.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), SCALE_LEVELS, dtype=torch.float64))


def quantize(x: torch.Tensor, mode: str, offset: torch.Tensor | None = None) -> torch.Tensor:
    """Stand-in for rounding: ``"noise"`` adds U(-0.5, 0.5) (training), ``"round"`` rounds.

    ``offset`` (broadcast against ``x``): round around it, ``round(x - offset) + offset``
    (a factorised density's medians).
    """
    if mode == "noise":
        return x + torch.empty_like(x).uniform_(-0.5, 0.5)
    if mode != "round":
        raise ValueError(f"mode must be 'noise' or 'round', got {mode!r}")
    if offset is None:
        return torch.round(x)
    return torch.round(x - offset) + offset


def bits(likelihoods: torch.Tensor) -> torch.Tensor:
    """The rate of values with these likelihoods, ``sum(-log2 p)``, in bits."""
    return -torch.log2(likelihoods).sum()


class FactorizedDensity(nn.Module):
    """A learned density per channel, its cumulative a composition of small monotone maps.

    For each channel, ``c(x) = sigmoid(f_K(... f_1(x)))`` with
    ``f_k(x) = g_k(softplus(H_k) x + b_k)``, ``g_k(x) = x + tanh(a_k) * tanh(x)``
    for ``k < K`` and ``g_K`` the identity, the matrices ``H_k`` sized by
    ``filters`` (1 → 3 → 3 → 3 → 1 by default). ``softplus`` keeps the matrices
    positive and ``tanh(a_k) > -1`` keeps each ``g_k`` increasing, so ``c`` is
    a cumulative distribution whatever the parameters. The likelihood of
    ``ŷ`` is ``c(ŷ + 0.5) - c(ŷ - 0.5)``, computed on the side of the median
    where the sigmoid does not saturate.

    Args:
        channels: C, one density per channel.
        filters: the hidden widths (the paper's ``(3, 3, 3)``).
        init_scale: the initial density's rough width.

    Shape:
        :meth:`likelihood`: (B, C, H, W) -> (B, C, H, W).

    Reference:
        Ballé, Minnen, Singh, Hwang and Johnston, "Variational image
        compression with a scale hyperprior", ICLR 2018, appendix 6.1.
    """

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        self.channels = channels
        widths = (1, *filters, 1)
        scale = init_scale ** (1.0 / (len(widths) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for k in range(len(widths) - 1):
            # softplus(H) starts at 1 / (scale * fan_out): the composition starts as a wide logistic.
            value = math.log(math.expm1(1.0 / scale / widths[k + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, widths[k + 1], widths[k]), value)))
            self.biases.append(nn.Parameter(torch.empty(channels, widths[k + 1], 1).uniform_(-0.5, 0.5)))
            if k < len(widths) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, widths[k + 1], 1)))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The cumulative's logits at ``x`` of shape (C, 1, L), per channel."""
        for k, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            x = torch.matmul(F.softplus(matrix), x) + bias
            if k < len(self.factors):
                x = x + torch.tanh(self.factors[k]) * torch.tanh(x)
        return x

    def _mass(self, values: torch.Tensor) -> torch.Tensor:
        """Probability of ``[v - 0.5, v + 0.5]`` for values (C, 1, L)."""
        lower = self.logits(values - 0.5)
        upper = self.logits(values + 0.5)
        # Subtract on the side where the sigmoids are not both near 1 (above the median, 1 - c is used).
        sign = -torch.sign(lower + upper).detach()
        return torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))

    def likelihood(self, y_hat: torch.Tensor) -> torch.Tensor:
        """Likelihood of each value of ``y_hat`` (noisy or quantised), bounded below by 1e-9."""
        b, c, h, w = y_hat.shape
        if c != self.channels:
            raise ValueError(f"expected {self.channels} channels, got shape {tuple(y_hat.shape)}")
        values = y_hat.transpose(0, 1).reshape(c, 1, -1)
        mass = self._mass(values).reshape(c, b, h, w).transpose(0, 1)
        return lower_bound(mass, LIKELIHOOD_BOUND)

    @torch.no_grad()
    def quantiles(self, probabilities: tuple[float, ...] = (TAIL_MASS / 2, 0.5, 1 - TAIL_MASS / 2)) -> torch.Tensor:
        """Where each channel's cumulative reaches each probability, (C, len(probabilities)) float64.

        Found by bisection on the monotone cumulative, in float64 (no
        auxiliary loss is trained for them, unlike CompressAI).
        """
        density = _float64_copy(self)
        targets = torch.tensor([math.log(p / (1 - p)) for p in probabilities], dtype=torch.float64)
        targets = targets.expand(self.channels, -1).unsqueeze(1).contiguous()  # (C, 1, P)
        low = torch.full_like(targets, -1.0)
        high = torch.full_like(targets, 1.0)
        for _ in range(64):  # widen the brackets until they hold the targets (2**64: beyond any latent)
            below = density.logits(low) > targets
            above = density.logits(high) < targets
            if not (below.any() or above.any()):
                break
            low = torch.where(below, low * 2, low)
            high = torch.where(above, high * 2, high)
        for _ in range(80):
            middle = (low + high) / 2
            under = density.logits(middle) < targets
            low, high = torch.where(under, middle, low), torch.where(under, high, middle)
        return ((low + high) / 2).squeeze(1)

    @torch.no_grad()
    def masses(self, values: torch.Tensor) -> torch.Tensor:
        """Float64 probabilities of ``[v - 0.5, v + 0.5]`` for values (C, L), per channel."""
        return _float64_copy(self)._mass(values.to(torch.float64).unsqueeze(1)).squeeze(1)


def _float64_copy(density: FactorizedDensity) -> FactorizedDensity:
    import copy

    return copy.deepcopy(density).to(torch.float64)


class GaussianConditional(nn.Module):
    """``y`` given its scale: ``N(0, σ²)`` convolved with U(-0.5, 0.5), σ bounded below by 0.11.

    No parameters: the scales come from the hyper-synthesis. The likelihood
    of ``ŷ`` is ``Φ((0.5 - |ŷ|) / σ) - Φ((-0.5 - |ŷ|) / σ)`` (the symmetric form
    is the more accurate in the tails).

    Shape:
        :meth:`likelihood`: ``y_hat`` and ``scales`` (B, M, H, W) -> (B, M, H, W).
    """

    def likelihood(self, y_hat: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        scales = lower_bound(scales, SCALE_MIN)
        values = torch.abs(y_hat)
        upper = _normal_cdf((0.5 - values) / scales)
        lower = _normal_cdf((-0.5 - values) / scales)
        return lower_bound(upper - lower, LIKELIHOOD_BOUND)


def _normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x / math.sqrt(2.0))


# ------------------------------------------------------------------ integer tables


def quantize_pmf(probabilities: np.ndarray, precision: int = PRECISION) -> np.ndarray:
    """Integers ``>= 1`` summing to ``2**precision``, close to ``probabilities`` (the escape symbol included).

    Each gets ``1 + floor(p (2**precision - n))``; what remains goes, one unit
    each, to the entries with the largest fractional parts (ties to the first).
    The input need not be normalised.

    Raises:
        ValueError: more than ``2**(precision - 1)`` entries, or no positive finite mass.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    total, n = 1 << precision, p.size
    if n < 1 or n > total // 2:
        raise ValueError(f"a table holds 1 to {total // 2} symbols, got {n}")
    p = np.clip(np.nan_to_num(p, nan=0.0, posinf=0.0), 0.0, None)
    if not p.sum() > 0:
        raise ValueError("a table needs some positive probability")
    scaled = p / p.sum() * (total - n)
    counts = np.floor(scaled).astype(np.int64) + 1
    remainder = total - int(counts.sum())
    order = np.argsort(-(scaled - np.floor(scaled)), kind="stable")
    counts[order[:remainder]] += 1
    return counts


def _pack(pmfs: list[np.ndarray], offsets: list[int]) -> dict[str, torch.Tensor]:
    """Tables of different lengths as one flat int32 array, with where each starts, its symbols' count and first."""
    starts = np.cumsum([0] + [len(p) for p in pmfs[:-1]])
    return {"pmf": torch.from_numpy(np.concatenate(pmfs).astype(np.int32)),
            "start": torch.from_numpy(starts.astype(np.int64)),
            "length": torch.tensor([len(p) - 1 for p in pmfs], dtype=torch.int32),
            "offset": torch.tensor(offsets, dtype=torch.int32)}  # fmt: skip


@torch.no_grad()
def factorized_tables(density: FactorizedDensity, medians: torch.Tensor) -> dict[str, torch.Tensor]:
    """One integer table per channel of ``density``, for symbols ``round(y - median)``.

    Args:
        medians: the channels' medians as the file uses them (float64, (C,)).

    Returns:
        ``{"pmf": int32, "start": (C,) int64, "length": (C,) int32, "offset": (C,) int32}``: channel
        ``c``'s symbols run from ``offset[c]`` to ``offset[c] + length[c] - 1``, their probabilities are
        ``pmf[start[c] : start[c] + length[c]]`` and the escape's ``pmf[start[c] + length[c]]``.
    """
    quantiles = density.quantiles()
    low = torch.floor(quantiles[:, 0] - medians).clamp(-MAX_SYMBOLS // 2, 0).to(torch.int64)
    high = torch.ceil(quantiles[:, 2] - medians).clamp(0, MAX_SYMBOLS // 2).to(torch.int64)
    width = int((high - low).max()) + 1
    symbols = low[:, None] + torch.arange(width, dtype=torch.int64)  # (C, width), past high ignored below
    masses = density.masses(symbols.to(torch.float64) + medians[:, None]).numpy()
    pmfs = []
    for c in range(density.channels):
        n = int(high[c] - low[c]) + 1
        inside = masses[c, :n]
        pmfs.append(quantize_pmf(np.append(inside, max(1.0 - inside.sum(), 0.0))))
    return _pack(pmfs, low.tolist())


def gaussian_tables() -> dict[str, torch.Tensor]:
    """One integer table per scale of :func:`scale_table`, symbols ``-R .. R`` with ``R = ceil(6.109 σ)``.

    Returns:
        As :func:`factorized_tables`, one row per scale.
    """
    pmfs, offsets = [], []
    for scale in scale_table().tolist():
        reach = min(math.ceil(TAIL_SIGMAS * scale), MAX_SYMBOLS // 2)
        values = torch.arange(-reach, reach + 1, dtype=torch.float64).abs()
        inside = (_normal_cdf((0.5 - values) / scale) - _normal_cdf((-0.5 - values) / scale)).numpy()
        pmfs.append(quantize_pmf(np.append(inside, max(1.0 - inside.sum(), 0.0))))
        offsets.append(-reach)
    return _pack(pmfs, offsets)
