"""Training a feed-forward style network (Johnson et al. 2016) for one style image.

::

    crops = data.sample_batch(batch_size)           # random image_size crops of the content folders
    out = net(crops)                                 # JohnsonStyleNet
    parts = loss(out, crops)                         # StyleTransferLoss: {"loss", "content", "style", "tv"}
    Adam step on parts["loss"]

The defaults are the paper's: 256x256 crops, batch 4, Adam at 1e-3, content
on relu2_2, style on relu1_2, relu2_2, relu3_3, relu4_3, 40 000 steps (two
epochs of COCO's 80 000 images), the style image's longer side resized to 256
as in the authors' code. The loss weights are discussed in
:mod:`perceptlab.style.losses`.

The content crops come from :class:`perceptlab.data.ImageCrops`:
the same random crops, flips and transpositions as SR training, every image
held in memory as 8 bits (fine for BSD-sized sets; COCO's 80 000 images would
need ~70 GB). Runs are resumable (see :mod:`perceptlab.training`), and run on several processes
under ``torchrun`` (:mod:`perceptlab.distributed`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from perceptlab.losses.perceptual import STYLE_LAYERS
from perceptlab.style.losses import CONTENT_LAYERS, CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT
from perceptlab.training import TrainConfig, save_model_file

# Samples are made at most this large (longer side), to stay cheap.
SAMPLE_SIDE = 512
# The output tanh of JohnsonStyleNet is held within this many units of 0 by saturation_weight (tanh(2.5) = 0.987).
SATURATION_LIMIT = 2.5


def saturation_penalty(z: torch.Tensor, limit: float = SATURATION_LIMIT) -> torch.Tensor:
    """``mean(relu(|z| - limit)²)`` of the output tanh's input ``z``: zero while the tanh is out of saturation."""
    return torch.mean(torch.relu(z.abs() - limit) ** 2)


@dataclass
class StyleTrainConfig(TrainConfig):
    """Everything that defines a style training run (also the TOML file's keys).

    Attributes:
        style: the style image file.
        data: folders of content images (not searched recursively).
        steps: optimisation steps (the budget; may be raised when resuming).
        batch_size: crops per step.
        image_size: side of the square training crops.
        lr: Adam learning rate.
        lr_milestones, lr_gamma: steps at which every learning rate is multiplied by ``lr_gamma``
            (:func:`perceptlab.training.lr_factor`); none: constant rates.
        content_layers, style_layers: VGG-16 layers of the two terms.
        content_weight, style_weight, tv_weight: the loss weights
            (:class:`perceptlab.style.StyleTransferLoss`).
        grid_weight: weight of a penalty on a lattice fixed to the network's 4-pixel stride
            (:func:`perceptlab.losses.grid_loss` of the output against the content crop); 0, the paper's
            objective, leaves it out (docs/experiments/style_sweep.md: the style term teaches one).
        saturation_weight: weight of a penalty on the output tanh's input beyond ``±SATURATION_LIMIT``,
            ``mean(relu(|z| - limit)²)``: an instance-norm network grows black "droplets" whose tanh
            saturates, where no other gradient reaches (:func:`perceptlab.style.measures.blob_fraction`);
            0 leaves it out.
        style_size: longer side the style image is resized to before taking
            its Grams; 0 keeps its size.
        norm: ``instance`` or ``batch`` (:class:`perceptlab.nets.style.JohnsonStyleNet`).
        padding: ``reflect`` or ``zeros``.
        upsample: ``transpose`` (the paper's) or ``nearest`` (resize then convolve: no checkerboard).
        vgg_weights: ``vgg16`` (the weights above are tuned for it) or ``vgg16_caffe``.
        vgg_precision: ``fp32`` or ``bf16``: the loss network's precision (activations come back in
            float32, Grams are taken in float32); bf16 pays off on CPUs with bfloat16 units and GPUs.
        sample_image: content image stylised every ``sample_every`` steps into
            ``samples/``; default the first training image.
        sample_every, ckpt_every, log_every: intervals in steps.
        seed: seed of every random stream.
        threads: torch CPU threads (0 = torch's default).
    """

    style: str = ""
    data: list[str] = field(default_factory=list)
    steps: int = 40000
    batch_size: int = 4
    image_size: int = 256
    lr: float = 1e-3
    lr_milestones: list[int] = field(default_factory=list)
    lr_gamma: float = 0.5
    content_layers: list[str] = field(default_factory=lambda: list(CONTENT_LAYERS))
    style_layers: list[str] = field(default_factory=lambda: list(STYLE_LAYERS))
    content_weight: float = CONTENT_WEIGHT
    style_weight: float = STYLE_WEIGHT
    tv_weight: float = TV_WEIGHT
    grid_weight: float = 0.0
    saturation_weight: float = 0.0
    style_size: int = 256
    norm: str = "instance"
    padding: str = "reflect"
    upsample: str = "transpose"
    vgg_weights: str | None = "vgg16"
    vgg_precision: str = "fp32"
    sample_image: str | None = None
    sample_every: int = 500
    ckpt_every: int = 100
    log_every: int = 10
    seed: int = 0
    threads: int = 0

    def validate(self) -> None:
        from perceptlab.nets.style import MIN_SIZE, STYLE_NORMS, STYLE_PADDINGS, STYLE_UPSAMPLES

        if not self.style:
            raise ValueError("no style image: give one (--style)")
        self.check_run("content images")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be positive")
        if self.image_size < MIN_SIZE:
            raise ValueError(f"image_size must be at least {MIN_SIZE}, got {self.image_size}")
        if self.style_size < 0 or 0 < self.style_size < MIN_SIZE:
            raise ValueError(f"style_size must be 0 (keep the style image's size) or at least {MIN_SIZE}, "
                             f"got {self.style_size}")  # fmt: skip
        if not self.lr > 0 or self.threads < 0:
            raise ValueError(f"lr must be positive and threads non-negative, got {self.lr} and {self.threads}")
        if not self.saturation_weight >= 0:
            raise ValueError(f"saturation_weight must be non-negative, got {self.saturation_weight}")
        if self.vgg_weights not in ("vgg16", "vgg16_caffe", None):  # None: random VGG weights, for tests
            raise ValueError(f"vgg_weights must be vgg16 or vgg16_caffe, got {self.vgg_weights!r}")
        if self.norm not in STYLE_NORMS or self.padding not in STYLE_PADDINGS:
            raise ValueError(f"norm must be one of {STYLE_NORMS} and padding one of {STYLE_PADDINGS}")
        if self.vgg_precision not in ("fp32", "bf16"):
            raise ValueError(f"vgg_precision must be fp32 or bf16, got {self.vgg_precision!r}")
        if self.upsample not in STYLE_UPSAMPLES:
            raise ValueError(f"upsample must be one of {STYLE_UPSAMPLES}, got {self.upsample!r}")


def _file_sha256(path: str) -> str:
    from perceptlab.io import ImageError

    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as err:
        raise ImageError(path, f"cannot read ({err.strerror or err})") from None


def save_style_weights(path: str | Path, net: torch.nn.Module, config: StyleTrainConfig, extra: dict) -> None:
    """Write the network's weights with what is needed to rebuild it in the metadata."""
    metadata = {
        "task": "style", "net": net.name, "norm": config.norm, "padding": config.padding, "upsample": config.upsample,
        "style": Path(config.style).name, "config": json.dumps(dataclasses.asdict(config)), **extra,
    }  # fmt: skip
    save_model_file(path, net, metadata)


def _build(config: StyleTrainConfig):
    from perceptlab.io import read_image
    from perceptlab.nets.style import JohnsonStyleNet
    from perceptlab.style.losses import StyleTransferLoss

    net = JohnsonStyleNet(norm=config.norm, padding=config.padding, upsample=config.upsample)
    loss = StyleTransferLoss(
        read_image(config.style), content_layers=config.content_layers, style_layers=config.style_layers,
        content_weight=config.content_weight, style_weight=config.style_weight, tv_weight=config.tv_weight,
        grid_weight=config.grid_weight, style_size=config.style_size or None, vgg_weights=config.vgg_weights,
        precision=config.vgg_precision,
    )  # fmt: skip
    return net, loss


def train_style(config: StyleTrainConfig, out: str | Path, progress: bool = True) -> dict:
    """Train (or resume) a style network in ``out``; return a summary dict.

    The run folder holds ``config.toml``, ``checkpoint.pt``, ``metrics.csv``
    (step, seconds, loss, content, style, tv), ``samples/step_NNNNNN.png``
    and, at the end, ``model.safetensors`` (metadata ``task = "style"``, the
    net's ``norm``, ``padding`` and ``upsample``, the style file's name and sha256, the
    configuration, the steps and the training time).

    Returns:
        ``{"steps": int, "seconds": float, "final": {loss parts at the last step}, "weights": path}``

    Raises:
        ValueError: a bad configuration, a folder holding another run, or a
            style image that changed since the run began.
        ImageError: a missing or unreadable style or content image.
    """
    from perceptlab.io import read_image, write_image
    from perceptlab.data import ImageCrops
    from perceptlab.ops.resize import resize_longer_side
    from perceptlab.training import start_run, train_loop

    config.validate()  # before the style image is read; start_run validates again (cheap)
    style_sha256 = _file_sha256(config.style)
    processes, shard, out, resumed, generator = start_run(config, out)
    net, loss = _build(config)
    loss.to(processes.device)
    model = processes.data_parallel(net)  # what the step calls; net itself is saved and sampled
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    data = ImageCrops(config.data, crop=config.image_size, seed=config.seed)
    sample = read_image(config.sample_image or data.paths[0])
    if max(sample.shape[-2:]) > SAMPLE_SIDE:
        sample = resize_longer_side(sample, SAMPLE_SIDE)
    if resumed and resumed["style_sha256"] != style_sha256:
        raise ValueError(f"{config.style} changed since the run in {out} began; start a new run")

    def step_fn() -> dict:
        crops = data.sample_crops(config.batch_size, generator, shard).to(processes.device)
        terms = loss(model(crops), crops)
        if config.saturation_weight:
            terms["saturation"] = saturation_penalty(net.preactivation)
            terms["loss"] = terms["loss"] + config.saturation_weight * terms["saturation"]
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        return {k: v.detach() for k, v in terms.items()}

    def sample_fn(path: Path) -> dict:
        write_image(processes.hosted(net)(sample), path)
        return {}

    summary = train_loop(out, dataclasses.asdict(config), step_fn, {"net": net, "optimizer": optimizer}, generator,
                         resumed, steps=config.steps, log_every=config.log_every, ckpt_every=config.ckpt_every,
                         sample_every=config.sample_every, sample=sample_fn, extra={"style_sha256": style_sha256},
                         desc=f"train style {Path(config.style).stem}", progress=progress)  # fmt: skip
    step, seconds, parts = summary["steps"], summary["seconds"], summary["final"]
    net.eval()
    weights = out / "model.safetensors"
    if processes.main:
        save_style_weights(weights, net, config, {"style_sha256": style_sha256, "steps": str(step),
                                                  "train_seconds": f"{seconds:.1f}"})  # fmt: skip
    return {"steps": step, "seconds": seconds, "final": parts, "weights": str(weights)}
