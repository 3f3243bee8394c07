"""Training a learned codec for one rate-distortion trade-off.

::

    crops = data.sample_crops(batch_size)         # random crop x crop squares of the training folders
    out = model(crops)                             # CodecModel in train mode: latents + U(-0.5, 0.5) noise
    bpp = sum(-log2 likelihoods) / pixels          # all latents (y, and z for the hyperprior)
    loss = lambda * D + bpp                        # D = 255**2 * MSE, or a perceptual term (codec.distortion)
                                                   #   [+ chroma_weight * 255**2 * MSE(Cb, Cr)]
         [+ grid_weight * grid]                    # a lattice fixed to the pixel grid (losses.grid), period 16
    Adam step on loss (gradient norm clipped at 1)
    [--alternate: one Adam step of the VMAF proxy towards true VMAF on (crops, the codec's outputs)]

The loss is Ballé et al.'s ``R + λD`` written as CompressAI writes it, ``λ``
scaling the distortion: ``λ · 255² · MSE + bpp`` (MSE of images in [0, 1]),
or ``λ · (1 - MS-SSIM) + bpp``; LPIPS, DISTS, VGG features, VMAF and the VMAF proxy,
alone or mixed with MSE (``alpha``), are scaled to MSE's order (:mod:`perceptlab.codec.distortion`).
Our default ``λ = 0.0067`` is CompressAI's
third MSE quality level (its eight run from 0.0018 to 0.18); MS-SSIM needs
values about a thousand times larger (CompressAI's start at 2.4) and crops
of at least 161 pixels. Adam at 1e-4
and gradient clipping at norm 1 are CompressAI's example trainer's; no
auxiliary loss is needed, the density's quantiles being found by bisection
when the tables are built (:meth:`perceptlab.codec.model.CodecModel.build_tables`).

With ``distortion = "vmaf_proxy"`` the loss goes through a quality proxy
(:mod:`perceptlab.codec.proxy`, trained with ``train proxy``). Frozen, a codec learns to fool it (Chen et
al. report a proxy score of 97.74 where VMAF says 5.35); with ``alternate``, as in their method, every
codec step is followed by a proxy step on that step's crops and outputs, labelled with true VMAF, so
the proxy keeps up with what the codec makes. The run logs the true VMAF of each batch beside the
proxy's, which shows fooling as it happens, and writes the proxy it ends with to ``proxy.safetensors``.

The crops come from :class:`perceptlab.data.ImageCrops` (every image held in
memory as 8 bits); runs are resumable (:mod:`perceptlab.training`). At the
end the integer coding tables are built and ``model.safetensors`` is written
with them. Under ``torchrun`` it trains on several processes (:mod:`perceptlab.distributed`); each
process draws the training noise of its own crops.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from perceptlab.codec.distortion import BASES, DISTORTIONS, MS_SSIM_MIN_SIDE, Distortion, parse_distortion
from perceptlab.training import TrainConfig, save_model_file

ARCHS = ("bls2017", "hyperprior")
# Samples are made at most this large (longer side), to stay cheap.
SAMPLE_SIDE = 512
CLIP_NORM = 1.0


@dataclass
class CodecTrainConfig(TrainConfig):
    """Everything that defines a codec training run (also the TOML file's keys).

    Attributes:
        arch: ``bls2017`` or ``hyperprior`` (:mod:`perceptlab.nets.codec`).
        N, M: channels of the transforms and of the latent ``y``.
        lambda_: weight of the distortion (``--lambda``; see the module docstring).
        distortion: ``mse``, ``ms_ssim``, ``lpips``, ``dists``, ``feature:LAYER``, ``vmaf`` or ``vmaf_proxy``
            (:mod:`perceptlab.codec.distortion`).
        alpha: weight of the perceptual distortion against ``L_d``: ``D = α·L_p + (1-α)·L_d``.
        base_distortion: ``L_d``: ``mse`` (``255²·MSE``, Chen et al.'s), or ``ms_ssim``, ``lpips``, ``dists``,
            ``feature:LAYER``, scaled as the distortions are.
        proxy: the quality proxy for ``vmaf_proxy`` (a ``train proxy`` model, run folder or shipped name).
        alternate: train the proxy too, one step after every codec step (``vmaf_proxy`` only).
        proxy_lr: Adam learning rate of the proxy when ``alternate``.
        grid_weight: weight of a penalty on patterns fixed to the pixel grid
            (:func:`perceptlab.losses.grid.grid_loss` of the output against the crop, period ``grid_period``):
            what a codec fooling its proxy prints (docs/experiments/perceptual_compression.md); 0 = off.
        chroma_weight: weight ``C`` of a chroma term ``C · 255² · MSE(Cb, Cr)`` added to the distortion
            (:mod:`perceptlab.codec.distortion`: 1.5 with ``alpha = 0.8`` gives colour the weight it has in the
            MSE codec, which a luma-only VMAF takes away); 0 = off.
        grid_period: the lattice's period in pixels (16: the synthesis transform's four stride-2 stages;
            its phases hold the periods 2, 4 and 8 too).
        data: folders of training images (not searched recursively).
        steps: optimisation steps (the budget; may be raised when resuming).
        batch_size: crops per step.
        crop: side of the square training crops, a multiple of the network's stride (16 or 64).
        lr: Adam learning rate.
        lr_milestones, lr_gamma: steps at which every learning rate is multiplied by ``lr_gamma``
            (:func:`perceptlab.training.lr_factor`); none: constant rates.
        init: weights to start from: a codec ``model.safetensors`` (or run folder) of the same arch, N
            and M, trained for another ``lambda_`` (fine-tuning one model to each rate point is
            much cheaper than training each from scratch).
        val_data: folder of images whose estimated rate and PSNR go into ``metrics.csv`` every
            ``sample_every`` steps; the first one's reconstruction goes into ``samples/``.
            ``None``: the first training image is the sample, without scores.
        sample_every, ckpt_every, log_every: intervals in steps.
        seed: seed of every random stream.
        threads: torch CPU threads (0 = torch's default).
    """

    arch: str = "bls2017"
    N: int = 64
    M: int = 96
    lambda_: float = 0.0067
    distortion: str = "mse"
    alpha: float = 1.0
    base_distortion: str = "mse"
    proxy: str | None = None
    alternate: bool = False
    proxy_lr: float = 1e-4
    grid_weight: float = 0.0
    grid_period: int = 16
    chroma_weight: float = 0.0
    data: list[str] = field(default_factory=list)
    steps: int = 20000
    batch_size: int = 8
    crop: int = 256
    lr: float = 1e-4
    lr_milestones: list[int] = field(default_factory=list)
    lr_gamma: float = 0.5
    init: str | None = None
    val_data: str | None = None
    sample_every: int = 500
    ckpt_every: int = 100
    log_every: int = 10
    seed: int = 0
    threads: int = 0

    def validate(self) -> None:
        from perceptlab.nets.codec import CODEC_NETS

        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        name, _ = parse_distortion(self.distortion)
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {self.alpha}")
        base, _ = parse_distortion(self.base_distortion)
        if base not in BASES:
            raise ValueError(f"base_distortion must be one of {', '.join(BASES)} (feature as feature:LAYER), got "
                             f"{self.base_distortion!r}")  # fmt: skip
        if base != "mse" and (name == "mse" or self.base_distortion == self.distortion or self.alpha == 1):
            raise ValueError(f"base_distortion {self.base_distortion} is L_d in alpha * L_p + (1 - alpha) * L_d: it "
                             "needs a perceptual --distortion other than itself and --alpha below 1")  # fmt: skip
        if name == "vmaf_proxy" and not self.proxy:
            raise ValueError("distortion vmaf_proxy needs a trained quality proxy (--proxy; see train proxy)")
        if self.proxy and name != "vmaf_proxy":
            raise ValueError(f"--proxy is for distortion vmaf_proxy, not {self.distortion}")
        if self.alternate and name != "vmaf_proxy":
            raise ValueError("--alternate trains the VMAF proxy: it needs distortion vmaf_proxy")
        if not self.proxy_lr > 0:
            raise ValueError(f"proxy_lr must be positive, got {self.proxy_lr}")
        if self.grid_weight < 0 or self.grid_period < 2:
            raise ValueError(f"grid_weight must be non-negative and grid_period at least 2, got {self.grid_weight} "
                             f"and {self.grid_period}")  # fmt: skip
        if not self.chroma_weight >= 0:
            raise ValueError(f"chroma_weight must be non-negative, got {self.chroma_weight}")
        if self.proxy and not Path(self.proxy).exists():
            from perceptlab.codec.proxy import SHIPPED_PROXY

            if self.proxy not in SHIPPED_PROXY:
                raise ValueError(f"proxy {self.proxy}: no such file or folder, nor a shipped proxy")
        self.check_run()
        if min(self.N, self.M, self.steps, self.batch_size) < 1:
            raise ValueError("N, M, steps and batch_size must be positive")
        stride = CODEC_NETS[self.arch].stride
        if self.crop < stride or self.crop % stride:
            raise ValueError(f"crop must be a positive multiple of {stride} for {self.arch}, got {self.crop}")
        if "ms_ssim" in (name, base) and self.crop < MS_SSIM_MIN_SIDE:
            raise ValueError(f"ms_ssim needs crops of at least {MS_SSIM_MIN_SIDE} pixels, got {self.crop}")
        if not (self.lambda_ > 0 and self.lr > 0) or self.threads < 0:
            raise ValueError(f"lambda and lr must be positive and threads non-negative, got {self.lambda_}, "
                             f"{self.lr} and {self.threads}")  # fmt: skip
        if self.init and not Path(self.init).exists():
            raise ValueError(f"init {self.init}: no such file or folder")


def rate_distortion(out: dict, x: torch.Tensor, lambda_: float,
                    distortion: str | Distortion = "mse") -> dict[str, torch.Tensor]:  # fmt: skip
    """``{"loss", "bpp", "mse", "psnr"}`` and the perceptual value (``"ms_ssim"``, ``"lpips"``, ...) of a
    model's output for images ``x``.

    ``bpp`` is the likelihoods' rate per pixel of ``x``; ``loss = λ · D + bpp`` (see the module docstring).
    ``distortion``: a :class:`~perceptlab.codec.distortion.Distortion` or its spec.
    """
    if not isinstance(distortion, Distortion):
        distortion = Distortion(distortion)
    pixels = x.shape[0] * x.shape[-2] * x.shape[-1]
    bpp = sum(-torch.log2(p).sum() for p in out["likelihoods"].values()) / pixels
    parts = distortion(out["x_hat"], x)
    d = parts.pop("distortion")
    psnr = -10 * torch.log10(parts["mse"].clamp_min(1e-10))
    return {"loss": lambda_ * d + bpp, "bpp": bpp, "mse": parts.pop("mse"), "psnr": psnr, **parts}


def save_codec_weights(path: str | Path, model: torch.nn.Module, config: CodecTrainConfig, extra: dict) -> None:
    """Write the model (weights and coding tables) with what rebuilds it in the metadata."""
    metadata = {
        "task": "codec", "net": config.arch, "arch": config.arch, "N": str(config.N), "M": str(config.M),
        "lambda": repr(config.lambda_), "distortion": config.distortion, "alpha": repr(config.alpha), "config": json.dumps(dataclasses.asdict(config)),
        **extra,
    }  # fmt: skip
    save_model_file(path, model, metadata)


def _start_from(model: torch.nn.Module, config: CodecTrainConfig) -> None:
    """Load the float weights of ``config.init`` (its coding tables are not kept: they are rebuilt at the end)."""
    from perceptlab.codec.models import load_codec_model

    start = load_codec_model(config.init)
    if (start.arch, start.N, start.M) != (config.arch, config.N, config.M):
        raise ValueError(f"init {config.init} is a {start.arch} with N={start.N}, M={start.M}, not a "
                         f"{config.arch} with N={config.N}, M={config.M}")  # fmt: skip
    state = {k: v for k, v in start.state_dict().items() if not k.startswith("tables.")}
    model.load_state_dict(state)


def train_codec(config: CodecTrainConfig, out: str | Path, progress: bool = True) -> dict:
    """Train (or resume) a codec in ``out``; return a summary dict.

    The run folder holds ``config.toml``, ``checkpoint.pt``, ``metrics.csv``
    (step, seconds, loss, bpp, mse, psnr, [ms_ssim], and with ``val_data``
    val_bpp and val_psnr: the estimated rate and the PSNR of the rounded
    latents' reconstruction), ``samples/step_NNNNNN.png`` and, at the end,
    ``model.safetensors`` (metadata ``task = "codec"``, ``arch``, ``N``, ``M``,
    ``lambda``, ``distortion``, ``alpha``, ``name`` (the run folder's name, which the
    files it writes carry), the configuration, the steps and the training time). With
    ``vmaf_proxy``, metrics.csv also has ``vmaf`` (the batch's true VMAF, beside the proxy's
    ``vmaf_proxy``) and, with ``alternate``, ``proxy_loss`` and ``proxy_rmse``; the proxy is
    checkpointed with the codec and written to ``proxy.safetensors`` at the end.

    Returns:
        ``{"steps": int, "seconds": float, "final": {loss parts at the last step}, "weights": path}``

    Raises:
        ValueError: a bad configuration, or a folder holding another run.
        ImageError: a missing or unreadable image.
    """
    from perceptlab.codec.bitstream import pad
    from perceptlab.codec.model import CodecModel
    from perceptlab.data import ImageCrops
    from perceptlab.io import list_images, read_image, write_image
    from perceptlab.losses.grid import grid_loss
    from perceptlab.ops.resize import resize_longer_side
    from perceptlab.training import start_run, train_loop

    processes, shard, out, resumed, generator = start_run(config, out)
    model = CodecModel(config.arch, N=config.N, M=config.M)
    if config.init and resumed is None:
        _start_from(model, config)
    trained = processes.data_parallel(model)  # what the step calls; model itself is saved and sampled
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    state: dict = {"net": model, "optimizer": optimizer}
    proxy = true_vmaf = proxy_optimizer = None
    if config.distortion == "vmaf_proxy":
        from perceptlab.codec.proxy import load_proxy
        from perceptlab.metrics.vmaf import VMAF

        true_vmaf = VMAF(reduction="none").to(processes.device)
        proxy = processes.replicate(load_proxy(config.proxy).to(processes.device))
        if config.alternate:
            proxy_optimizer = torch.optim.Adam(proxy.parameters(), lr=config.proxy_lr)
            state |= {"proxy": proxy, "proxy_optimizer": proxy_optimizer}
    distortion = Distortion(config.distortion, config.alpha, proxy, config.base_distortion,
                            config.chroma_weight).to(processes.device)  # fmt: skip
    data = ImageCrops(config.data, crop=config.crop, seed=config.seed)
    val_paths = list_images(config.val_data) if config.val_data else []
    if config.val_data and not val_paths:
        raise ValueError(f"{config.val_data}: no images to validate on")
    val = [read_image(p) for p in val_paths]
    sample = val[0] if val else read_image(data.paths[0])
    if max(sample.shape[-2:]) > SAMPLE_SIDE:
        sample = resize_longer_side(sample, SAMPLE_SIDE)

    def step_fn() -> dict:
        crops = data.sample_crops(config.batch_size, generator, shard).to(processes.device)
        if proxy is not None:
            proxy.eval().requires_grad_(False)  # the codec's step passes through the proxy, not into it
        result = trained(crops)
        terms = rate_distortion(result, crops, config.lambda_, distortion)
        if config.grid_weight:
            terms["grid"] = grid_loss(result["x_hat"], crops, config.grid_period)
            terms["loss"] = terms["loss"] + config.grid_weight * terms["grid"]
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
        optimizer.step()
        terms = {k: v.detach() for k, v in terms.items()}
        if proxy is not None:
            x_hat = result["x_hat"].detach().clamp(0, 1)
            labels = true_vmaf(x_hat, crops)
            terms["vmaf"] = labels.mean()
            if proxy_optimizer is not None:
                from perceptlab.codec.proxy import fit_step

                proxy.requires_grad_(True)
                terms |= fit_step(proxy, proxy_optimizer, x_hat, crops, labels, processes)
        return terms

    def reconstruct(x: torch.Tensor) -> tuple[torch.Tensor, float]:
        h, w = x.shape[-2:]
        result = processes.hosted(model)(pad(x, model.stride))
        bits = float(sum(-torch.log2(p).sum() for p in result["likelihoods"].values()))
        return result["x_hat"][..., :h, :w].clamp(0, 1), bits / (h * w)

    def sample_fn(path: Path) -> dict:
        write_image(reconstruct(sample)[0], path)
        if not val:
            return {}
        rates, psnrs = [], []
        for x in val:
            x_hat, bpp = reconstruct(x)
            rates.append(bpp)
            psnrs.append(-10 * math.log10(max(float(torch.mean((x_hat - x) ** 2)), 1e-10)))
        return {"val_bpp": sum(rates) / len(rates), "val_psnr": sum(psnrs) / len(psnrs)}

    summary = train_loop(out, dataclasses.asdict(config), step_fn, state, generator,
                         resumed, steps=config.steps, log_every=config.log_every, ckpt_every=config.ckpt_every,
                         sample_every=config.sample_every, sample=sample_fn,
                         desc=f"train codec {config.arch}", progress=progress)  # fmt: skip
    step, seconds, parts = summary["steps"], summary["seconds"], summary["final"]
    model.eval()
    weights = out / "model.safetensors"
    if processes.main:
        model.cpu().build_tables()
        save_codec_weights(weights, model, config, {"name": out.resolve().name, "steps": str(step),
                                                    "train_seconds": f"{seconds:.1f}"})  # fmt: skip
        if proxy_optimizer is not None:
            from perceptlab.codec.proxy import save_proxy

            proxy.eval()
            save_proxy(out / "proxy.safetensors", proxy.cpu(), None,
                       {"name": f"{out.resolve().name}/proxy", "steps": str(step), "trained_with": config.proxy})  # fmt: skip
    return {"steps": step, "seconds": seconds, "final": parts, "weights": str(weights)}
