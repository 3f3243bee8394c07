"""The VMAF proxy and its training: a small network that predicts VMAF (:class:`perceptlab.nets.proxy.QualityProxy`).

::

    x = data.sample_crops(batch_size)                  # random crops of the training photos
    d = random_distortions(x)                           # JPEG, WebP, JPEG 2000, blur, noise, sharpening, codecs
    label = vmaf(d, x)                                  # vmaf-torch, v0.6.1, luma, one-frame still (no motion)
    loss = mean((proxy(d, x) - label)**2) / 100          # squared error in VMAF points, scaled
    Adam step

The labels are computed as the batches are drawn, so the proxy never sees the
same pair twice. Every ``holdout``-th training image is held back: a fixed set
of ``val_patches`` distorted crops of those images measures the proxy against
true VMAF (SROCC, PLCC, RMSE in VMAF points) every ``sample_every`` steps and
at the end; the final numbers go into the model file.

:func:`fit_step` is the same update on given pairs: the codec trainer calls it
to train the proxy on the codec's own outputs, alternating with codec steps
(``train codec --distortion vmaf_proxy --alternate``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from perceptlab.codec.distort import DEFAULT_KINDS
from perceptlab.nets.proxy import PROXY_MIN_SIZE, QualityProxy
from perceptlab.training import TrainConfig, load_trained, save_model_file, shipped_models

# Our own, from experiments/perceptual_compression/run.py once trained (absent files are skipped).
SHIPPED_PROXY: tuple[str, ...] = ("proxy_vmaf",)
TARGET = "VMAF v0.6.1 (vmaf-torch 1.1.0), luma, one-frame still, motion off"


@dataclass
class ProxyTrainConfig(TrainConfig):
    """Everything that defines a proxy training run (also the TOML file's keys).

    Attributes:
        data: folders of training photos (not searched recursively).
        kinds: distortion kinds (:mod:`perceptlab.codec.distort`).
        codecs: learned codec models (shipped names, files or run folders) for the ``codec`` kind.
        width: channels of the proxy's first layer.
        crop: side of the square crops.
        steps, batch_size, lr: the optimisation (Adam).
        lr_milestones, lr_gamma: steps at which every learning rate is multiplied by ``lr_gamma``
            (:func:`perceptlab.training.lr_factor`); none: constant rates.
        holdout: every ``holdout``-th image is held back for validation.
        val_patches: distorted crops of the held-back images scored at each validation.
        sample_every, ckpt_every, log_every: intervals in steps (``sample_every``: validation).
        seed: seed of every random stream.
        threads: torch CPU threads (0 = torch's default).
    """

    data: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=lambda: list(DEFAULT_KINDS))
    codecs: list[str] = field(default_factory=list)
    width: int = 32
    crop: int = 128
    steps: int = 3000
    batch_size: int = 16
    lr: float = 1e-3
    lr_milestones: list[int] = field(default_factory=list)
    lr_gamma: float = 0.5
    holdout: int = 10
    val_patches: int = 256
    sample_every: int = 500
    ckpt_every: int = 100
    log_every: int = 10
    seed: int = 0
    threads: int = 0

    def validate(self) -> None:
        from perceptlab.codec.distort import check_kinds

        self.check_run()
        if min(self.width, self.steps, self.batch_size, self.val_patches) < 1:
            raise ValueError("width, steps, batch_size and val_patches must be positive")
        if self.crop < PROXY_MIN_SIZE:
            raise ValueError(f"crop must be at least {PROXY_MIN_SIZE}, got {self.crop}")
        if self.holdout < 2:
            raise ValueError(f"holdout must be at least 2 (every holdout-th image validates), got {self.holdout}")
        if not self.lr > 0 or self.threads < 0:
            raise ValueError(f"lr must be positive and threads non-negative, got {self.lr} and {self.threads}")
        check_kinds(self.kinds, self.codecs)


def vmaf_labels(distorted: torch.Tensor, reference: torch.Tensor, metric=None) -> torch.Tensor:
    """True VMAF of each pair (no gradient), the proxy's targets."""
    from perceptlab.metrics.vmaf import VMAF

    metric = metric or VMAF(reduction="none")
    with torch.no_grad():
        return metric(distorted.clamp(0, 1), reference)


def fit_step(proxy: QualityProxy, optimizer: torch.optim.Optimizer, distorted: torch.Tensor,
             reference: torch.Tensor, labels: torch.Tensor, processes=None) -> dict[str, torch.Tensor]:  # fmt: skip
    """One Adam step of the proxy towards ``labels`` on the pairs; ``{"proxy_loss", "proxy_rmse"}``.

    With ``processes`` (a :class:`perceptlab.distributed.World` under torchrun), the gradients are averaged
    over the processes first, so that every process's copy (made by ``World.replicate``) stays the same.
    """
    proxy.train()
    with torch.enable_grad():
        err = proxy(distorted.detach(), reference) - labels
        loss = torch.mean(err**2) / 100
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if processes is not None:
            processes.average_gradients(proxy)
        optimizer.step()
    return {"proxy_loss": loss.detach(), "proxy_rmse": torch.sqrt(torch.mean(err.detach() ** 2))}


def _load_codecs(specs):
    from perceptlab.codec.models import load_codec_model

    return [load_codec_model(s) for s in specs]


def save_proxy(path: str | Path, proxy: QualityProxy, config: ProxyTrainConfig | None, extra: dict) -> None:
    """Write a proxy model file (metadata ``task = "proxy"``, ``width``, ``target``, the config if any, ``extra``)."""
    metadata = {"task": "proxy", "net": "quality_proxy", "width": str(proxy.width), "target": TARGET,
                **({"config": json.dumps(dataclasses.asdict(config))} if config else {}), **extra}  # fmt: skip
    save_model_file(path, proxy, metadata)


def load_proxy(spec: str) -> QualityProxy:
    """A trained :class:`QualityProxy` (eval mode, no gradients): a shipped name, a ``model.safetensors``
    written by :func:`train_proxy`, a checkpoint, a ``train proxy`` run folder, or a codec run folder
    whose alternating training wrote ``proxy.safetensors``.

    Raises:
        ValueError: unknown spec, or a file that is not a perceptlab proxy.
    """
    path = Path(spec)
    if path.is_dir() and (path / "proxy.safetensors").is_file():  # a codec run that trained its proxy
        spec = str(path / "proxy.safetensors")
    return load_trained(spec, shipped_models(SHIPPED_PROXY), "proxy", lambda s: QualityProxy(int(s["width"])),
                        lambda config: "kinds" in config and "width" in config)  # fmt: skip


def validation_set(images, count: int, kinds, codecs, seed: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``count`` fixed distorted crops of the held-back ``images`` (an ImageCrops): references, distorted, kinds."""
    from perceptlab.codec.distort import random_distortions

    generator = torch.Generator().manual_seed(seed + 1)
    reference = images.sample_crops(count, generator)
    distorted, names = random_distortions(reference, generator, kinds, codecs)
    return reference, distorted, names


def score_proxy(proxy: QualityProxy, distorted: torch.Tensor, reference: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    """The proxy's scores of many pairs, in chunks, without gradients."""
    proxy.eval()
    with torch.no_grad():
        return torch.cat([proxy(distorted[i : i + chunk], reference[i : i + chunk])
                          for i in range(0, len(reference), chunk)])  # fmt: skip


def train_proxy(config: ProxyTrainConfig, out: str | Path, progress: bool = True) -> dict:
    """Train (or resume) a quality proxy in ``out``; return a summary dict.

    The run folder holds ``config.toml``, ``checkpoint.pt``, ``metrics.csv`` (step, seconds,
    proxy_loss, proxy_rmse on the batch, and at each validation val_srocc, val_plcc, val_rmse) and,
    at the end, ``model.safetensors`` (metadata ``task = "proxy"``, ``width``, ``target``, the
    configuration, steps, training time and the final validation numbers) and ``validation.json``
    (every held-back pair's kind, true VMAF and proxy score).

    Returns:
        ``{"steps", "seconds", "final", "weights", "validation": {"srocc", "plcc", "rmse", "patches"}}``

    Raises:
        ValueError: a bad configuration, or a folder holding another run.
        ImportError: vmaf-torch is not installed.
    """
    from perceptlab._files import atomic_write_text
    from perceptlab.data import ImageCrops
    from perceptlab.metrics.vmaf import VMAF
    from perceptlab.codec.distort import random_distortions
    from perceptlab.stats import agreement
    from perceptlab.training import start_run, train_loop

    config.validate()
    metric = VMAF(reduction="none")  # ImportError before anything is written
    processes, shard, out, resumed, generator = start_run(config, out)
    codecs = _load_codecs(config.codecs)
    data = ImageCrops(config.data, crop=config.crop, seed=config.seed)
    if len(data.images) < 2:
        raise ValueError(f"need at least 2 training images of {config.crop} px (one is held back), "
                         f"got {len(data.images)}")  # fmt: skip
    held = data.holdout(min(config.holdout, len(data.images)))
    val_ref, val_dist, val_kinds = validation_set(held, config.val_patches, config.kinds, codecs, config.seed)
    val_true = torch.cat([vmaf_labels(val_dist[i : i + 32], val_ref[i : i + 32], metric)
                          for i in range(0, len(val_ref), 32)])  # fmt: skip
    # Distortions and VMAF labels are made on the CPU; the proxy trains on the process's device.
    val_ref, val_dist = val_ref.to(processes.device), val_dist.to(processes.device)
    proxy = QualityProxy(config.width).to(processes.device)
    processes.replicate(proxy)
    optimizer = torch.optim.Adam(proxy.parameters(), lr=config.lr)
    last: dict = {}

    def step_fn() -> dict:
        # Under torchrun each process labels and fits its slice of the batch; gradients are averaged.
        x = data.sample_crops(config.batch_size, generator, shard)
        d, _ = random_distortions(x, generator, config.kinds, codecs, shard)
        labels = vmaf_labels(d, x, metric)
        device = processes.device
        return fit_step(proxy, optimizer, d.to(device), x.to(device), labels.to(device), processes)

    def validate(_path: Path) -> dict:
        scores = agreement(score_proxy(proxy, val_dist, val_ref).tolist(), val_true.tolist())
        last.update(scores)
        return {f"val_{k}": v for k, v in scores.items()}

    summary = train_loop(out, dataclasses.asdict(config), step_fn, {"net": proxy, "optimizer": optimizer},
                         generator, resumed, steps=config.steps, log_every=config.log_every,
                         ckpt_every=config.ckpt_every, sample_every=config.sample_every, sample=validate,
                         desc="train proxy", progress=progress)  # fmt: skip
    if not last:  # a resumed run already at its budget validated nothing
        validate(out / "samples")
    predicted = score_proxy(proxy, val_dist, val_ref)
    rows = [{"kind": k, "vmaf": round(float(t), 3), "proxy": round(float(p), 3)}
            for k, t, p in zip(val_kinds, val_true.tolist(), predicted.tolist())]  # fmt: skip
    weights = out / "model.safetensors"
    if processes.main:  # process 0 alone writes the run folder
        atomic_write_text(out / "validation.json", json.dumps({**last, "patches": rows}, indent=1) + "\n")
        save_proxy(weights, proxy, config, {"name": out.resolve().name, "steps": str(summary["steps"]),
                                            "train_seconds": f"{summary['seconds']:.1f}",
                                            **{f"val_{k}": f"{v:.4f}" for k, v in last.items()}})  # fmt: skip
    return {**summary, "weights": str(weights), "validation": {**last, "patches": len(rows)}}
