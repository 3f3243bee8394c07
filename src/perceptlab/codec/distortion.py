"""The distortion ``D`` of a codec's training loss ``λ·D + R``: MSE, or a perceptual measure mixed with MSE.

``--distortion NAME`` with ``--alpha A`` gives, as Chen et al. (ProxIQA) write it,
``D = A·L_p + (1 - A)·L_d`` with ``L_d = 255²·MSE`` and ``L_p`` the perceptual term below
(``A = 1``, the default: the perceptual term alone). ``--base-distortion`` chooses another
``L_d`` among the terms below but the two VMAFs (``lpips``, say, so that a VMAF-trained codec
is held to LPIPS rather than to MSE), scaled the same way. Each term is scaled so that, for our
MSE-trained ``q3`` codec on 128-pixel training crops, it is of the same order as ``255²·MSE``
(75 there): one λ grid serves every distortion, and ``A`` mixes comparable numbers.

==============  =================================================  ===========  ================
NAME            L_p                                                scale        value at q3
==============  =================================================  ===========  ================
mse             (``255²·MSE`` itself; ``--alpha`` is ignored)       255²         75
ms_ssim         1 - MS-SSIM (crops >= 161 px)                       1            (CompressAI's λ)
lpips           LPIPS (AlexNet, v0.1)                               100          24
dists           DISTS                                               100          16
feature:LAYER   VGG-16 feature MSE at LAYER (Johnson et al.)        10           18 (relu2_2)
vmaf            100 - VMAF (vmaf-torch, differentiable)             1            36
vmaf_proxy      100 - the quality proxy's VMAF estimate             1            36 (if it is right)
==============  =================================================  ===========  ================

``ms_ssim`` keeps CompressAI's unscaled ``1 - MS-SSIM`` (its λ values start at 2.4), so that
published λ values carry over.

VMAF is luma-only: with ``A = 0.8`` a codec trained on it (or its proxy) spends fewer bits on colour (chroma
PSNR BD-rate +40 to +60 % against the MSE codec; skin turns olive). ``--chroma-weight C`` adds
``C · 255² · MSE(Cb, Cr)`` (BT.601 full range, :func:`perceptlab.metrics.fidelity.rgb_to_cbcr`) to ``D``. The MSE
codec's ``255²·MSE`` of RGB weighs chroma errors by about 1.9 on that scale (``R = Y + 1.402 Cr``,
``B = Y + 1.772 Cb``, ``G = Y - 0.344 Cb - 0.714 Cr``: ``MSE(RGB) ≈ MSE(Y) + 1.9 · MSE(Cb, Cr)``, the chroma MSE
being the mean over both channels); ``(1 - A)·255²·MSE`` keeps ``(1 - A)`` of that, so ``C = 1.9·A``
(1.5 at ``A = 0.8``) gives colour back the weight it has in the MSE codec.
"""

from __future__ import annotations

import torch
from torch import nn

PERCEPTUAL = ("ms_ssim", "lpips", "dists", "feature", "vmaf", "vmaf_proxy")
DISTORTIONS = ("mse", *PERCEPTUAL)
BASES = ("mse", "ms_ssim", "lpips", "dists", "feature")  # what L_d may be
SCALES = {"mse": 255.0**2, "ms_ssim": 1.0, "lpips": 100.0, "dists": 100.0, "feature": 10.0, "vmaf": 1.0,
          "vmaf_proxy": 1.0}  # fmt: skip
# MS-SSIM's five scales need this many pixels (perceptlab.metrics.ssim.ms_ssim).
MS_SSIM_MIN_SIDE = 161


def parse_distortion(spec: str) -> tuple[str, str | None]:
    """``"feature:relu3_3"`` -> ``("feature", "relu3_3")``; a ValueError naming the choices otherwise."""
    name, _, arg = str(spec).partition(":")
    if name not in DISTORTIONS:
        raise ValueError(f"distortion must be one of {', '.join(DISTORTIONS)} (feature as feature:LAYER), "
                         f"got {spec!r}")  # fmt: skip
    if name == "feature":
        from perceptlab.features.vgg import VGG16_LAYERS

        if not arg:
            raise ValueError("distortion feature needs a layer: feature:relu2_2, feature:relu3_3, ...")
        if arg not in VGG16_LAYERS:
            raise ValueError(f"unknown VGG-16 layer {arg!r} in distortion {spec!r}; choose from "
                             f"{', '.join(VGG16_LAYERS)}")  # fmt: skip
    elif arg:
        raise ValueError(f"distortion {name} takes no argument, got {spec!r}")
    return name, arg or None


class Distortion(nn.Module):
    """``D(x_hat, x)`` of the module docstring, with its parts for the log.

    Args:
        spec: the distortion's name (``feature:LAYER`` for VGG features).
        alpha: the weight of the perceptual term against ``L_d``, in ``[0, 1]``.
        base: ``L_d``, one of :data:`BASES` (``feature:LAYER`` too); default ``255²·MSE``.
        proxy: the quality proxy (:class:`perceptlab.nets.proxy.QualityProxy`) for ``vmaf_proxy``.
            Its weights are not trained through ``D``: the codec's gradient passes through it
            to the image only.

        chroma: the weight ``C`` of ``C · 255² · MSE(Cb, Cr)``, added to ``D`` (0: none).

    ``forward`` returns ``{"distortion": D, "mse": MSE, NAME: the perceptual value}`` (the value
    unscaled: LPIPS, the proxy's VMAF estimate, ...; ``L_d``'s too when it is not MSE; ``chroma_mse``
    with a chroma term); only ``distortion`` carries gradients.
    """

    def __init__(self, spec: str = "mse", alpha: float = 1.0, proxy: nn.Module | None = None, base: str = "mse",
                 chroma: float = 0.0):  # fmt: skip
        super().__init__()
        self.name, self.arg = parse_distortion(spec)
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        if not float(chroma) >= 0.0:
            raise ValueError(f"the chroma weight must be non-negative, got {chroma}")
        self.chroma = float(chroma)
        self.alpha = float(alpha) if self.name != "mse" else 1.0
        base_name, _ = parse_distortion(base)
        if base_name not in BASES:
            raise ValueError(f"base distortion must be one of {', '.join(BASES)} (feature as feature:LAYER), "
                             f"got {base!r}")  # fmt: skip
        if base_name != "mse" and (self.name == "mse" or base == spec):
            raise ValueError(f"base distortion {base} mixes with a perceptual --distortion other than itself, "
                             f"not with {spec}")  # fmt: skip
        self.base = None if base_name == "mse" else Distortion(base)
        if self.name == "vmaf_proxy" and proxy is None:
            raise ValueError("distortion vmaf_proxy needs a trained quality proxy (--proxy)")
        self.proxy = proxy
        self.term: nn.Module | None = None
        if self.name in ("lpips", "dists"):
            from perceptlab.losses.combined import build_loss

            self.term = build_loss(self.name)
        elif self.name == "feature":
            from perceptlab.losses.perceptual import FeatureLoss

            self.term = FeatureLoss(self.arg)
        elif self.name == "vmaf":
            from perceptlab.metrics.vmaf import VMAF

            self.term = VMAF()
        for module in (self.term, self.proxy):
            if module is not None:
                module.requires_grad_(False)

    def perceptual(self, x_hat: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(L_p before its scale, the value to log)``."""
        if self.name == "ms_ssim":
            from perceptlab.losses.structural import ms_ssim_loss

            d = ms_ssim_loss(x_hat, x)
            return d, 1 - d.detach()
        if self.name in ("vmaf", "vmaf_proxy"):
            score = self.term(x_hat.clamp(0, 1), x) if self.name == "vmaf" else self.proxy(x_hat, x).mean()
            return 100 - score, score.detach()
        d = self.term(x_hat, x)
        return d, d.detach()

    def forward(self, x_hat: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = self._main(x_hat, x)
        if self.chroma:
            from perceptlab.metrics.fidelity import rgb_to_cbcr

            chroma_mse = rgb_to_cbcr(x_hat - x, offset=False).square().mean()
            parts["chroma_mse"] = chroma_mse.detach()
            parts["distortion"] = parts["distortion"] + self.chroma * SCALES["mse"] * chroma_mse
        return parts

    def _main(self, x_hat: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mse = torch.mean((x_hat - x) ** 2)
        terms = {"mse": mse.detach()}
        if self.name == "mse":
            return {"distortion": SCALES["mse"] * mse, **terms}
        d, value = self.perceptual(x_hat, x)
        terms[self.name] = value
        distortion = self.alpha * SCALES[self.name] * d
        if self.alpha < 1 and self.base is None:
            distortion = distortion + (1 - self.alpha) * SCALES["mse"] * mse
        elif self.alpha < 1:
            base = self.base(x_hat, x)
            terms[self.base.name] = base[self.base.name]
            distortion = distortion + (1 - self.alpha) * base["distortion"]
        return {"distortion": distortion, **terms}
