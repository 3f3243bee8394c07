"""Training DeePSiM generators: ``λ_feat·L_feat + λ_adv·L_adv + λ_img·L_img`` (Dosovitskiy & Brox 2016).

One loop for the three networks of :mod:`perceptlab.nets.deepsim`::

    x = data.sample_crops(batch_size)                  # random crop x crop squares of the training folders
    input = x, or comparator(x)[layer] (invert)        # the comparator: frozen AlexNet or VGG-16
    out = net(input)                                   # {"x_hat", ...; the VAE's "kl"}
    parts = loss(out["x_hat"], x)                      # CombinedLoss of the specs: {"loss", "<term>", ...}
    generator step on parts["loss"] (+ kl_weight * kl)
    [discriminator step on adversarial.discriminator_step_loss(x_hat, x)]   # when an adversarial term is present

The loss is a list of specs ``TERM[:ARG][*WEIGHT]`` as in ``train sr``
(:mod:`perceptlab.losses.combined`): ``feature:relu4_3*0.01`` is ``λ_feat·L_feat`` on VGG-16 features,
``adversarial:nonsaturating*100`` adds a :class:`~perceptlab.nets.discriminators.PatchDiscriminator` and its
own Adam step, ``pixel:mse*2e-6`` is ``λ_img·L_img``. Runs are resumable (:mod:`perceptlab.training`);
under ``torchrun`` each process trains on its slice of the batch (:mod:`perceptlab.distributed`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from perceptlab.losses import AdversarialLoss, CombinedLoss, parse_spec
from perceptlab.training import TrainConfig, save_model_file

KINDS = ("autoencoder", "vae", "invert")
# Samples are centre crops at most this large, to stay cheap.
SAMPLE_SIDE = 128


@dataclass
class DeepSimTrainConfig(TrainConfig):
    """Everything that defines a DeePSiM training run (also the TOML file's keys).

    Attributes:
        kind: ``autoencoder``, ``vae`` or ``invert`` (the network of :mod:`perceptlab.nets.deepsim`).
        network, layer: ``invert`` only: the comparator (``alexnet`` or ``vgg16``) and the layer inverted.
        bottleneck: channels of the (V)AE's code.
        downsample: the (V)AE's code is ``1/downsample`` of the image's side (8 or 16).
        width: channels of the generator's narrowest layer (its widest has four times as many).
        losses: loss specs ``TERM[:ARG][*WEIGHT]`` (:mod:`perceptlab.losses.combined`); an ``adversarial`` term
            adds a discriminator and its own optimisation step.
        kl_weight: ``vae`` only: weight of the KL term (nats per code element).
        d_channels: width of the PatchDiscriminator's first layer.
        data: folders of training images.
        steps: optimisation steps (the budget; may be raised when resuming).
        batch_size: crops per step.
        crop: side of the square crops (a multiple of ``downsample`` for the (V)AE).
        lr, d_lr: Adam learning rates of the generator and of the discriminator (betas 0.5, 0.999).
        lr_milestones, lr_gamma: steps at which every learning rate is multiplied by ``lr_gamma``
            (:func:`perceptlab.training.lr_factor`); none: constant rates.
        val_data: folder of images whose mean PSNR goes into ``metrics.csv`` every ``sample_every`` steps;
            its first image (centre crop) is the sample. ``None``: the first training image, without scores.
        sample_every, ckpt_every, log_every: intervals in steps.
        seed: seed of every random stream.
        threads: torch CPU threads (0 = torch's default).
    """

    kind: str = "autoencoder"
    network: str = "alexnet"
    layer: str = "relu5"
    bottleneck: int = 16
    downsample: int = 8
    width: int = 32
    losses: list[str] = field(default_factory=lambda: ["feature:relu2_2", "pixel:mse"])
    kl_weight: float = 0.01
    d_channels: int = 32
    data: list[str] = field(default_factory=list)
    steps: int = 2000
    batch_size: int = 8
    crop: int = 64
    lr: float = 2e-4
    lr_milestones: list[int] = field(default_factory=list)
    lr_gamma: float = 0.5
    d_lr: float = 2e-4
    val_data: str | None = None
    sample_every: int = 500
    ckpt_every: int = 100
    log_every: int = 10
    seed: int = 0
    threads: int = 0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting; every check here runs before any work."""
        from perceptlab.nets.deepsim import COMPARATORS, DOWNSAMPLES, layer_geometry, min_image_size

        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        self.check_run()
        if self.kind == "invert":
            if self.network not in COMPARATORS:
                raise ValueError(f"network must be one of {', '.join(COMPARATORS)}, got {self.network!r}")
            layer_geometry(self.network, self.layer)
            if self.crop < min_image_size(self.network, self.layer):
                raise ValueError(f"crop must be at least {min_image_size(self.network, self.layer)} pixels for "
                                 f"{self.network} {self.layer}, got {self.crop}")  # fmt: skip
        elif self.downsample not in DOWNSAMPLES:
            raise ValueError(f"downsample must be one of {DOWNSAMPLES}, got {self.downsample}")
        elif self.crop % self.downsample:
            raise ValueError(f"crop must be a multiple of downsample {self.downsample}, got {self.crop}")
        if not self.losses:
            raise ValueError("no loss terms: give at least one --loss")
        for spec in self.losses:
            parse_spec(spec)
        if min(self.bottleneck, self.width, self.d_channels, self.steps, self.batch_size) < 1:
            raise ValueError("bottleneck, width, d_channels, steps and batch_size must be positive")
        if self.crop < 32:
            raise ValueError(f"crop must be at least 32 pixels, got {self.crop}")
        if not (self.lr > 0 and self.d_lr > 0) or self.kl_weight < 0 or self.threads < 0:
            raise ValueError("lr and d_lr must be positive, kl_weight and threads non-negative")
        if self.val_data and not Path(self.val_data).is_dir():
            raise ValueError(f"val_data {self.val_data}: no such folder")

    def net_options(self) -> dict:
        """The keyword arguments of :func:`perceptlab.nets.deepsim.build_deepsim_net` for ``kind``."""
        if self.kind == "invert":
            return {"network": self.network, "layer": self.layer, "width": self.width}
        return {"bottleneck": self.bottleneck, "downsample": self.downsample, "width": self.width}


def build_comparator(network: str, layer: str) -> torch.nn.Module:
    """The frozen feature network whose ``layer`` an inverter reads, with its ImageNet weights."""
    from perceptlab.losses.perceptual import loss_network

    return loss_network(network, (layer,))


def save_deepsim_weights(path: str | Path, net: torch.nn.Module, config: DeepSimTrainConfig, extra: dict) -> None:
    """Write the generator with what rebuilds it (task ``deepsim``, ``kind``, its options) in the metadata."""
    options = {k: str(v) for k, v in config.net_options().items()}
    metadata = {"task": "deepsim", "net": config.kind, "kind": config.kind, **options,
                "config": json.dumps(dataclasses.asdict(config)), **extra}  # fmt: skip
    save_model_file(path, net, metadata)


def _centre(x: torch.Tensor, multiple: int) -> torch.Tensor:
    h, w = (min(side, SAMPLE_SIDE) // multiple * multiple for side in x.shape[-2:])
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., top : top + h, left : left + w]


def train_deepsim(config: DeepSimTrainConfig, out: str | Path, progress: bool = True) -> dict:
    """Train (or resume) a DeePSiM generator in ``out``; return a summary dict.

    The run folder holds ``config.toml``, ``checkpoint.pt``, ``metrics.csv`` (step, seconds, loss, each
    term, ``kl`` for the VAE, ``d_loss`` with an adversarial term, ``val_psnr`` with ``val_data``),
    ``samples/step_NNNNNN.png`` (input | output) and, at the end, ``model.safetensors`` (metadata
    ``task = "deepsim"``, ``kind``, the network's options, the configuration, ``name``, steps, training time).

    Returns:
        ``{"steps": int, "seconds": float, "final": {loss parts at the last step}, "weights": path}``

    Raises:
        ValueError: a bad configuration, or a folder holding another run.
        ImageError: a missing or unreadable image.
    """
    from perceptlab.data import ImageCrops
    from perceptlab.io import list_images, read_image, save_image
    from perceptlab.nets.deepsim import build_deepsim_net
    from perceptlab.plot import whole_image_sheet
    from perceptlab.training import start_run, train_loop

    processes, shard, out, resumed, generator = start_run(config, out)
    net = build_deepsim_net(config.kind, **config.net_options())
    comparator = build_comparator(config.network, config.layer).to(processes.device) if config.kind == "invert" else None
    discriminator = None
    if any(parse_spec(s)[0] == "adversarial" for s in config.losses):
        from perceptlab.nets import PatchDiscriminator

        discriminator = PatchDiscriminator(base_channels=config.d_channels)
        processes.replicate(discriminator)
    loss = CombinedLoss.from_specs(config.losses, discriminator=discriminator).to(processes.device)
    adversarial = next((m for m in loss.terms.values() if isinstance(m, AdversarialLoss)), None)
    model = processes.data_parallel(net)  # what the step calls; net itself is saved and sampled
    # DCGAN's Adam (beta1 0.5), as DeePSiM's generators and discriminators were trained.
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr, betas=(0.5, 0.999))
    d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=config.d_lr, betas=(0.5, 0.999)) if discriminator else None
    data = ImageCrops(config.data, crop=config.crop, seed=config.seed)
    multiple = 1 if config.kind == "invert" else config.downsample
    val = [_centre(read_image(p), multiple) for p in list_images(config.val_data)] if config.val_data else []
    if config.val_data and not val:
        raise ValueError(f"{config.val_data}: no images to validate on")
    sample = val[0] if val else _centre(data.images[0].float().div(255.0)[None], multiple)

    def generate(x: torch.Tensor) -> dict:
        if comparator is None:
            return model(x)
        with torch.no_grad():
            features = comparator(x)[config.layer]
        return model(features, tuple(x.shape[-2:]))

    def step_fn() -> dict:
        x = data.sample_crops(config.batch_size, generator, shard).to(processes.device)
        result = generate(x)
        terms = loss(result["x_hat"], x)
        total = terms["loss"]
        if "kl" in result:
            terms["kl"] = result["kl"]
            total = total + config.kl_weight * result["kl"]
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        parts = {"loss": total.detach()} | {k: v.detach() for k, v in terms.items() if k != "loss"}
        if adversarial is not None:
            d_optimizer.zero_grad(set_to_none=True)  # drops what the generator step left in D
            d_loss = adversarial.discriminator_step_loss(result["x_hat"].detach(), x)
            d_loss.backward()
            processes.average_gradients(discriminator)
            d_optimizer.step()
            parts["d_loss"] = d_loss.detach()
        return parts

    def reconstruct(x: torch.Tensor) -> torch.Tensor:
        if comparator is None:
            return processes.hosted(lambda y: net(y)["x_hat"])(x)
        features = comparator(x.to(processes.device))[config.layer]
        return processes.hosted(lambda f: net(f, tuple(x.shape[-2:]))["x_hat"])(features)

    def sample_fn(path: Path) -> dict:
        save_image(whole_image_sheet([("sample", {"input": sample, config.kind: reconstruct(sample)})], shrink=1), path)
        if not val:
            return {}
        psnrs = [-10 * math.log10(max(float(torch.mean((reconstruct(x) - x) ** 2)), 1e-10)) for x in val]
        return {"val_psnr": sum(psnrs) / len(psnrs)}

    state = {"net": net, "optimizer": optimizer}
    if discriminator is not None:
        state |= {"discriminator": discriminator, "d_optimizer": d_optimizer}
    desc = f"train {config.kind}" + (f" {config.network} {config.layer}" if config.kind == "invert" else "")
    summary = train_loop(out, dataclasses.asdict(config), step_fn, state, generator, resumed, steps=config.steps,
                         log_every=config.log_every, ckpt_every=config.ckpt_every,
                         sample_every=config.sample_every, sample=sample_fn, desc=desc, progress=progress)  # fmt: skip
    step, seconds, parts = summary["steps"], summary["seconds"], summary["final"]
    net.eval()
    weights = out / "model.safetensors"
    if processes.main:
        save_deepsim_weights(weights, net, config, {"name": out.resolve().name, "steps": str(step),
                                                    "train_seconds": f"{seconds:.1f}"})  # fmt: skip
    return {"steps": step, "seconds": seconds, "final": parts, "weights": str(weights)}
