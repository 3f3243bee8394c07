"""Training super-resolution networks with any weighted combination of losses, GANs included.

One loop for every network of :data:`perceptlab.nets.sr.SR_NETS`::

    lr, hr = data.sample_batch(batch_size)          # random HR crops, LR made on the fly
    sr = net(lr)
    parts = loss(sr, hr)                             # CombinedLoss: {"loss", "<term>", ...}
    generator step on parts["loss"]
    [discriminator step on adversarial.discriminator_step_loss(sr, hr)]   # when a GAN term is present

Runs are resumable (see :mod:`perceptlab.training`): ``train_sr`` called again
with the same configuration and folder continues from the last checkpoint.
Under ``torchrun`` it trains on several processes (:mod:`perceptlab.distributed`): the network in
``DistributedDataParallel``; the discriminator's gradients are averaged after its own backward pass
(:meth:`~perceptlab.distributed.World.average_gradients`), since the generator's step leaves gradients in
it that its step drops.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from perceptlab.features.base import native_bf16
from perceptlab.sr.models import net_options
from perceptlab.losses import AdversarialLoss, CombinedLoss, parse_spec
from perceptlab.training import TrainConfig, load_model_file, save_model_file, start_run, train_loop


@dataclass
class SRTrainConfig(TrainConfig):
    """Everything that defines a super-resolution training run (also the TOML file's keys).

    Attributes:
        net: a name of :data:`perceptlab.nets.sr.SR_NETS` (``srcnn``, ``johnson``, ``srresnet``, ``perceptsr``).
        upsample: ``perceptsr`` only: ``subpixel`` or ``nearest`` (:class:`perceptlab.nets.sr.PerceptSRNet`);
            ``None``: the network's own.
        scale: upscaling factor.
        losses: loss specs ``TERM[:ARG][*WEIGHT]`` (see :mod:`perceptlab.losses.combined`);
            an ``adversarial`` term adds a discriminator and its own optimisation step.
        data: folders of high-resolution training images.
        steps: optimisation steps (the budget; may be raised when resuming).
        batch_size: HR crops per step.
        hr_crop: side of the HR crops (the LR input is ``hr_crop / scale``).
        lr: Adam learning rate of the network.
        lr_milestones, lr_gamma: steps at which every learning rate is multiplied by ``lr_gamma``
            (:func:`perceptlab.training.lr_factor`); none: constant rates.
        blur_sigma: Gaussian blur before bicubic downsampling (Johnson et al.: 1.0; 0 = plain bicubic).
        vgg_weights: ``vgg16`` or ``vgg16_caffe`` for the feature and style terms.
        vgg_precision: ``fp32`` or ``bf16``: the loss network's precision
            (:class:`perceptlab.losses.FeatureLoss`); bf16 pays off on CPUs with
            bfloat16 units and GPUs, and is validated in the tests and benchmarks/README.md.
        discriminator: ``srgan`` or ``patch``, used when an adversarial term is present.
        d_lr: Adam learning rate of the discriminator.
        init: weights to start the network from (a ``model.safetensors``, e.g. SRResNet for SRGAN).
        val_data: a benchmark folder (``Set5``-like layout) for periodic validation.
        val_every, ckpt_every, log_every: intervals in steps.
        seed: seed of every random stream.
        threads: torch CPU threads (0 = torch's default).
    """

    net: str = "johnson"
    upsample: str | None = None
    scale: int = 4
    losses: list[str] = field(default_factory=lambda: ["feature:relu2_2"])
    data: list[str] = field(default_factory=list)
    steps: int = 1000
    batch_size: int = 16
    hr_crop: int = 96
    lr: float = 1e-3
    lr_milestones: list[int] = field(default_factory=list)
    lr_gamma: float = 0.5
    blur_sigma: float = 0.0
    vgg_weights: str = "vgg16"
    vgg_precision: str = "fp32"
    discriminator: str = "srgan"
    d_lr: float = 1e-4
    init: str | None = None
    val_data: str | None = None
    val_every: int = 500
    ckpt_every: int = 100
    log_every: int = 10
    seed: int = 0
    threads: int = 0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting; every check here runs before any work."""
        from perceptlab.nets.sr import SR_NETS

        self.check_run()
        info = SR_NETS.get(self.net)
        if info is None or self.net == "bicubic":  # bicubic has nothing to train
            raise ValueError(f"net must be one of {', '.join(n for n in SR_NETS if n != 'bicubic')}, got {self.net!r}")
        if isinstance(self.scale, bool) or not isinstance(self.scale, int) or not info.supports(self.scale):
            raise ValueError(f"scale {self.scale!r} is not one {self.net} supports ({info.scales_text()})")
        if self.upsample is not None:
            from perceptlab.nets.sr import SR_UPSAMPLES

            if self.net != "perceptsr":
                raise ValueError(f"upsample is an option of the perceptsr net only, not of {self.net}")
            if self.upsample not in SR_UPSAMPLES:
                raise ValueError(f"upsample must be one of {', '.join(SR_UPSAMPLES)}, got {self.upsample!r}")
        if self.hr_crop < self.scale or self.hr_crop % self.scale:
            raise ValueError(f"hr_crop {self.hr_crop} must be a positive multiple of the scale {self.scale}")
        for spec in self.losses:
            parse_spec(spec)
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be positive")
        if not (self.lr > 0 and self.d_lr > 0) or self.blur_sigma < 0 or self.threads < 0:
            raise ValueError("lr and d_lr must be positive, blur_sigma and threads non-negative")
        for key, allowed in (("vgg_precision", ("fp32", "bf16")), ("vgg_weights", ("vgg16", "vgg16_caffe")),
                             ("discriminator", ("srgan", "patch"))):  # fmt: skip
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key} must be one of {', '.join(allowed)}, got {getattr(self, key)!r}")
        for key in ("init", "val_data"):
            path = getattr(self, key)
            if path and not Path(path).exists():
                raise ValueError(f"{key} {path}: no such file or folder")


def _build(config: SRTrainConfig):
    from perceptlab.nets.sr import build_sr_net

    net = build_sr_net(config.net, scale=config.scale, **net_options(config.upsample))
    if config.init:
        net.load_state_dict(load_model_file(config.init)[0])
    discriminator = None
    if any(parse_spec(s)[0] == "adversarial" for s in config.losses):
        discriminator = _build_discriminator(config.discriminator)
    loss = CombinedLoss.from_specs(config.losses, vgg_weights=config.vgg_weights, vgg_precision=config.vgg_precision,
                                   discriminator=discriminator, scale=config.scale)  # fmt: skip
    uses_bf16 = any(getattr(getattr(m, "net", None), "precision", None) == "bf16" for m in loss.terms.values())
    if uses_bf16 and not native_bf16():
        warnings.warn("vgg_precision 'bf16': this CPU cannot run bfloat16 convolutions in oneDNN (that needs AVX-512), "
                      "so the loss network runs PyTorch's fallback: a training step takes about 10x as long as "
                      "with fp32 (measured on an AVX2-only AMD EPYC); use fp32 here", stacklevel=2)  # fmt: skip
    return net, loss, discriminator


def _build_discriminator(name: str) -> torch.nn.Module:
    if name == "srgan":
        from perceptlab.nets.discriminators import SRGANDiscriminator

        return SRGANDiscriminator()
    if name == "patch":
        from perceptlab.nets import PatchDiscriminator

        return PatchDiscriminator()
    raise ValueError(f"discriminator must be 'srgan' or 'patch', got {name!r}")


def _adversarial_term(loss: CombinedLoss) -> AdversarialLoss | None:
    return next((m for m in loss.terms.values() if isinstance(m, AdversarialLoss)), None)


def save_sr_weights(path: str | Path, net: torch.nn.Module, config: SRTrainConfig, extra: dict | None = None) -> None:
    """Write the network's weights with what is needed to rebuild it (task, net, scale, config) in the metadata."""
    metadata = {"task": "sr", "net": config.net, "scale": str(config.scale), **net_options(config.upsample),
                "config": json.dumps(dataclasses.asdict(config)), **(extra or {})}  # fmt: skip
    save_model_file(path, net, metadata)


def train_sr(config: SRTrainConfig, out: str | Path, progress: bool = True) -> dict:
    """Train (or resume) a super-resolution run in ``out``; return a summary dict.

    Returns:
        ``{"steps": int, "seconds": float, "final": {loss parts at the last step}, "weights": path}``
    """
    from perceptlab.sr.data import SRTrainingSet

    processes, shard, out, resumed, generator = start_run(config, out)
    net, loss, discriminator = _build(config)
    loss.to(processes.device)
    model = processes.data_parallel(net)  # what the step calls; net itself is saved and sampled
    if discriminator is not None:
        processes.replicate(discriminator)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=config.d_lr, betas=(0.9, 0.999)) if discriminator else None
    data = SRTrainingSet(config.data, scale=config.scale, hr_crop=config.hr_crop, blur_sigma=config.blur_sigma,
                         seed=config.seed)  # fmt: skip
    adversarial = _adversarial_term(loss)
    val = _validation(config)
    if val is None:  # no benchmark: samples/ shows the centre of the first training image, scored by nothing
        val = _sample_sheet(config, data)

    def step_fn() -> dict:
        lr_batch, hr_batch = (x.to(processes.device) for x in data.sample_batch(config.batch_size, generator, shard))
        sr = model(lr_batch)
        terms = loss(sr, hr_batch)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        parts = {k: v.detach() for k, v in terms.items()}
        if adversarial is not None:
            d_optimizer.zero_grad(set_to_none=True)  # drops what the generator step left in D
            d_loss = adversarial.discriminator_step_loss(sr.detach(), hr_batch)
            d_loss.backward()
            processes.average_gradients(discriminator)
            d_optimizer.step()
            parts["d_loss"] = d_loss.detach()
        return parts

    state = {"net": net, "optimizer": optimizer}
    if discriminator is not None:
        state |= {"discriminator": discriminator, "d_optimizer": d_optimizer}
    summary = train_loop(out, dataclasses.asdict(config), step_fn, state, generator, resumed, steps=config.steps,
                         log_every=config.log_every, ckpt_every=config.ckpt_every, sample_every=config.val_every,
                         sample=lambda path: val(processes.hosted(net), path),
                         desc=f"train {config.net} x{config.scale}", progress=progress)  # fmt: skip
    step, seconds, parts = summary["steps"], summary["seconds"], summary["final"]
    net.eval()
    weights = out / "model.safetensors"
    if processes.main:
        save_sr_weights(weights, net, config, {"steps": str(step), "train_seconds": f"{seconds:.1f}"})
    return {"steps": step, "seconds": seconds, "final": parts, "weights": str(weights)}


def _sample_sheet(config: SRTrainConfig, data):
    """A function ``(net, sample_path) -> {}`` that saves bicubic, the net and HR on the first training image's centre."""
    from perceptlab.io import save_image
    from perceptlab.ops.resize import imresize
    from perceptlab.sr.data import degrade
    from perceptlab.plot import whole_image_sheet

    image = data.images[0].float().div(255.0)[None]
    h, w = (min(side, 192) // config.scale * config.scale for side in image.shape[-2:])
    top, left = (image.shape[-2] - h) // 2, (image.shape[-1] - w) // 2
    hr = image[..., top : top + h, left : left + w]
    lr = degrade(hr, config.scale, config.blur_sigma)
    bicubic = imresize(lr, scale=config.scale).clamp(0, 1)

    @torch.no_grad()
    def sample(net, sample_path: Path) -> dict:
        row = {"bicubic": bicubic, config.net: net(lr).clamp(0, 1), "HR": hr}
        save_image(whole_image_sheet([(data.paths[0].name, row)], shrink=1), sample_path)
        return {}

    return sample


def _validation(config: SRTrainConfig):
    """A function ``(net, sample_path) -> {"val_psnr_y": ...}`` on the validation set, or None."""
    if not config.val_data:
        return None
    from perceptlab.io import save_image
    from perceptlab.ops.resize import imresize
    from perceptlab.plot import crop_sheet
    from perceptlab.sr.protocol import load_benchmark, sr_metrics

    images = load_benchmark(config.val_data, config.scale)
    bicubic = [imresize(item.lr, scale=config.scale).clamp(0, 1) for item in images[:3]]

    @torch.no_grad()
    def validate(net, sample_path: Path) -> dict:
        scores, sheet = [], []
        for i, item in enumerate(images):
            sr = net(item.lr).clamp(0, 1)
            scores.append(sr_metrics(sr, item.hr, config.scale, is_gray=item.is_gray)["psnr_y"])
            if i < 3:  # bicubic | model | HR crops of the first three images
                sheet.append((item.name, {"bicubic": bicubic[i], "model": sr, "HR": item.hr}))
        save_image(crop_sheet(sheet, focus="HR"), sample_path)
        return {"val_psnr_y": sum(scores) / len(scores)}

    return validate
