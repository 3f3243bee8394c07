"""Style transfer: the Johnson network, the one-pass loss, Gatys optimisation, colours, training, loading, the CLI."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import SHARED_DATA
from perceptlab.cli import main
from perceptlab.losses.perceptual import FeatureLoss, StyleLoss, gram_matrix
from perceptlab.losses.tv import total_variation
from perceptlab.nets.style import JohnsonStyleNet
from perceptlab.style import (
    StyleTrainConfig,
    StyleTransferLoss,
    load_style_model,
    preserve_colors,
    stylize_feedforward,
    stylize_optimize,
    train_style,
)
from perceptlab.style.color import luma
from perceptlab.training import load_checkpoint

LAYER_CHANNELS = {"relu1_2": 64, "relu2_2": 128, "relu3_3": 256, "relu4_3": 512}
# With random VGG weights the activations are small: these weights make all three terms count at 32x32.
RANDOM_VGG_WEIGHTS = {"content_weight": 1e3, "style_weight": 1e10, "tv_weight": 1.0, "vgg_weights": None}


pytestmark = pytest.mark.usefixtures("one_thread")


def _smooth_image(path, size, seed):
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((9, 9, 3)) * 255).astype(np.uint8)).resize(size, Image.BICUBIC).save(path)
    return path


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        _smooth_image(folder / f"p{i}.png", (48, 40), i)
    return folder


@pytest.fixture
def style_file(tmp_path):
    return _smooth_image(tmp_path / "style.png", (40, 36), 7)


# ---------------------------------------------------------------- network


@pytest.mark.parametrize("norm", ["instance", "batch"])
@pytest.mark.parametrize("padding", ["reflect", "zeros"])
def test_net_keeps_any_size_and_stays_in_range(norm, padding):
    net = JohnsonStyleNet(norm=norm, padding=padding)
    for h, w in ((8, 8), (37, 50), (33, 31)):
        y = net(torch.rand(2, 3, h, w))
        assert y.shape == (2, 3, h, w)
        assert y.min() > 0 and y.max() < 1


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_gradients_reach_every_parameter_and_the_input(norm):
    net = JohnsonStyleNet(norm=norm)
    x = torch.rand(2, 3, 20, 23, requires_grad=True)
    net(x).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


def test_split_output_conv_with_reflection_equals_a_reflect_padded_conv():
    net = JohnsonStyleNet(padding="reflect")
    out_conv = net.body[-1]
    reference = torch.nn.Conv2d(32, 3, 9, padding=4, padding_mode="reflect")
    reference.load_state_dict(out_conv.conv.state_dict())
    x = torch.rand(2, 32, 17, 22)
    with torch.no_grad():
        assert torch.allclose(out_conv(x), reference(x), atol=1e-5)


def test_net_refuses_bad_options_and_tiny_images():
    with pytest.raises(ValueError, match="norm"):
        JohnsonStyleNet(norm="layer")
    with pytest.raises(ValueError, match="padding"):
        JohnsonStyleNet(padding="circular")
    with pytest.raises(ValueError, match="at least 8x8"):
        JohnsonStyleNet()(torch.rand(1, 3, 7, 30))


# ---------------------------------------------------------------- loss


def test_loss_parts_equal_the_separate_losses():
    style, pred, content = torch.rand(1, 3, 40, 48), torch.rand(2, 3, 32, 36), torch.rand(2, 3, 32, 36)
    torch.manual_seed(1)  # the same random VGG weights in all three networks
    loss = StyleTransferLoss(style, content_weight=2.0, style_weight=3.0, tv_weight=0.5, vgg_weights=None)
    parts = loss(pred, content)
    torch.manual_seed(1)
    content_part = FeatureLoss("relu2_2", weights=None)(pred, content)
    torch.manual_seed(1)
    # Our style term is eq. 4 per layer divided by the C^2 Gram entries.
    style_part = StyleLoss({k: 1 / c**2 for k, c in LAYER_CHANNELS.items()}, weights=None)(pred, style)
    assert torch.allclose(parts["content"], content_part, rtol=1e-5)
    assert torch.allclose(parts["style"], style_part, rtol=1e-5)
    assert torch.allclose(parts["tv"], total_variation(pred))
    total = 2.0 * parts["content"] + 3.0 * parts["style"] + 0.5 * parts["tv"]
    assert torch.allclose(parts["loss"], total)


def test_the_grid_term_is_off_by_default_and_adds_the_lattice_penalty_when_weighted():
    from perceptlab.losses.grid import grid_loss

    style, pred, content = torch.rand(1, 3, 40, 48), torch.rand(2, 3, 32, 36), torch.rand(2, 3, 32, 36)
    torch.manual_seed(1)
    plain = StyleTransferLoss(style, vgg_weights=None)(pred, content)
    torch.manual_seed(1)
    gridded = StyleTransferLoss(style, grid_weight=10.0, vgg_weights=None)
    parts = gridded(pred, content)
    assert "grid" not in plain and torch.allclose(parts["grid"], grid_loss(pred, content, period=4))
    assert torch.allclose(parts["loss"], plain["loss"] + 10.0 * parts["grid"])
    with pytest.raises(ValueError, match="pass the image"):
        gridded(pred, gridded.content_targets(content))


def test_loss_runs_vgg_once_per_call_and_caches_the_style_grams():
    style = torch.rand(1, 3, 40, 48)
    loss = StyleTransferLoss(style, vgg_weights=None)
    with torch.no_grad():
        expected = {k: gram_matrix(v) for k, v in loss.net(style).items() if k in loss.style_layers}
    assert all(torch.equal(loss.style_grams[k], expected[k]) for k in expected)
    assert loss.style_size == (40, 48)
    calls = []
    loss.net.register_forward_hook(lambda module, args, out: calls.append(args[0].shape))
    pred, content = torch.rand(1, 3, 32, 32, requires_grad=True), torch.rand(1, 3, 32, 32)
    targets = loss.content_targets(content)
    calls.clear()
    loss(pred, targets)["loss"].backward()
    assert len(calls) == 1  # one pass for content and style; the Grams are not recomputed
    calls.clear()
    loss(pred, content)
    assert len(calls) == 2  # a content tensor costs one more pass, without a graph
    assert pred.grad is not None


def test_style_grams_are_taken_at_the_style_size():
    style = torch.rand(1, 3, 40, 48)
    assert StyleTransferLoss(style, style_size=24, vgg_weights=None).style_size == (20, 24)
    with pytest.raises(ValueError, match="one image"):
        StyleTransferLoss(torch.rand(2, 3, 32, 32), vgg_weights=None)
    with pytest.raises(ValueError, match="style_weight"):
        StyleTransferLoss(style, style_weight=-1.0, vgg_weights=None)


# ---------------------------------------------------------------- optimisation


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
@pytest.mark.parametrize("init", ["content", "noise", "image", "channels_last_image"])
def test_optimisation_lowers_the_loss(optimizer, init):
    content, style = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 40, 40)
    start = init
    if init.endswith("image"):  # a style network's output may come in channels-last layout
        start = torch.rand(1, 3, 32, 32)
        start = start.to(memory_format=torch.channels_last) if init.startswith("channels") else start
    image, rows = stylize_optimize(content, style, 6, optimizer=optimizer, init=start, seed=5, **RANDOM_VGG_WEIGHTS)
    assert image.shape == content.shape and image.min() > 0 and image.max() < 1
    # Starting from the content, only the 1/255 margin of the parametrisation separates the two.
    assert (rows[0]["content"] < 1e-7) == (init == "content")
    assert [r["evals"] for r in rows] == list(range(1, len(rows) + 1))  # one row per evaluation
    if optimizer == "adam":
        assert [r["iteration"] for r in rows] == list(range(7))  # one evaluation per iteration, plus the initial one
    else:  # the line search's trials share their iteration; the last row re-evaluates the result
        iterations = [r["iteration"] for r in rows]
        assert iterations == sorted(iterations) and iterations[0] == 0 and iterations[-1] <= 6
        assert len(rows) <= 2 * 6 + 10 + 1
    assert rows[-1]["loss"] < 0.8 * rows[0]["loss"]
    assert all(r["iter_seconds"] >= 0 for r in rows) and rows[-1]["seconds"] >= rows[0]["seconds"]
    assert set(rows[0]) == {"iteration", "evals", "seconds", "iter_seconds", "loss", "content", "style", "tv"}


def test_optimisation_starts_from_the_content_and_is_repeatable():
    content, style = torch.rand(1, 3, 32, 32) * 0.9 + 0.05, torch.rand(1, 3, 32, 32)
    image, rows = stylize_optimize(content, style, 0, **RANDOM_VGG_WEIGHTS)
    assert torch.allclose(image, content, atol=1e-6) and len(rows) == 1
    loss = StyleTransferLoss(style, **RANDOM_VGG_WEIGHTS)  # one loss: its random VGG weights are drawn once
    a, _ = stylize_optimize(content, iterations=2, init="noise", seed=3, loss=loss)
    b, _ = stylize_optimize(content, iterations=2, init="noise", seed=3, loss=loss)
    assert torch.equal(a, b)


def test_optimisation_refuses_bad_arguments():
    content, style = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    loss = StyleTransferLoss(style, vgg_weights=None)
    with pytest.raises(ValueError, match="not both"):
        stylize_optimize(content, style, 1, loss=loss)
    with pytest.raises(ValueError, match="optimizer"):
        stylize_optimize(content, iterations=1, loss=loss, optimizer="sgd")
    with pytest.raises(ValueError, match="init"):
        stylize_optimize(content, iterations=1, loss=loss, init="zeros")
    with pytest.raises(ValueError, match="shape"):
        stylize_optimize(content, iterations=1, loss=loss, init=torch.rand(1, 3, 16, 16))


# ---------------------------------------------------------------- colours


def _chroma(x):
    """YCbCr (JPEG) Cb, Cr and YIQ I, Q of RGB images."""
    r, g, b = x.unbind(1)
    y = luma(x)[:, 0]
    return torch.stack([(b - y) * 0.564, (r - y) * 0.713, 0.596 * r - 0.274 * g - 0.322 * b,
                        0.211 * r - 0.523 * g + 0.312 * b])  # fmt: skip


def test_luminance_transfer_keeps_the_content_chroma_and_the_stylised_luma():
    content = torch.rand(2, 3, 16, 20) * 0.2 + 0.4  # no clipping: the chroma must survive exactly
    stylized = torch.rand(2, 3, 16, 20) * 0.2 + 0.4
    out = preserve_colors(stylized, content, "luminance")
    assert torch.allclose(_chroma(out), _chroma(content), atol=1e-6)
    assert torch.allclose(luma(out), luma(stylized), atol=1e-6)


def test_histogram_matching_takes_the_content_colours():
    content = torch.rand(1, 3, 32, 32) * 0.3  # dark
    stylized = torch.rand(1, 3, 32, 32) * 0.3 + 0.7  # bright
    out = preserve_colors(stylized, content, "histogram")
    assert out.shape == content.shape
    assert torch.allclose(out.mean(dim=(2, 3)), content.mean(dim=(2, 3)), atol=0.01)
    assert torch.equal(out * 255, (out * 255).round())
    with pytest.raises(ValueError, match="method"):
        preserve_colors(stylized, content, "yuv")


# ---------------------------------------------------------------- training and models


def _config(photos, style_file, **changes) -> StyleTrainConfig:
    values = dict(style=str(style_file), data=[str(photos)], steps=3, batch_size=2, image_size=32, style_size=0,
                  vgg_weights=None, sample_every=2, ckpt_every=1, log_every=1, threads=1)  # fmt: skip
    return StyleTrainConfig(**(values | changes))


def test_training_writes_a_complete_run_folder(photos, style_file, tmp_path):
    run = tmp_path / "run"
    summary = train_style(_config(photos, style_file), run, progress=False)
    assert summary["steps"] == 3 and set(summary["final"]) == {"loss", "content", "style", "tv"}
    assert {p.name for p in run.iterdir()} >= {"config.toml", "checkpoint.pt", "metrics.csv", "model.safetensors",
                                               "samples"}  # fmt: skip
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_000002.png", "step_000003.png"]
    assert Image.open(run / "samples" / "step_000002.png").size == (48, 40)
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert list(rows[0]) == ["step", "seconds", "loss", "content", "style", "tv"] and len(rows) == 3
    from perceptlab.training import load_model_file

    _, meta = load_model_file(run / "model.safetensors")
    assert meta["task"] == "style" and meta["net"] == "johnson_style" and meta["norm"] == "instance"
    assert meta["style"] == "style.png" and len(meta["style_sha256"]) == 64 and meta["steps"] == "3"


def test_the_saturation_penalty_is_the_tanh_input_beyond_the_limit_and_is_logged(photos, style_file, tmp_path):
    from perceptlab.nets.style import JohnsonStyleNet
    from perceptlab.style.train import saturation_penalty

    # limit 2.5: (3 - 2.5)^2 and (4 - 2.5)^2 count, values inside do not
    assert float(saturation_penalty(torch.tensor([-3.0, 0.0, 2.5, 4.0]))) == pytest.approx((0.25 + 2.25) / 4)

    net = JohnsonStyleNet()
    x = torch.rand(1, 3, 33, 30, requires_grad=True)
    y = net(x)
    assert net.preactivation.shape == y.shape and torch.allclose(y, 0.5 * (torch.tanh(net.preactivation) + 1))
    summary = train_style(_config(photos, style_file, saturation_weight=2.0), tmp_path / "run", progress=False)
    row = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))[-1]
    assert "saturation" in summary["final"] and float(row["saturation"]) >= 0
    parts = [float(row[k]) for k in ("content", "style", "tv", "saturation")]
    # loss = content + style + tv weights (the config's defaults) + 2 * saturation
    from perceptlab.style.losses import CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT

    expected = CONTENT_WEIGHT * parts[0] + STYLE_WEIGHT * parts[1] + TV_WEIGHT * parts[2] + 2.0 * parts[3]
    assert float(row["loss"]) == pytest.approx(expected, rel=1e-3)
    with pytest.raises(ValueError, match="saturation_weight must be non-negative"):
        _config(photos, style_file, saturation_weight=-1.0).validate()


def test_resumed_training_equals_uninterrupted_training(photos, style_file, tmp_path):
    config = _config(photos, style_file, norm="batch")
    train_style(_config(photos, style_file, norm="batch", steps=4), tmp_path / "straight", progress=False)
    train_style(config, tmp_path / "resumed", progress=False)
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["step"] == 3
    train_style(_config(photos, style_file, norm="batch", steps=4), tmp_path / "resumed", progress=False)
    a, b = (load_style_model(str(tmp_path / name)) for name in ("straight", "resumed"))
    x = torch.rand(1, 3, 24, 24)
    assert torch.allclose(a(x), b(x), atol=1e-6)
    steps = [r["step"] for r in csv.DictReader(open(tmp_path / "resumed" / "metrics.csv"))]
    assert steps == ["1", "2", "3", "4"]


def test_training_refuses_a_changed_style_and_bad_configurations(photos, style_file, tmp_path):
    train_style(_config(photos, style_file, steps=1), tmp_path / "run", progress=False)
    _smooth_image(style_file, (40, 36), 8)
    with pytest.raises(ValueError, match="changed since the run"):
        train_style(_config(photos, style_file, steps=2), tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="no style image"):
        train_style(_config(photos, style_file, style=""), tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="unknown configuration key"):
        StyleTrainConfig.from_dict({"style": "s.png", "learning_rate": 1})


def test_models_load_from_run_folder_weights_and_checkpoint(photos, style_file, tmp_path):
    train_style(_config(photos, style_file, steps=1), tmp_path / "run", progress=False)
    x = torch.rand(1, 3, 21, 30)
    specs = (tmp_path / "run", tmp_path / "run" / "model.safetensors", tmp_path / "run" / "checkpoint.pt")
    outs = [stylize_feedforward(load_style_model(str(p)), x) for p in specs]
    assert outs[0].shape == x.shape
    assert torch.allclose(outs[0], outs[1]) and torch.allclose(outs[0], outs[2])
    with pytest.raises(ValueError, match="unknown style model"):
        load_style_model("style_nonexistent")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"nope")
    with pytest.raises(ValueError, match="not a safetensors"):
        load_style_model(str(bad))


def test_tiles_of_a_batchnorm_net_equal_the_whole_image():
    net = JohnsonStyleNet(norm="batch")
    net.train()
    net(torch.rand(4, 3, 32, 32))  # move the running statistics away from their initial values
    net.eval()
    image = torch.rand(1, 3, 150, 170)
    whole = stylize_feedforward(net, image)
    tiled = stylize_feedforward(net, image, tile=64, overlap=64)
    assert tiled.shape == whole.shape
    # Half an 8-bit level of rounding, plus float differences between the layouts the two paths run in.
    assert (tiled - whole).abs().max() <= 0.5 / 255 + 1e-4
    # Without context the seams show: the test above can fail.
    assert (stylize_feedforward(net, image, tile=64, overlap=0) - whole).abs().max() > 5 / 255
    with pytest.raises(ValueError, match="multiple of 4"):
        stylize_feedforward(net, image, tile=30)


# ---------------------------------------------------------------- CLI


def test_cli_train_style_then_stylize_with_the_run_folder(photos, style_file, tmp_path, capsys):
    toml = tmp_path / "style.toml"
    toml.write_text(f'style = "{style_file}"\ndata = ["{photos}"]\nsteps = 50\nbatch_size = 2\nimage_size = 32\n'
                    'style_size = 0\nsample_every = 100\nthreads = 1\n')  # fmt: skip
    run = tmp_path / "run"
    assert main(["train", "style", "--config", str(toml), "--steps", "1", "--out", str(run), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 1 and summary["config"]["style_size"] == 0
    content = _smooth_image(tmp_path / "c.jpg", (30, 21), 3)
    folder = tmp_path / "in"
    folder.mkdir()
    _smooth_image(folder / "d.png", (16, 12), 4)
    assert main(["stylize", str(content), "-o", str(tmp_path / "out.png"), "--model", str(run)]) == 0
    assert Image.open(tmp_path / "out.png").size == (30, 21)
    assert main(["stylize", str(content), str(folder), "-o", str(tmp_path / "outs"), "--model", str(run),
                 "--preserve-colors", "luminance", "--size", "24"]) == 0  # fmt: skip
    assert Image.open(tmp_path / "outs" / "c.png").size == (24, 17)
    assert Image.open(tmp_path / "outs" / "d.png").size == (24, 18)


def test_cli_stylize_by_optimisation_writes_image_and_log(tmp_path, style_file):
    content = _smooth_image(tmp_path / "c.png", (32, 28), 3)
    log = tmp_path / "log.csv"
    assert main(["stylize", str(content), "-o", str(tmp_path / "o.png"), "--style", str(style_file),
                 "--iterations", "2", "--log", str(log)]) == 0  # fmt: skip
    assert Image.open(tmp_path / "o.png").size == (32, 28)
    rows = list(csv.DictReader(open(log)))
    # One row per loss evaluation: L-BFGS's line search may try several points in an iteration.
    iterations = [int(r["iteration"]) for r in rows]
    assert iterations[0] == 0 and iterations[-1] == 2 and iterations == sorted(iterations)
    assert [int(r["evals"]) for r in rows] == list(range(1, len(rows) + 1)) and rows[0]["image"] == "c.png"
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])


def test_cli_stylize_errors_are_one_line_and_exit_2(tmp_path, style_file, capsys):
    content = _smooth_image(tmp_path / "c.png", (32, 28), 3)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    cases = [
        (["stylize", str(tmp_path / "missing.png"), "-o", str(tmp_path / "o.png"), "--model", "x"], "no such file"),
        (["stylize", str(bad), "-o", str(tmp_path / "o.png"), "--style", str(style_file)], "bad.png: not an image"),
        (["stylize", str(content), "-o", str(tmp_path / "o.png"), "--style", str(bad)], "bad.png: not an image"),
        (["stylize", str(content), "-o", str(tmp_path / "o.png")], "give --model"),
        (["stylize", str(content), "-o", str(tmp_path / "o.png"), "--model", "nonexistent"], "unknown style model"),
        (["stylize", str(content), "-o", str(tmp_path / "o.png"), "--iterations", "3", "--model", "x"],
         "needs --style"),
        (["stylize", str(content), "-o", str(tmp_path / "o.png"), "--style", str(style_file), "--init", "feedforward"],
         "needs --model"),
        (["stylize", str(content), str(content), "-o", str(tmp_path / "o.png"), "--model", "x"], "output folder"),
    ]  # fmt: skip
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("perceptlab: error:") and message in err and err.count("\n") == 1, (argv, err)
    assert not (tmp_path / "o.png").exists()


@pytest.mark.skipif(not (SHARED_DATA / "style").is_dir(), reason="style images not found in ../shared/data/style")
def test_real_style_images_give_a_style_loss_that_ranks_them():
    # With the real VGG-16, a crop of candy is closer in style to candy than mosaic is.
    from perceptlab.io import read_image
    from perceptlab.ops import resize_longer_side

    folder = SHARED_DATA / "style" / "pytorch_examples" / "style-images"
    candy = resize_longer_side(read_image(folder / "candy.jpg"), 128)
    mosaic = resize_longer_side(read_image(folder / "mosaic.jpg"), 128)
    loss = StyleTransferLoss(candy)
    crop = candy[..., 16:112, 16:112]
    assert loss(crop, crop)["style"] < loss(mosaic[..., :96, :96], mosaic[..., :96, :96])["style"]


def test_trained_nearest_upsampling_network_round_trips_through_its_model_file(photos, style_file, tmp_path):
    from perceptlab.style.models import load_style_model
    from perceptlab.style.train import StyleTrainConfig, train_style

    config = StyleTrainConfig(style=str(style_file), data=[str(photos)], steps=1, batch_size=1, image_size=32,
                              upsample="nearest", threads=1)  # fmt: skip
    train_style(config, tmp_path / "run", progress=False)
    net = load_style_model(str(tmp_path / "run" / "model.safetensors"))
    assert net.upsample == "nearest"
    with pytest.raises(ValueError, match="upsample must be one of"):
        StyleTrainConfig(style=str(style_file), data=[str(photos)], upsample="bilinear").validate()
