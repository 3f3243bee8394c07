"""The models we train ourselves and ship: present, documented, loadable, used by default."""

from __future__ import annotations

import json
import re

import pytest
import torch
from PIL import Image

from perceptlab.cli import main
from perceptlab.sr.models import DEFAULT_SR_MODEL, SHIPPED_SR, load_sr_model, shipped_sr_models
from perceptlab.style.models import SHIPPED_STYLE, load_style_model, shipped_style_models
from perceptlab.training import MODELS_DIR, load_model_file


@pytest.mark.parametrize("name", SHIPPED_SR)
def test_every_shipped_sr_model_has_weights_a_card_and_loads(name):
    from perceptlab.sr.models import DEFAULT_SR_MODELS

    scale = next((s for s, n in DEFAULT_SR_MODELS.items() if n == name), 4)
    if scale != 4 and name not in shipped_sr_models():
        pytest.skip(f"{name} (the x{scale} default) is not shipped yet: its recipe trains in experiments/sr_default")
    assert name in shipped_sr_models(), f"{name}.safetensors missing from {MODELS_DIR}"
    card = (MODELS_DIR / f"{name}.md").read_text()
    for fact in ("losses:", "training data:", "steps:", "wall time", "hardware:", "PSNR-Y", "LPIPS", "grid"):
        assert fact in card, f"model card of {name} lacks {fact!r}"
    _, meta = load_model_file(MODELS_DIR / f"{name}.safetensors")
    assert meta["task"] == "sr" and meta["scale"] == str(scale)
    out = load_sr_model(name)(torch.rand(1, 3, 12, 10))
    assert out.shape == (1, 3, 12 * scale, 10 * scale) and torch.isfinite(out).all()


def test_upscale_uses_a_perceptual_shipped_model_by_default(tmp_path):
    _, meta = load_model_file(MODELS_DIR / f"{DEFAULT_SR_MODEL}.safetensors")
    assert any(loss.startswith("feature:") for loss in json.loads(meta["config"])["losses"])
    Image.new("RGB", (30, 20), (200, 40, 10)).save(tmp_path / "photo.jpg")
    assert main(["upscale", str(tmp_path / "photo.jpg"), "-o", str(tmp_path / "big.png")]) == 0
    assert Image.open(tmp_path / "big.png").size == (120, 80)


def test_the_default_upscaler_prints_no_grid_and_keeps_colours_and_content():
    # Issue 13's defects of the old default, which LPIPS and DISTS missed: measured on photos it never saw.
    from conftest import load_rgb, shared_dir
    from perceptlab.metrics.fidelity import color_shift, grid_score, lr_psnr
    from perceptlab.ops.resize import imresize

    net = load_sr_model(DEFAULT_SR_MODEL)
    for name in ("kodim19", "kodim23"):
        hr = load_rgb(shared_dir("kodak") / f"{name}.png")[..., :256, :256]
        lr = imresize(hr, scale=0.25).clamp(0, 1)
        with torch.no_grad():
            sr = net(lr).clamp(0, 1)
        assert float(grid_score(sr)) <= 0.05, name
        assert float(color_shift(sr, hr)) <= 2.0, name
        assert float(lr_psnr(sr, lr, 4)) >= 33.0, name


@pytest.mark.parametrize("name", SHIPPED_STYLE)
def test_every_shipped_style_model_has_weights_a_card_and_loads(name):
    assert name in shipped_style_models(), f"{name}.safetensors missing from {MODELS_DIR}"
    card = (MODELS_DIR / f"{name}.md").read_text()
    for fact in ("style image:", "content data:", "steps:", "wall time", "hardware:", "final training losses",
                 "public domain"):  # fmt: skip
        assert fact in card, f"model card of {name} lacks {fact!r}"
    tensors, meta = load_model_file(MODELS_DIR / f"{name}.safetensors")
    assert meta["task"] == "style" and meta["dtype"] == "float16"
    assert all(t.dtype == torch.float16 for t in tensors.values() if t.is_floating_point())
    net = load_style_model(name)
    assert all(p.dtype == torch.float32 for p in net.parameters())
    content = torch.rand(1, 3, 21, 30)
    out = net(content)
    assert out.shape == content.shape and torch.isfinite(out).all()
    # A trained style changes the image (an untrained net would give grey, a broken load the content).
    assert (out - content).abs().mean() > 0.05 and out.std() > 0.05


def test_at_least_three_styles_ship_and_stylize_runs_in_one_command(tmp_path):
    assert len(shipped_style_models()) >= 3
    Image.new("RGB", (40, 30), (20, 120, 200)).save(tmp_path / "photo.png")
    name = next(iter(shipped_style_models()))
    assert main(["stylize", str(tmp_path / "photo.png"), "-o", str(tmp_path / "out.png"), "--model", name]) == 0
    assert Image.open(tmp_path / "out.png").size == (40, 30)


def test_models_command_lists_every_shipped_model_with_task_size_and_summary(capsys):
    import json

    from perceptlab.cli import main
    from perceptlab.sr.models import DEFAULT_SR_MODEL, DEFAULT_SR_MODELS, shipped_sr_models
    from perceptlab.codec.models import shipped_codec_models
    from perceptlab.deepsim.models import shipped_deepsim_models
    from perceptlab.style.models import shipped_style_models

    assert main(["models", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == [*shipped_sr_models(), *shipped_style_models(), *shipped_codec_models(),
                                         *shipped_deepsim_models()]  # fmt: skip
    for r in rows:
        assert r["task"] in ("sr", "style", "codec", "deepsim") and r["size_bytes"] > 10_000 and len(r["summary"]) > 20
        assert ("scale" in r) == (r["task"] == "sr") and ("style" in r) == (r["task"] == "style")
        assert ("kind" in r) == (r["task"] in ("codec", "deepsim"))
    defaults = [n for n in DEFAULT_SR_MODELS.values() if n in shipped_sr_models()]  # one per shipped scale
    assert DEFAULT_SR_MODEL in defaults and sorted(r["name"] for r in rows if r["default"]) == sorted(defaults)
    assert main(["models", "--task", "style"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(shipped_style_models()) and all(" style " in line for line in lines)
    for command in ("upscale", "stylize"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "perceptlab models --task" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("name", ["deepsim_autoencoder", "deepsim_invert_alexnet_relu3"])
def test_every_shipped_deepsim_model_has_a_card_and_works_on_photos_it_never_saw(name):
    # The autoencoder keeps the photo; the inverter's image, from AlexNet features alone, is nearer its own
    # photo than the other one (it shows what the features keep).
    from conftest import load_rgb, shared_dir
    from perceptlab.deepsim import SHIPPED_DEEPSIM, invert, load_deepsim_model, reconstruct
    from perceptlab.metrics import psnr

    assert name in SHIPPED_DEEPSIM
    card = (MODELS_DIR / f"{name}.md").read_text()
    for fact in ("losses:", "training data:", "steps:", "wall time", "hardware:", "PSNR", "LPIPS", "picture:"):
        assert fact in card, f"model card of {name} lacks {fact!r}"
    net = load_deepsim_model(name)
    run = reconstruct if net.name == "autoencoder" else invert
    photos = [load_rgb(shared_dir("kodak") / f"{k}.png")[..., 128:320, 256:448] for k in ("kodim20", "kodim23")]
    with torch.no_grad():
        outs = [run(net, x).clamp(0, 1) for x in photos]
    for i, (x, y) in enumerate(zip(photos, outs)):
        assert y.shape == x.shape
        own, other = float(psnr(y, x)), float(psnr(y, photos[1 - i]))
        assert own >= other + 3, (name, own, other)
        if net.name == "autoencoder":
            assert own >= 20, own


@pytest.mark.parametrize("arch", ["bls2017", "hyperprior", "hyperprior_alternategrid10chroma"])  # those shipped
def test_every_shipped_codec_writes_a_real_file_that_decodes_and_its_rates_are_in_order(arch, tmp_path):
    # On a Kodak crop it never trained on: each of the four points compresses to a file and decompresses to
    # the image's size; more bits for a higher rate point, and a decent picture at each.
    from conftest import load_rgb, shared_dir
    from perceptlab.codec.models import SHIPPED_CODEC, shipped_codec_models
    from perceptlab.io import read_image, write_image
    from perceptlab.metrics import psnr

    names = [n for n in SHIPPED_CODEC if re.fullmatch(f"codec_{arch}_q[0-9]", n)]
    assert len(names) == 4
    if not set(names) <= set(shipped_codec_models()):
        pytest.skip(f"the {arch} codec models are not shipped yet (experiments/compression or perceptual_compression: "
                    "run.py --ship)")
    photo = load_rgb(shared_dir("kodak") / "kodim23.png")[..., 100:292, 200:456]
    write_image(photo, tmp_path / "photo.png")
    sizes, quality = [], []
    for name in names:
        card = (MODELS_DIR / f"{name}.md").read_text()
        assert "training data:" in card and "steps:" in card and "Kodak" in card, name
        assert main(["compress", str(tmp_path / "photo.png"), "-o", str(tmp_path / f"{name}.plc"), "--model", name]) == 0
        assert main(["decompress", str(tmp_path / f"{name}.plc"), "-o", str(tmp_path / f"{name}.png")]) == 0
        decoded = read_image(tmp_path / f"{name}.png")
        assert decoded.shape == photo.shape
        sizes.append((tmp_path / f"{name}.plc").stat().st_size)
        quality.append(float(psnr(decoded, photo)))
    assert sizes == sorted(sizes) and quality == sorted(quality), (sizes, quality)
    assert min(quality) >= 25, quality
