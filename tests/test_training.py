"""Run folders: config TOML, atomic checkpoints, metrics CSV that survives resuming; the shared training loop."""

from __future__ import annotations

import csv
import json
import os
import tomllib
from pathlib import Path

import pytest
import torch

from perceptlab.training import (
    MetricsLog, load_checkpoint, prepare_run_dir, release_run_dir, restore_rng, rng_state, save_checkpoint, seed_everything, to_toml,
)  # fmt: skip


def test_to_toml_round_trips():
    config = {"net": "johnson", "scale": 4, "lr": 1e-3, "losses": ["feature:relu2_2", "pixel:mse*0.1"],
              "data": ["a b/c", 'q"uote'], "flag": True, "init": None}  # fmt: skip
    back = tomllib.loads(to_toml(config))
    assert back == {k: v for k, v in config.items() if v is not None}


def test_checkpoint_round_trip_and_no_code_execution(tmp_path):
    state = {"step": 3, "net": {"w": torch.ones(2)}, "config": {"lr": 0.1}}
    save_checkpoint(tmp_path / "c.pt", state)
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert loaded["step"] == 3 and torch.equal(loaded["net"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_failed_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "c.pt", {"step": 1})

    def broken_save(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "c.pt", {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "c.pt")["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_metrics_log_drops_rows_after_the_resumed_step(tmp_path):
    path = tmp_path / "metrics.csv"
    log = MetricsLog(path)
    for step in (10, 20, 30):
        log.append({"step": step, "loss": step / 10})
    log = MetricsLog(path, resume_step=20)
    log.append({"step": 30, "loss": 9.0})
    rows = list(csv.DictReader(open(path)))
    assert [(r["step"], r["loss"]) for r in rows] == [("10", "1"), ("20", "2"), ("30", "9")]


def test_run_dir_refuses_another_configuration_but_allows_more_steps(tmp_path):
    out, resumed = prepare_run_dir(tmp_path / "run", {"lr": 0.1, "steps": 10})
    assert resumed is None and (out / "config.toml").is_file()
    save_checkpoint(out / "checkpoint.pt", {"config": {"lr": 0.1, "steps": 10}, "step": 10})
    _, resumed = prepare_run_dir(out, {"lr": 0.1, "steps": 20})
    assert resumed["step"] == 10
    with pytest.raises(ValueError, match="another configuration"):
        prepare_run_dir(out, {"lr": 0.2, "steps": 20})
    assert not (out / ".lock").exists()  # a refused trainer does not hold the folder


def test_a_second_live_trainer_is_refused_a_dead_ones_lock_is_taken_over(tmp_path):
    import socket
    import subprocess
    import sys

    out, _ = prepare_run_dir(tmp_path / "run", {"lr": 0.1, "steps": 10})
    lock = out / ".lock"
    assert json.loads(lock.read_text()) == {"pid": os.getpid(), "host": socket.gethostname()}
    prepare_run_dir(out, {"lr": 0.1, "steps": 10})  # this process again (a resume in the same process)
    # Another process that is alive: refused, before anything in the folder changes.
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname()}))
        (out / "config.toml").write_text("marker")
        with pytest.raises(ValueError, match=f"being trained by process {sleeper.pid}"):
            prepare_run_dir(out, {"lr": 0.1, "steps": 10})
        assert (out / "config.toml").read_text() == "marker"
    finally:
        sleeper.kill()
        sleeper.wait()
    # The same process once dead: its lock is stale and taken over.
    _, resumed = prepare_run_dir(out, {"lr": 0.1, "steps": 10})
    assert json.loads(lock.read_text())["pid"] == os.getpid()
    release_run_dir(out)  # what train_loop does when it ends
    assert not lock.exists()
    # A process that exits lets go of its folder too; the next one (a new process) starts without a word.
    code = ("import sys; from perceptlab.training import prepare_run_dir; "
            f"prepare_run_dir({str(tmp_path / 'other')!r}, {{'steps': 1}})")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True)
    assert not (tmp_path / "other" / ".lock").exists()


def test_run_dir_allows_machine_settings_to_change_and_says_so(tmp_path, capsys):
    config = {"lr": 0.1, "steps": 10, "threads": 1, "vgg_precision": "bf16"}
    out, _ = prepare_run_dir(tmp_path / "run", config)
    save_checkpoint(out / "checkpoint.pt", {"config": config, "step": 5})
    _, resumed = prepare_run_dir(out, config | {"vgg_precision": "fp32", "threads": 2})
    assert resumed["step"] == 5
    err = capsys.readouterr().err
    assert "machine settings changed" in err and "'bf16' in the run, 'fp32' now" in err and "lr" not in err.split("(")[1]
    assert 'vgg_precision = "fp32"' in (out / "config.toml").read_text()


def test_rng_state_restores_both_streams():
    gen = seed_everything(5)
    state = rng_state(gen)
    a = (torch.rand(3), torch.rand(3, generator=gen))
    restore_rng(state, gen)
    b = (torch.rand(3), torch.rand(3, generator=gen))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_metrics_log_widens_for_new_columns(tmp_path):
    log = MetricsLog(tmp_path / "m.csv")
    log.append({"step": 1, "loss": 0.5})
    log.append({"step": 1, "val_psnr_y": 25.0})
    log.append({"step": 2, "loss": 0.25})
    rows = list(csv.DictReader(open(tmp_path / "m.csv")))
    assert rows == [{"step": "1", "loss": "0.5", "val_psnr_y": ""}, {"step": "1", "loss": "", "val_psnr_y": "25"},
                    {"step": "2", "loss": "0.25", "val_psnr_y": ""}]  # fmt: skip


def test_keep_freed_memory_configures_glibc():
    import platform

    from perceptlab._alloc import keep_freed_memory

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert keep_freed_memory() is True


def test_config_load_reads_toml_applies_overrides_and_names_problems(tmp_path):
    import dataclasses

    from perceptlab.training import TrainConfig

    @dataclasses.dataclass
    class Config(TrainConfig):
        lr: float = 0.1
        steps: int = 10

    path = tmp_path / "c.toml"
    path.write_text("lr = 0.5\nsteps = 3\n")
    assert Config.load(path, {"steps": 7, "lr": None}) == Config(lr=0.5, steps=7)
    with pytest.raises(ValueError, match="unknown configuration key"):
        Config.load(None, {"rate": 1})
    with pytest.raises(ValueError, match="no such file"):
        Config.load(tmp_path / "missing.toml")
    path.write_text("lr = = 1")
    with pytest.raises(ValueError, match="not valid TOML"):
        Config.load(path)


def test_model_files_round_trip_and_resolution(tmp_path):
    from perceptlab.training import load_model_file, resolve_model_file, save_model_file

    net = torch.nn.Linear(2, 3)
    save_model_file(tmp_path / "run" / "model.safetensors", net, {"task": "x"})
    tensors, meta = load_model_file(tmp_path / "run" / "model.safetensors")
    assert meta == {"task": "x"} and torch.equal(tensors["weight"], net.weight)
    assert resolve_model_file(str(tmp_path / "run"), {}, "X") == tmp_path / "run" / "model.safetensors"
    assert resolve_model_file("mine", {"mine": tmp_path / "m.safetensors"}, "X") == tmp_path / "m.safetensors"
    with pytest.raises(ValueError, match="unknown X model 'nope'"):
        resolve_model_file("nope", {}, "X")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a safetensors weights file"):
        load_model_file(tmp_path / "junk.safetensors")


def test_saving_the_same_model_again_leaves_the_file_and_its_time_alone(tmp_path):
    # a finished run resumed by a queue must not look newer than the points fine-tuned from it
    from perceptlab.training import load_model_file, save_model_file

    net, path = torch.nn.Linear(2, 3), tmp_path / "model.safetensors"
    save_model_file(path, net, {"task": "x"})
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    save_model_file(path, net, {"task": "x"})
    assert path.stat().st_mtime_ns == 1_000_000_000
    save_model_file(path, net, {"task": "y"})  # other metadata: written
    assert path.stat().st_mtime_ns != 1_000_000_000 and load_model_file(path)[1] == {"task": "y"}
    with torch.no_grad():
        net.weight += 1
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    save_model_file(path, net, {"task": "y"})  # other weights: written
    assert path.stat().st_mtime_ns != 1_000_000_000 and torch.equal(load_model_file(path)[0]["weight"], net.weight)


def test_a_run_saved_before_an_option_existed_resumes_when_the_option_keeps_its_default(tmp_path):
    out, _ = prepare_run_dir(tmp_path / "run", {"lr": 0.1, "steps": 10})
    save_checkpoint(out / "checkpoint.pt", {"config": {"lr": 0.1, "steps": 10}, "step": 5})
    defaults = {"lr": 1e-3, "steps": 1000, "precision": "fp32"}
    _, resumed = prepare_run_dir(out, {"lr": 0.1, "steps": 20, "precision": "fp32"}, defaults)
    assert resumed["step"] == 5
    with pytest.raises(ValueError, match="another configuration"):
        prepare_run_dir(out, {"lr": 0.1, "steps": 20, "precision": "bf16"}, defaults)


def _curve_runs(tmp_path):
    """The runs behind tests/data/train_curves.json, built the same way (same photos, same configurations)."""
    import numpy as np
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        image = Image.fromarray((rng.random((9, 9, 3)) * 255).astype(np.uint8)).resize((48, 40), Image.BICUBIC)
        image.save(photos / f"p{i}.png")
    style = tmp_path / "style.png"
    Image.fromarray((rng.random((9, 9, 3)) * 255).astype(np.uint8)).resize((40, 36), Image.BICUBIC).save(style)
    sr = dict(net="srcnn", scale=2, losses=["pixel:mse"], data=[str(photos)], steps=6, batch_size=2, hr_crop=16,
              lr=1e-3, ckpt_every=2, log_every=1, threads=1)  # fmt: skip
    gan = sr | dict(net="johnson", losses=["pixel:mse", "adversarial:ragan*0.01"], discriminator="patch", hr_crop=32,
                    steps=4)  # fmt: skip
    style_run = dict(style=str(style), data=[str(photos)], steps=4, batch_size=2, image_size=32, ckpt_every=2,
                     log_every=1, sample_every=2, threads=1)  # fmt: skip
    return {"sr": ("sr", sr), "sr_gan": ("sr", gan), "style": ("style", style_run)}


@pytest.mark.parametrize("name", ["sr", "sr_gan", "style"])
def test_trainers_on_the_shared_loop_follow_the_curves_recorded_before_it(tmp_path, name):
    # Seed for seed: the same batches, steps and loss parts as the per-task loops gave (to float noise
    # between CPUs, far below what a changed random stream or step order gives), resumed half way.
    from perceptlab.sr.train import SRTrainConfig, train_sr
    from perceptlab.style.train import StyleTrainConfig, train_style

    task, values = _curve_runs(tmp_path)[name]
    expected = json.loads((Path(__file__).parent / "data" / "train_curves.json").read_text())[name]
    cls, train = (SRTrainConfig, train_sr) if task == "sr" else (StyleTrainConfig, train_style)
    run = tmp_path / "run"
    train(cls(**values | {"steps": values["steps"] // 2}), run, progress=False)
    train(cls(**values), run, progress=False)
    with open(run / "metrics.csv") as handle:
        rows = [{k: float(v) for k, v in r.items() if v != "" and k != "seconds"} for r in csv.DictReader(handle)]
    assert [r["step"] for r in rows] == [r["step"] for r in expected]
    for got, want in zip(rows, expected):
        assert set(got) == set(want)
        for key in want:
            assert got[key] == pytest.approx(want[key], rel=2e-3, abs=1e-6), (got["step"], key)


def test_lr_factor_decays_at_each_milestone_and_the_schedule_is_checked():
    from perceptlab.training import check_lr_schedule, lr_factor

    assert [lr_factor([2, 4], 0.5, s) for s in range(6)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    assert lr_factor([], 0.5, 10**6) == 1
    check_lr_schedule([1, 5], 1.0)
    for milestones, gamma in (([5, 5], 0.5), ([0], 0.5), ([2.5], 0.5), ("10", 0.5), ([True], 0.5), ([3], 0.0),
                              ([3], 1.5)):  # fmt: skip
        with pytest.raises(ValueError, match="lr_"):
            check_lr_schedule(milestones, gamma)


def test_run_dir_allows_a_schedule_that_changes_only_after_the_checkpoint(tmp_path, capsys):
    config = {"lr": 0.1, "steps": 10, "lr_milestones": [8], "lr_gamma": 0.5}
    out, _ = prepare_run_dir(tmp_path / "run", config)
    save_checkpoint(out / "checkpoint.pt", {"config": config, "step": 6})
    # a later milestone, another factor for it, a decay at the checkpoint, none: the first 6 steps are the same
    for later in ({"lr_milestones": [8, 12], "steps": 14}, {"lr_gamma": 0.1}, {"lr_milestones": [6], "lr_gamma": 0.2},
                  {"lr_milestones": []}):
        _, resumed = prepare_run_dir(out, config | later)
        assert resumed["step"] == 6
        assert "learning-rate schedule changed after step 6" in capsys.readouterr().err
    old = {"lr": 0.1, "steps": 10}  # a run saved before schedules existed: no milestones, the default factor
    out2, _ = prepare_run_dir(tmp_path / "old", old)
    save_checkpoint(out2 / "checkpoint.pt", {"config": old, "step": 6})
    defaults = {"lr": 1e-3, "steps": 1000, "lr_milestones": [], "lr_gamma": 0.5}
    assert prepare_run_dir(out2, old | {"steps": 20, "lr_milestones": [10], "lr_gamma": 0.1}, defaults)[1]["step"] == 6
    # a change that would have given one of the finished steps another rate is another experiment
    for earlier in ({"lr_milestones": [5]}, {"lr_milestones": [3, 8]}, {"lr_milestones": [1]}):
        with pytest.raises(ValueError, match="another configuration.*lr_milestones"):
            prepare_run_dir(out, config | earlier)
    out3, _ = prepare_run_dir(tmp_path / "past", config | {"lr_milestones": [2]})
    save_checkpoint(out3 / "checkpoint.pt", {"config": config | {"lr_milestones": [2]}, "step": 6})
    with pytest.raises(ValueError, match="lr_gamma"):
        prepare_run_dir(out3, config | {"lr_milestones": [2], "lr_gamma": 0.1})


def test_the_shared_loop_applies_the_schedule_to_every_optimizer_and_resumes_it(tmp_path):
    from perceptlab.training import train_loop

    def run(out, steps, resumed=None, milestones=(3, 5)):
        net, critic = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
        opt, critic_opt = torch.optim.SGD(net.parameters(), lr=0.8), torch.optim.Adam(critic.parameters(), lr=0.1)
        rates = []

        def step_fn():
            rates.append((opt.param_groups[0]["lr"], critic_opt.param_groups[0]["lr"]))
            loss = net(torch.ones(1, 2)).square().sum() + critic(torch.ones(1, 2)).square().sum()
            opt.zero_grad(), critic_opt.zero_grad()
            loss.backward()
            opt.step(), critic_opt.step()
            return {"loss": loss}

        config = {"steps": steps, "lr_milestones": list(milestones), "lr_gamma": 0.5}
        state = {"net": net, "optimizer": opt, "critic": critic, "critic_optimizer": critic_opt}
        train_loop(out, config, step_fn, state, torch.Generator(), resumed, steps=steps, log_every=1, ckpt_every=1,
                   progress=False)  # fmt: skip
        return rates

    whole = run(tmp_path / "a", 6)
    assert whole == [(0.8, 0.1)] * 3 + [(0.4, 0.05)] * 2 + [(0.2, 0.025)]
    run(tmp_path / "b", 4)
    resumed = run(tmp_path / "b", 6, load_checkpoint(tmp_path / "b" / "checkpoint.pt"))
    assert resumed == whole[4:]
    assert run(tmp_path / "c", 2, milestones=()) == [(0.8, 0.1)] * 2
