"""The models we train ourselves and ship: present, documented, loadable, used by default."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from perceptlab.cli import main
from perceptlab.sr.models import DEFAULT_SR_MODEL, SHIPPED_SR, load_sr_model, shipped_sr_models
from perceptlab.training import MODELS_DIR, load_model_file


@pytest.mark.parametrize("name", SHIPPED_SR)
def test_every_shipped_sr_model_has_weights_a_card_and_loads(name):
    assert name in shipped_sr_models(), f"{name}.safetensors missing from {MODELS_DIR}"
    card = (MODELS_DIR / f"{name}.md").read_text()
    for fact in ("losses:", "training data:", "steps:", "wall time", "hardware:", "PSNR-Y", "LPIPS"):
        assert fact in card, f"model card of {name} lacks {fact!r}"
    _, meta = load_model_file(MODELS_DIR / f"{name}.safetensors")
    assert meta["task"] == "sr" and meta["scale"] == "4"
    out = load_sr_model(name)(torch.rand(1, 3, 12, 10))
    assert out.shape == (1, 3, 48, 40) and torch.isfinite(out).all()


def test_upscale_uses_a_perceptual_shipped_model_by_default(tmp_path):
    _, meta = load_model_file(MODELS_DIR / f"{DEFAULT_SR_MODEL}.safetensors")
    assert any(loss.startswith("feature:") for loss in json.loads(meta["config"])["losses"])
    Image.new("RGB", (30, 20), (200, 40, 10)).save(tmp_path / "photo.jpg")
    assert main(["upscale", str(tmp_path / "photo.jpg"), "-o", str(tmp_path / "big.png")]) == 0
    assert Image.open(tmp_path / "big.png").size == (120, 80)
