"""Training on several processes (perceptlab.distributed): two Gloo processes started by torchrun reach what
one process reaches with the same global batch and seed; process 0 alone writes; a signal stops both at the
same step with a checkpoint that 2 or 1 processes resume.

Tolerance. The processes compute the same sums in another order (each process's mean over its half of the
batch, then the mean of the two; GlobalBatchNorm's statistics from the halves' sums), so their weights differ
from one process's by rounding, which Adam amplifies where a gradient is itself at rounding level (it divides
a gradient by its own size, so such a weight moves by up to a learning rate, by an amount rounding decides;
seen: 33 of the style net's 1.7 million weights off by 1e-5 to 4e-5 after 3 steps). So the check is on the
whole network: the two runs' weights differ by at most 1e-3 of how far training moved them (seen: 1e-6 to
1e-4), and the last step's gradients have the same norm within 1e-3 (averaged, not summed: Adam alone would
not tell). Processes agree exactly with each other (every process gets the same all-reduced sums).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from perceptlab.distributed import TORCHRUN_VARIABLES, GlobalBatchNorm, World, global_batchnorm
from perceptlab.training import load_checkpoint, load_model_file

pytestmark = pytest.mark.usefixtures("one_thread")

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
SR = dict(net="srcnn", scale=2, losses=["pixel:mse"], steps=6, batch_size=4, hr_crop=16, lr=1e-3, ckpt_every=2,
          log_every=1, val_every=1000, threads=1)  # fmt: skip


def recording(loop):
    """``train_loop`` that also saves, beside the run folder, this process's networks at the start and the end
    and their gradients of the last step: ``RUN_DIR.rankN.pt``."""

    def spy(out, config, step_fn, state, *args, **kwargs):
        nets = {k: v for k, v in state.items() if isinstance(v, torch.nn.Module)}
        start = {k: {n: t.clone() for n, t in v.state_dict().items()} for k, v in nets.items()}
        summary = loop(out, config, step_fn, state, *args, **kwargs)
        record = {"start": start, "final": {k: v.state_dict() for k, v in nets.items()},
                  "grad": {k: {n: p.grad for n, p in v.named_parameters() if p.grad is not None}
                           for k, v in nets.items()}}  # fmt: skip
        torch.save(record, f"{out}.rank{os.environ.get('RANK', 0)}.pt")
        return summary

    return spy


@pytest.fixture
def record(monkeypatch):
    """Record the trainings of this process (see :func:`recording`)."""
    import perceptlab.sr.train
    import perceptlab.training

    spy = recording(perceptlab.training.train_loop)
    monkeypatch.setattr(perceptlab.training, "train_loop", spy)
    monkeypatch.setattr(perceptlab.sr.train, "train_loop", spy)


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARIABLES}
    return env | {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _torchrun(args: list[str], timeout: float = 180) -> subprocess.CompletedProcess:
    proc = subprocess.run(TORCHRUN + args, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-12000:]
    return proc


def _flags(values: dict) -> list[str]:
    """``perceptlab train sr`` flags for a configuration dict."""
    flags = []
    for key, value in values.items():
        if key in ("losses", "data"):
            flags += [x for v in value for x in ("--loss" if key == "losses" else "--data", v)]
        else:
            flags += ["--" + key.replace("_", "-"), str(value)]
    return flags


def _weights(path) -> dict[str, torch.Tensor]:
    return load_model_file(path)[0]


def _record(run, rank: int = 0) -> dict:
    return torch.load(f"{run}.rank{rank}.pt", weights_only=True)


def _flat(tensors: dict) -> torch.Tensor:
    return torch.cat([tensors[k].double().flatten() for k in sorted(tensors)])  # a model file's keys are sorted


def _assert_trains_as(final: dict, one: dict, grad: dict | None = None) -> None:
    """``final`` weights (and last-step gradients ``grad``) of one network as those of the record ``one``
    (``one["final"]``, ``one["start"]``, ``one["grad"]`` for that network) within the module docstring's bounds."""
    assert final.keys() == one["final"].keys()
    moved = (_flat(one["final"]) - _flat(one["start"])).norm()
    assert (_flat(final) - _flat(one["final"])).norm() <= 1e-3 * moved
    if grad is not None:
        assert float(_flat(grad).norm()) == pytest.approx(float(_flat(one["grad"]).norm()), rel=1e-3)


def _steps(metrics) -> list[int]:
    with open(metrics, newline="") as handle:
        return [int(row["step"]) for row in csv.DictReader(handle)]


def _photos(folder: Path) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        smooth = rng.random((9, 9, 3))
        Image.fromarray((smooth * 255).astype(np.uint8)).resize((48, 40), Image.BICUBIC).save(folder / f"p{i}.png")
    return folder


@pytest.fixture
def photos(tmp_path):
    return _photos(tmp_path / "photos")


# ---------------------------------------------------------------- in one process


def test_shards_of_a_batch_make_up_the_batch_and_leave_the_generator_in_step(photos):
    from perceptlab.data import ImageCrops

    data = ImageCrops(photos, crop=16)
    whole_gen, gens = torch.Generator().manual_seed(3), [torch.Generator().manual_seed(3) for _ in range(2)]
    whole = data.sample_crops(4, whole_gen)
    parts = [data.sample_crops(4, gen, shard=(i, 2)) for i, gen in enumerate(gens)]
    assert torch.equal(torch.cat(parts), whole)
    assert all(torch.equal(gen.get_state(), whole_gen.get_state()) for gen in gens)
    with pytest.raises(ValueError, match="multiple of 2"):
        World(rank=0, size=2).shard(3)
    assert World().shard(3) == (0, 1)


def test_global_batchnorm_shares_parameters_and_keys_and_is_batchnorm_without_processes():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU())
    params, keys = list(net.parameters()), list(net.state_dict())
    x = torch.rand(2, 3, 8, 8)
    plain = net(x)
    global_batchnorm(net)
    assert isinstance(net[1], GlobalBatchNorm) and list(net.state_dict()) == keys
    assert all(a is b for a, b in zip(params, net.parameters()))
    assert torch.equal(net(x), plain)  # no process group: BatchNorm2d's own forward


# ---------------------------------------------------------------- two processes (torchrun, Gloo)


def _net(record: dict, key: str) -> dict:
    return {part: record[part][key] for part in ("start", "final", "grad")}


def test_two_processes_train_sr_as_one_process_does(photos, tmp_path, record):
    values = SR | {"data": [str(photos)]}
    proc = _torchrun(["-m", "perceptlab", "train", "sr", *_flags(values), "--out", str(tmp_path / "two"),
                      "--no-progress"])  # fmt: skip
    from perceptlab.sr.train import SRTrainConfig, train_sr

    train_sr(SRTrainConfig(**values), tmp_path / "one", progress=False)
    _assert_trains_as(_weights(tmp_path / "two" / "model.safetensors"), _net(_record(tmp_path / "one"), "net"))
    # The log shows the global batch's losses; process 0 alone writes, and prints the summary once.
    with open(tmp_path / "two" / "metrics.csv") as a, open(tmp_path / "one" / "metrics.csv") as b:
        for two, one in zip(csv.DictReader(a), csv.DictReader(b), strict=True):
            assert float(two["loss"]) == pytest.approx(float(one["loss"]), rel=1e-5)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    assert json.loads(proc.stdout)["steps"] == 6


_SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
import perceptlab.training
from test_distributed import recording

perceptlab.training.train_loop = recording(perceptlab.training.train_loop)  # before the trainers import it
from perceptlab.codec.proxy import ProxyTrainConfig, train_proxy
from perceptlab.codec.train import CodecTrainConfig, train_codec
from perceptlab.deepsim.train import DeepSimTrainConfig, train_deepsim
from perceptlab.sr.train import SRTrainConfig, train_sr
from perceptlab.style.train import StyleTrainConfig, train_style

runs = json.loads(open(sys.argv[1]).read())
train_sr(SRTrainConfig(**runs["gan"]), runs["out"] + "/gan", progress=False)
train_style(StyleTrainConfig(**runs["style"]), runs["out"] + "/style", progress=False)
train_codec(CodecTrainConfig(**runs["codec"]), runs["out"] + "/codec", progress=False)
train_deepsim(DeepSimTrainConfig(**runs["deepsim"]), runs["out"] + "/deepsim", progress=False)
train_proxy(ProxyTrainConfig(**runs["proxy"]), runs["out"] + "/proxy", progress=False)
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A GAN, a style, a codec, a DeePSiM and a VMAF-proxy run, each trained by 2 processes (one torchrun: ``two/``)
    and by 1 (``one/``)."""
    root = tmp_path_factory.mktemp("runs")
    photos = _photos(root / "photos")
    style = root / "style.png"
    rng = np.random.default_rng(1)
    Image.fromarray((rng.random((9, 9, 3)) * 255).astype(np.uint8)).resize((40, 36), Image.BICUBIC).save(style)
    # A non-relativistic GAN loss: "ragan" compares each logit with the mean of its own process's batch.
    runs = {
        "gan": SR | dict(data=[str(photos)], losses=["pixel:mse", "adversarial:lsgan*0.01"], discriminator="patch",
                         hr_crop=32, steps=3),
        "style": dict(style=str(style), data=[str(photos)], steps=3, batch_size=4, image_size=32, style_size=0,
                      vgg_weights=None, sample_every=3, ckpt_every=3, log_every=1, threads=1),
        "codec": dict(arch="bls2017", N=8, M=8, data=[str(photos)], crop=16, batch_size=4, steps=3, lr=1e-3,
                      sample_every=3, log_every=1, threads=1),
        "deepsim": dict(kind="autoencoder", losses=["pixel:mse"], data=[str(photos)], crop=32, batch_size=4,
                        steps=3, width=8, bottleneck=4, sample_every=3, log_every=1, threads=1),
        "proxy": dict(data=[str(photos)], kinds=["jpeg", "blur", "noise", "none"], width=8, crop=32, steps=3,
                      batch_size=4, val_patches=8, holdout=2, sample_every=3, log_every=1, threads=1),
    }  # fmt: skip
    (root / "runs.json").write_text(json.dumps(runs | {"out": str(root / "two")}))
    (root / "script.py").write_text(_SCRIPT.format(tests=str(Path(__file__).parent)))
    _torchrun([str(root / "script.py"), str(root / "runs.json")])
    import perceptlab.sr.train
    import perceptlab.training
    from perceptlab.codec.proxy import ProxyTrainConfig, train_proxy
    from perceptlab.codec.train import CodecTrainConfig, train_codec
    from perceptlab.deepsim.train import DeepSimTrainConfig, train_deepsim
    from perceptlab.style.train import StyleTrainConfig, train_style

    with pytest.MonkeyPatch.context() as patch:
        spy = recording(perceptlab.training.train_loop)
        patch.setattr(perceptlab.training, "train_loop", spy)
        patch.setattr(perceptlab.sr.train, "train_loop", spy)
        perceptlab.sr.train.train_sr(perceptlab.sr.train.SRTrainConfig(**runs["gan"]), root / "one" / "gan",
                                     progress=False)  # fmt: skip
        train_style(StyleTrainConfig(**runs["style"]), root / "one" / "style", progress=False)
        train_codec(CodecTrainConfig(**runs["codec"]), root / "one" / "codec", progress=False)
        train_deepsim(DeepSimTrainConfig(**runs["deepsim"]), root / "one" / "deepsim", progress=False)
        train_proxy(ProxyTrainConfig(**runs["proxy"]), root / "one" / "proxy", progress=False)
    return root


def _assert_processes_agree(run, keys: tuple[str, ...] = ("net",)) -> tuple[dict, dict]:
    """Both processes' records, checked equal to the last bit."""
    rank0, rank1 = _record(run, 0), _record(run, 1)
    for key in keys:
        for part in ("final", "grad"):
            assert all(torch.equal(rank0[part][key][k], rank1[part][key][k]) for k in rank0[part][key]), (key, part)
    return rank0, rank1


def test_gan_keeps_generator_and_discriminator_in_step_across_processes(runs):
    rank0, _ = _assert_processes_agree(runs / "two" / "gan", ("net", "discriminator"))
    one = _record(runs / "one" / "gan")
    for key in ("net", "discriminator"):  # BatchNorm's running statistics included (GlobalBatchNorm)
        _assert_trains_as(rank0["final"][key], _net(one, key), rank0["grad"][key])


def test_style_on_two_processes_trains_as_one_process(runs):
    rank0, _ = _assert_processes_agree(runs / "two" / "style")
    _assert_trains_as(rank0["final"]["net"], _net(_record(runs / "one" / "style"), "net"), rank0["grad"]["net"])
    assert torch.equal(_weights(runs / "two" / "style" / "model.safetensors")["body.0.weight"],
                       rank0["final"]["net"]["body.0.weight"])  # fmt: skip


def test_deepsim_autoencoder_on_two_processes_trains_as_one_process(runs):
    rank0, _ = _assert_processes_agree(runs / "two" / "deepsim")
    _assert_trains_as(rank0["final"]["net"], _net(_record(runs / "one" / "deepsim"), "net"), rank0["grad"]["net"])
    assert _steps(runs / "two" / "deepsim" / "metrics.csv") == [1, 2, 3]


def test_vmaf_proxy_on_two_processes_trains_as_one_process(runs):
    # Each process distorts and labels its half of the batch with the draws one process makes for it.
    rank0, _ = _assert_processes_agree(runs / "two" / "proxy")
    _assert_trains_as(rank0["final"]["net"], _net(_record(runs / "one" / "proxy"), "net"), rank0["grad"]["net"])
    run = runs / "two" / "proxy"
    assert _steps(run / "metrics.csv") == [1, 2, 3] and (run / "validation.json").is_file()
    assert torch.equal(_weights(run / "model.safetensors")["features.0.weight"], rank0["final"]["net"]["features.0.weight"])


def test_codec_on_two_processes_trains_and_ends_with_tables(runs):
    from perceptlab.codec.models import load_codec_model

    _assert_processes_agree(runs / "two" / "codec")
    run = runs / "two" / "codec"
    assert _steps(run / "metrics.csv") == [1, 2, 3] and load_codec_model(str(run)).tables is not None
    # Each process draws the training noise of its own crops, so the run matches one process's only in
    # distribution: the first step's losses (same weights, same crops, other noise; seen: 6e-5 apart) agree
    # within 1 %.
    with open(run / "metrics.csv") as a, open(runs / "one" / "codec" / "metrics.csv") as b:
        two, one = next(csv.DictReader(a)), next(csv.DictReader(b))
    assert float(two["loss"]) == pytest.approx(float(one["loss"]), rel=0.01)


def test_sigterm_stops_both_processes_at_one_step_and_2_or_1_processes_resume(photos, tmp_path, record):
    values = SR | {"data": [str(photos)], "ckpt_every": 10**6}  # the only checkpoint is the signal's
    run = tmp_path / "run"
    command = TORCHRUN + ["-m", "perceptlab", "train", "sr", *_flags(values | {"steps": 10**6}), "--out", str(run),
                          "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run / "metrics.csv").is_file() or (run / "metrics.csv").read_text().count("\n") < 3:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-4000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # torchrun passes it on to both processes
    _, err = proc.communicate(timeout=120)
    step = int(load_checkpoint(run / "checkpoint.pt")["step"])
    assert step >= 2 and _steps(run / "metrics.csv") == list(range(1, step + 1))
    assert err.count(f"stopped at step {step}, saved in") == 2, err[-4000:]  # both processes, the same step
    shutil.copytree(run, tmp_path / "run1")
    from perceptlab.sr.train import SRTrainConfig, train_sr

    final = values | {"steps": step + 3}
    _torchrun(["-m", "perceptlab", "train", "sr", *_flags(final), "--out", str(run), "--no-progress"])
    train_sr(SRTrainConfig(**final), tmp_path / "run1", progress=False)
    train_sr(SRTrainConfig(**final), tmp_path / "straight", progress=False)
    straight = _net(_record(tmp_path / "straight"), "net")
    for resumed in (run, tmp_path / "run1"):
        assert _steps(resumed / "metrics.csv") == list(range(1, step + 4))
        _assert_trains_as(_weights(resumed / "model.safetensors"), straight)
