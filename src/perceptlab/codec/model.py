"""A learned codec: a network of :mod:`perceptlab.nets.codec` with its entropy models and integer coding tables.

::

    model = CodecModel("hyperprior", N=64, M=96)
    out = model(x)        # train mode: noisy latents; eval mode: rounded ones
    out["x_hat"], out["likelihoods"]["y"], out["likelihoods"]["z"]
    model.build_tables()  # once, after training: what the file format codes with

``build_tables`` freezes everything the coder needs into buffers under
``tables.`` (saved with the weights): each factorised channel's median,
rounded to a multiple of ``2**-ACTIVATION_BITS``, and its integer table; the
Gaussian scales' integer tables and the integer thresholds between them; and
the hyper-synthesis in integer form (:mod:`perceptlab.codec.fixed_point`).
Coding then reads only those integers (and the float synthesis, which makes
the pixels but chooses nothing the parser depends on).
"""

from __future__ import annotations

import torch
from torch import nn

from perceptlab.codec import entropy, fixed_point
from perceptlab.codec.coding import Tables


class CodingTables(nn.Module):
    """Integer buffers only, named as in :meth:`CodecModel.build_tables`; rebuilt from a state dict's shapes.
    The hyper-synthesis weights (``hs*_weight``), stored in int32 by a compact file
    (:func:`perceptlab.codec.models.compact_model_file`), are widened to the int64 they compute in."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        super().__init__()
        for name, value in tensors.items():
            if name.startswith("hs") and name.endswith("_weight"):
                value = value.to(torch.int64)
            self.register_buffer(name, value.clone())

    def as_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        return {name[len(prefix):]: value for name, value in self.named_buffers() if name.startswith(prefix)}


class CodecModel(nn.Module):
    """Ballé et al.'s codec ``arch`` (``bls2017`` or ``hyperprior``) with N and M channels.

    Attributes:
        net: the transforms (:func:`perceptlab.nets.codec.build_codec_net`).
        density: the factorised density of ``y`` (bls2017) or ``z`` (hyperprior).
        gaussian: the hyperprior's conditional model of ``y`` (``None`` for bls2017).
        tables: the integer coding tables, ``None`` until :meth:`build_tables`.
        name: what a file's header calls the model (set by the loader; default ``arch``).
        stride: image sides are padded to multiples of it for coding.

    Shape:
        ``forward``: (B, 3, H, W), H and W multiples of ``stride`` -> ``{"x_hat": (B, 3, H, W),
        "likelihoods": {"y": (B, M, H/16, W/16), "z": (B, N, H/64, W/64) for the hyperprior}}``.
    """

    def __init__(self, arch: str = "bls2017", N: int | None = None, M: int | None = None):
        from perceptlab.nets.codec import DEFAULT_M, DEFAULT_N, build_codec_net

        super().__init__()
        self.net = build_codec_net(arch, N=DEFAULT_N if N is None else N, M=DEFAULT_M if M is None else M)
        self.arch, self.N, self.M = arch, self.net.N, self.net.M
        self.hyper, self.stride = self.net.hyper, self.net.stride
        self.density = entropy.FactorizedDensity(self.N if self.hyper else self.M)
        self.gaussian = entropy.GaussianConditional() if self.hyper else None
        self.register_module("tables", None)
        self.name = arch

    # ------------------------------------------------------------ training and estimates

    def forward(self, x: torch.Tensor) -> dict:
        mode = "noise" if self.training else "round"
        y = self.net.analysis(x)
        if not self.hyper:
            y_hat = entropy.quantize(y, mode, self._medians()[:, None, None])
            likelihoods = {"y": self.density.likelihood(y_hat)}
        else:
            z = self.net.hyper_analysis(y)
            z_hat = entropy.quantize(z, mode, self._medians()[:, None, None])
            scales = self.net.hyper_synthesis(z_hat)
            y_hat = entropy.quantize(y, mode)
            likelihoods = {"y": self.gaussian.likelihood(y_hat, scales), "z": self.density.likelihood(z_hat)}
        return {"x_hat": self.net.synthesis(y_hat), "likelihoods": likelihoods}

    def _medians(self) -> torch.Tensor:
        """The factorised density's medians as coding uses them (from the tables once built), float32."""
        if self.tables is not None:
            return self.tables.median.to(torch.float32) / 2**fixed_point.ACTIVATION_BITS
        if self.training:
            return torch.zeros(self.density.channels, device=next(self.parameters()).device)  # noise needs no offset
        return self._median_steps().to(torch.float32) / 2**fixed_point.ACTIVATION_BITS

    def _median_steps(self) -> torch.Tensor:
        """The density's medians in units of 2**-ACTIVATION_BITS, int64."""
        return torch.round(self.density.quantiles((0.5,))[:, 0] * 2**fixed_point.ACTIVATION_BITS).to(torch.int64)

    # ------------------------------------------------------------ tables

    @torch.no_grad()
    def build_tables(self) -> None:
        """Compute the integer coding tables from the float model, once (replacing any there were)."""
        median = self._median_steps()
        factorized = entropy.factorized_tables(self.density, median.to(torch.float64) / 2**fixed_point.ACTIVATION_BITS)
        tensors = {"median": median, **{f"latent_{k}": v for k, v in factorized.items()}}
        if self.hyper:
            tensors |= {f"scale_{k}": v for k, v in entropy.gaussian_tables().items()}
            tensors["scale_bound"] = fixed_point.thresholds(entropy.scale_table())
            tensors |= fixed_point.quantize_layers(self.net.h_s)
        self.tables = CodingTables(tensors)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As ``nn.Module``'s, creating the ``tables`` buffers first when the state holds them."""
        tables = {k[len("tables."):]: v for k, v in state_dict.items() if k.startswith("tables.")}
        self.tables = CodingTables(tables) if tables else None
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def coding_tables(self) -> dict[str, Tables]:
        """The tables as constriction models: ``"latent"`` (factorised) and, for the hyperprior, ``"scale"``."""
        if self.tables is None:
            raise ValueError(f"model {self.name} has no coding tables: call build_tables() after training")
        cached = getattr(self, "_coding_tables", None)
        if cached is None or cached[0] is not self.tables:
            t = self.tables
            made = {"latent": Tables(t.latent_pmf, t.latent_start, t.latent_length, t.latent_offset)}
            if self.hyper:
                made["scale"] = Tables(t.scale_pmf, t.scale_start, t.scale_length, t.scale_offset)
            cached = (self.tables, made)
            self._coding_tables = cached
        return cached[1]

    # ------------------------------------------------------------ symbols

    @torch.no_grad()
    def symbols(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The integer symbols of one padded image (1, 3, H, W): ``{"y"}`` or ``{"z", "y"}``, int64 (C, h, w)."""
        medians = self._medians()[:, None, None]
        y = self.net.analysis(x)[0]
        if not self.hyper:
            return {"y": torch.round(y - medians).to(torch.int64)}
        z = self.net.hyper_analysis(y[None])[0]
        return {"z": torch.round(z - medians).to(torch.int64), "y": torch.round(y).to(torch.int64)}

    def scale_indices(self, z: torch.Tensor) -> torch.Tensor:
        """The hyperprior's table index for every symbol of ``y``, from ``z``'s symbols, in integer arithmetic."""
        t = self.tables.as_dict()
        x = z.to(torch.int64) * 2**fixed_point.ACTIVATION_BITS + t["median"][:, None, None]
        return fixed_point.table_indices(fixed_point.run_layers(x, t), t["scale_bound"])

    @torch.no_grad()
    def reconstruct(self, symbols: dict[str, torch.Tensor]) -> torch.Tensor:
        """The image (1, 3, H, W) of decoded symbols (not clamped)."""
        y_hat = symbols["y"].to(torch.float32)
        if not self.hyper:
            y_hat = y_hat + self._medians()[:, None, None]
        return self.net.synthesis(y_hat[None])
