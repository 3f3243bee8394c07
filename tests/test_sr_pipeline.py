"""Super-resolution end to end: training (resume, GAN), model loading, evaluation, tiled upscaling, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import shared_dir
from perceptlab.cli import main
from perceptlab.nets.sr import PerceptSRNet, build_sr_net
from perceptlab.sr.models import load_sr_model
from perceptlab.sr.train import SRTrainConfig, train_sr
from perceptlab.training import load_model_file
from perceptlab.tiling import tiles, upscale_tiled


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        smooth = rng.random((9, 9, 3))
        image = Image.fromarray((smooth * 255).astype(np.uint8)).resize((48, 40), Image.BICUBIC)
        image.save(folder / f"p{i}.png")
    return folder


def _config(photos, **changes) -> SRTrainConfig:
    values = dict(net="srcnn", scale=2, losses=["pixel:mse"], data=[str(photos)], steps=6, batch_size=2, hr_crop=16,
                  lr=1e-3, ckpt_every=2, log_every=1, threads=1)  # fmt: skip
    return SRTrainConfig(**(values | changes))


def test_training_writes_a_complete_run_folder(photos, tmp_path):
    summary = train_sr(_config(photos), tmp_path / "run", progress=False)
    run = tmp_path / "run"
    assert summary["steps"] == 6
    assert {p.name for p in run.iterdir()} >= {"config.toml", "checkpoint.pt", "metrics.csv", "model.safetensors"}
    lines = (run / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("step,seconds,loss,pixel:mse") and len(lines) == 7
    tensors, meta = load_model_file(run / "model.safetensors")
    assert meta["net"] == "srcnn" and meta["scale"] == "2" and meta["steps"] == "6"


def test_resumed_training_equals_uninterrupted_training(photos, tmp_path):
    train_sr(_config(photos, steps=8), tmp_path / "straight", progress=False)
    train_sr(_config(photos, steps=4), tmp_path / "resumed", progress=False)
    train_sr(_config(photos, steps=8), tmp_path / "resumed", progress=False)
    a, _ = load_model_file(tmp_path / "straight" / "model.safetensors")
    b, _ = load_model_file(tmp_path / "resumed" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    steps = [line.split(",")[0] for line in (tmp_path / "resumed" / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == [str(i) for i in range(1, 9)]


def test_gan_training_alternates_generator_and_discriminator(photos, tmp_path):
    config = _config(photos, net="johnson", losses=["pixel:mse", "adversarial:ragan*0.01"], discriminator="patch",
                     hr_crop=32, steps=3, d_lr=2e-4)  # fmt: skip
    calls = []
    step = torch.optim.Adam.step

    def spy(self, *args, **kwargs):  # which optimizer steps, in order: G and D have different learning rates
        calls.append("D" if self.param_groups[0]["lr"] == config.d_lr else "G")
        return step(self, *args, **kwargs)

    torch.optim.Adam.step = spy
    try:
        summary = train_sr(config, tmp_path / "gan", progress=False)
    finally:
        torch.optim.Adam.step = step
    assert "d_loss" in summary["final"] and "adversarial:ragan" in summary["final"]
    assert "discriminator" in torch.load(tmp_path / "gan" / "checkpoint.pt", weights_only=True)
    assert calls == ["G", "D"] * config.steps  # one generator step, then one discriminator step, every step


def test_bad_configurations_are_refused(photos, tmp_path):
    with pytest.raises(ValueError, match="no training data"):
        train_sr(_config(photos, data=[]), tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="multiple of the scale"):
        train_sr(_config(photos, hr_crop=15), tmp_path / "b", progress=False)
    with pytest.raises(ValueError, match="unknown configuration key"):
        SRTrainConfig.from_dict({"net": "srcnn", "learning_rate": 1})
    train_sr(_config(photos, steps=2), tmp_path / "c", progress=False)
    with pytest.raises(ValueError, match="another configuration"):
        train_sr(_config(photos, steps=2, lr=0.5), tmp_path / "c", progress=False)


def test_cli_train_with_toml_and_flag_override(photos, tmp_path, capsys):
    toml = tmp_path / "run.toml"
    toml.write_text(f'net = "srcnn"\nscale = 2\nlosses = ["pixel:l1"]\ndata = ["{photos}"]\nsteps = 50\n'
                    "batch_size = 2\nhr_crop = 16\nthreads = 1\n")  # fmt: skip
    assert main(["train", "sr", "--config", str(toml), "--steps", "2", "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 2 and summary["config"]["losses"] == ["pixel:l1"]
    assert main(["train", "sr", "--config", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "x")]) == 2
    assert "nope.toml: no such file" in capsys.readouterr().err


def test_models_load_from_run_folder_weights_and_checkpoint(photos, tmp_path):
    train_sr(_config(photos, steps=2), tmp_path / "run", progress=False)
    x = torch.rand(1, 3, 8, 8)
    outs = [load_sr_model(str(p))(x) for p in (tmp_path / "run", tmp_path / "run" / "model.safetensors",
                                               tmp_path / "run" / "checkpoint.pt")]  # fmt: skip
    assert outs[0].shape == (1, 3, 16, 16)
    assert torch.allclose(outs[0], outs[1]) and torch.allclose(outs[0], outs[2])
    with pytest.raises(ValueError, match="unknown SR model"):
        load_sr_model("no_such_model")


def test_perceptsr_upsample_option_is_trained_recorded_and_rebuilt(photos, tmp_path):
    train_sr(_config(photos, net="perceptsr", upsample="nearest", steps=2, scale=2), tmp_path / "run", progress=False)
    _, meta = load_model_file(tmp_path / "run" / "model.safetensors")
    assert meta["upsample"] == "nearest"
    for spec in (tmp_path / "run" / "model.safetensors", tmp_path / "run" / "checkpoint.pt"):
        net = load_sr_model(str(spec))
        assert net.upsample == "nearest" and not any(isinstance(m, torch.nn.PixelShuffle) for m in net.modules())
    # The network's own upsampling when not given; refused for a net without the option.
    train_sr(_config(photos, net="perceptsr", steps=1, scale=2), tmp_path / "own", progress=False)
    assert "upsample" not in load_model_file(tmp_path / "own" / "model.safetensors")[1]
    assert load_sr_model(str(tmp_path / "own")).upsample == "subpixel"
    with pytest.raises(ValueError, match="option of the perceptsr net only"):
        _config(photos, upsample="nearest").validate()
    with pytest.raises(ValueError, match="upsample must be one of"):
        _config(photos, net="perceptsr", upsample="bilinear").validate()


def test_tiled_upscaling_equals_whole_image_inference_away_from_tiles():
    torch.manual_seed(0)
    net = build_sr_net("johnson", scale=4).eval()
    lr = torch.rand(1, 3, 40, 52)
    with torch.no_grad():
        whole = (net(lr)[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round()
    tiled = upscale_tiled(net, lr, 4, tile=16, overlap=16).astype(float)
    assert tiled.shape == whole.shape
    assert np.abs(tiled - whole).max() <= 1 and (tiled == whole).mean() > 0.999
    # Without context the seams show: the test above can fail.
    seams = upscale_tiled(net, lr, 4, tile=16, overlap=0).astype(float)
    assert np.abs(seams - whole).max() > 5


def test_eval_sr_cli_reproduces_bicubic_on_set5(tmp_path, capsys):
    set5 = shared_dir("Set5")
    out = tmp_path / "report"
    assert main(["eval", "sr", "--model", "bicubic", "--data", str(set5), "--scale", "4",
                 "--metrics", "psnr_y,ssim_y", "--out", str(out)]) == 0  # fmt: skip
    doc = json.loads((out / "results.json").read_text())
    assert doc["mean"]["psnr_y"] == pytest.approx(28.42, abs=0.05)  # published bicubic x4, Set5
    assert len(doc["images"]) == 5 and "protocol" in doc
    assert "| **mean** |" in (out / "results.md").read_text()
    assert Image.open(out / "grid.png").size[0] > 300


def _img(path, size):
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def test_upscale_cli_files_folders_colours_and_errors(tmp_path, capsys):
    a = _img(tmp_path / "a.png", (20, 12))
    folder = tmp_path / "in"
    folder.mkdir()
    _img(folder / "b.jpg", (10, 8))
    assert main(["upscale", str(a), "-o", str(tmp_path / "big.png"), "--model", "bicubic", "--scale", "2"]) == 0
    assert Image.open(tmp_path / "big.png").size == (40, 24)
    assert main(["upscale", str(a), str(folder), "-o", str(tmp_path / "out"), "--model", "bicubic",
                 "--scale", "3", "--tile", "5", "--match-colors"]) == 0  # fmt: skip
    assert Image.open(tmp_path / "out" / "a.png").size == (60, 36)
    assert Image.open(tmp_path / "out" / "b.png").size == (30, 24)
    capsys.readouterr()
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    assert main(["upscale", str(bad), "-o", str(tmp_path / "bad_out.png"), "--model", "bicubic"]) == 2
    assert "bad.png: not an image" in capsys.readouterr().err
    assert not (tmp_path / "bad_out.png").exists()
    assert main(["upscale", str(a), str(a), "-o", str(tmp_path / "x.png"), "--model", "bicubic"]) == 2
    assert "need an output folder" in capsys.readouterr().err
    assert main(["upscale", str(a), "-o", str(tmp_path / "y.png"), "--model", "nonexistent"]) == 2


@pytest.mark.parametrize("name", ["johnson", "srresnet"])
def test_folding_batchnorm_keeps_the_outputs(name):
    from perceptlab.nets.fold import fold_batchnorm

    torch.manual_seed(0)
    net = build_sr_net(name, scale=4)
    net.train()
    net(torch.rand(4, 3, 12, 12))  # move the running statistics away from their initial values
    net.eval()
    x = torch.rand(2, 3, 10, 14)
    with torch.no_grad():
        before = net(x)
        folded = fold_batchnorm(net)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
        # Relative: an untrained SRResNet outputs values in the hundreds.
        assert torch.allclose(folded(x), before, rtol=1e-5, atol=1e-5 * before.abs().max().item())


@pytest.mark.parametrize("name,scale", [("srcnn", 4), ("srcnn", 3), ("bicubic", 4), ("johnson", 4),
                                        ("johnson", 2), ("johnson", 8), ("srresnet", 4), ("srresnet", 2),
                                        ("perceptsr", 2), ("perceptsr", 4), ("perceptsr", 8),
                                        ("perceptsr:nearest", 4), ("perceptsr:nearest", 8)])  # fmt: skip
def test_each_network_tile_context_is_enough_for_exact_tiling(name, scale):
    torch.manual_seed(0)
    name, _, upsample = name.partition(":")
    net = build_sr_net(name, scale=scale, **({"upsample": upsample} if upsample else {})).eval()
    lr = torch.rand(1, 3, 37, 45) if scale < 8 else torch.rand(1, 3, 21, 27)
    with torch.no_grad():
        if name == "srresnet":  # untrained, it outputs values in the ten thousands: bring them to [0, 1]
            y = net(lr)
            net.tail[-1].weight.div_(2 * y.abs().max())
            net.tail[-1].bias.div_(2 * y.abs().max()).add_(0.5)
        whole = (net(lr)[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round()
    # Tile 6: the two-level networks get head regions of 24 and several tail tiles in each.
    tiled = upscale_tiled(net, lr, scale, tile=6, overlap=net.tile_context).astype(float)
    assert np.abs(tiled - whole).max() <= 1 and (tiled == whole).mean() > 0.999


def _exaggerated_johnson(scale: int = 4):
    """A Johnson net whose output saturates less: random weights scaled so the tanh sees small values."""
    torch.manual_seed(1)
    net = build_sr_net("johnson", scale=scale).eval()
    with torch.no_grad():
        net.body[-1].weight.mul_(0.05)
    return net


def _tiled_float(net, lr, scale, tile, overlap):
    out = torch.empty(3, lr.shape[2] * scale, lr.shape[3] * scale)
    for (y0, x0, y1, x1), centre in tiles(net, lr, scale, tile, overlap):
        out[:, y0 * scale : y1 * scale, x0 * scale : x1 * scale] = centre
    return out


@pytest.mark.parametrize("name", ["johnson", "perceptsr", "perceptsr:nearest"])
@pytest.mark.parametrize("scale", [2, 4, 8])
@pytest.mark.parametrize("part", ["head", "tail"])
def test_two_level_tiling_context_is_exact_and_one_pixel_less_is_not(part, scale, name):
    # In float: tiled equals whole-image inference to rounding with each stage's context,
    # and one pixel short of either, the regions (head) or the tiles (tail) show.
    torch.manual_seed(0)
    if name == "johnson":
        net = build_sr_net(name, scale=scale).eval()
    else:
        # Untrained, its residual branches and last layer start small, and through 18 convolutions an
        # error at the edge of the reach fades below float noise: two blocks and larger weights show it.
        upsample = "nearest" if name.endswith("nearest") else "subpixel"
        net = PerceptSRNet(scale=scale, n_blocks=2, upsample=upsample).eval()
        with torch.no_grad():
            for p in net.parameters():
                p.normal_(0, 0.05)
    head, tail, tail_context = net.tiling_stages()
    lr = torch.rand(1, 3, 50, 46)  # regions of 20: the head's context is inside the image on both sides
    with torch.no_grad():
        whole = net(lr)[0]
    exact = _tiled_float(net, lr, scale, tile=5, overlap=net.tile_context)
    assert (exact - whole).abs().max() < 1e-5
    if part == "tail":
        net.tiling_stages = lambda: (head, tail, tail_context - 1)
    short = _tiled_float(net, lr, scale, tile=5, overlap=net.tile_context - 1)
    assert (short - whole).abs().max() > 1e-4


def test_two_level_tiling_runs_the_head_on_regions_and_the_tail_on_tiles():
    net = _exaggerated_johnson()
    head, tail, tail_context = net.tiling_stages()
    sizes = {"head": [], "tail": []}

    def spy(name, fn):
        return lambda x: sizes[name].append(tuple(x.shape[-2:])) or fn(x)

    net.tiling_stages = lambda: (spy("head", head), spy("tail", tail), tail_context)
    upscale_tiled(net, torch.rand(1, 3, 50, 30), 4, tile=10, overlap=net.tile_context)
    # Regions of 40 rows with 14 rows of context (12 for the head, 2 for the tail), clipped to the
    # image: rows 0-50 and 26-50, in one band of 30 columns; tail tiles of 10 with 2 on each side.
    assert net.tile_context == 14
    assert sizes["head"] == [(50, 30), (24, 30)]
    assert len(sizes["tail"]) == 5 * 3 and max(sizes["tail"]) == (14, 14)


def test_evaluate_run_checks_the_recipe_and_caches_its_scores(photos, tmp_path):
    from perceptlab.sr.evaluate import SR_METRICS, evaluate_run

    set5 = shared_dir("Set5")
    run = tmp_path / "run"
    train_sr(_config(photos, scale=4, steps=2), run, progress=False)
    with pytest.raises(ValueError, match="hr_crop = 16, expected 64"):
        evaluate_run(run, [set5], 4, expect={"hr_crop": 64})
    entry = evaluate_run(run, [set5], 4, expect={"hr_crop": 16, "vgg_precision": "fp32"})
    assert entry["steps"] == 2 and entry["config"]["net"] == "srcnn"
    assert len(entry["benchmarks"]["Set5"]["images"]) == 5
    assert set(entry["benchmarks"]["Set5"]["mean"]) == set(SR_METRICS) == set(entry["benchmarks"]["Set5"]["median"])
    assert {"grid", "lr_psnr", "color_shift"} <= set(SR_METRICS)
    cached = json.loads((run / "eval.json").read_text())
    cached["benchmarks"]["Set5"]["mean"]["psnr_y"] = -1.0
    (run / "eval.json").write_text(json.dumps(cached))
    assert evaluate_run(run, [set5], 4)["benchmarks"]["Set5"]["mean"]["psnr_y"] == -1.0


def test_whole_image_sheet_puts_each_row_side_by_side_at_the_shrunk_size():
    from perceptlab.plot import whole_image_sheet

    white, black = torch.ones(1, 3, 40, 60), torch.zeros(1, 3, 40, 60)
    sheet = whole_image_sheet([("a", {"x": white, "y": black}), ("b", {"x": black, "y": white})], shrink=2)
    assert sheet.size == (2 * (30 + 6) + 6, 2 * (20 + 6 + 18) + 6)
    pixels = np.asarray(sheet)
    assert pixels[6 + 18 + 10, 6 + 15].tolist() == [255, 255, 255]  # row a, column x: white
    assert pixels[6 + 18 + 10, 6 + 36 + 15].tolist() == [0, 0, 0]  # row a, column y: black
    assert pixels[50 + 18 + 10, 6 + 15].tolist() == [0, 0, 0]  # row b, column x: black
