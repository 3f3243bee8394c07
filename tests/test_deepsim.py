"""DeePSiM generators (perceptlab.nets.deepsim) and their trainers (perceptlab.deepsim, `perceptlab train
autoencoder|vae|invert`): shapes, complete run folders, resume, the VAE's KL, the GAN's two steps, bad configs."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from perceptlab.cli import main
from perceptlab.features import AlexNetFeatures, VGG16Features
from perceptlab.nets.deepsim import DEEPSIM_NETS, build_deepsim_net, layer_geometry, min_image_size
from perceptlab.training import load_checkpoint, load_model_file

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("deepsim_images")
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    return folder


def _rows(run):
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


def _train(kind, images, out, *flags, steps=2):
    argv = ["train", kind, "--data", str(images), "--out", str(out), "--steps", str(steps), "--batch-size", "2",
            "--crop", "32", "--width", "8", "--log-every", "1", "--no-progress", *flags]  # fmt: skip
    return main(argv)


@pytest.mark.parametrize("downsample", [8, 16])
@pytest.mark.parametrize("name", ["autoencoder", "vae"])
def test_coder_shapes(name, downsample):
    net = build_deepsim_net(name, bottleneck=4, downsample=downsample, width=8)
    out = net(torch.rand(2, 3, 32, 48))
    assert out["x_hat"].shape == (2, 3, 32, 48) and out["z"].shape == (2, 4, 32 // downsample, 48 // downsample)
    assert 0 <= out["x_hat"].min() and out["x_hat"].max() <= 1
    if name == "vae":
        assert out["mu"].shape == out["logvar"].shape == out["z"].shape and out["kl"].ndim == 0
        net.eval()
        assert torch.equal(net(torch.ones(1, 3, 32, 32))["z"], net(torch.ones(1, 3, 32, 32))["mu"])
    with pytest.raises(ValueError, match="multiples of"):
        net(torch.rand(1, 3, 36, 36))


@pytest.mark.parametrize(("network", "layer"), [("alexnet", "relu1"), ("alexnet", "relu5"), ("vgg16", "relu3_3")])
def test_inverter_shapes(network, layer):
    features_net = (AlexNetFeatures if network == "alexnet" else VGG16Features)((layer,), weights=None)
    features = features_net(torch.rand(1, 3, 64, 64))[layer]
    channels, stride = layer_geometry(network, layer)
    assert features.shape[1] == channels
    net = build_deepsim_net("invert", network=network, layer=layer, width=8)
    assert net(features, (64, 64))["x_hat"].shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match="features"):
        net(torch.rand(1, channels + 1, 4, 4))


def test_registry_and_geometry():
    assert list(DEEPSIM_NETS) == ["autoencoder", "vae", "invert"]
    assert layer_geometry("alexnet", "pool5") == (256, 32) and layer_geometry("vgg16", "relu4_3") == (512, 8)
    for network, layer in (("alexnet", "relu3"), ("alexnet", "pool5"), ("vgg16", "pool5")):  # what the nets say
        features_net = (AlexNetFeatures if network == "alexnet" else VGG16Features)((layer,), weights=None)
        assert min_image_size(network, layer) == features_net.min_size
    with pytest.raises(ValueError, match="unknown deepsim network"):
        build_deepsim_net("gan")


@pytest.mark.parametrize("kind", ["autoencoder", "vae", "invert"])
def test_cli_writes_a_complete_run(kind, images, tmp_path, capsys):
    flags = ["--layer", "relu3"] if kind == "invert" else []
    assert _train(kind, images, tmp_path / "run", "--loss", "feature:relu1_2", "--loss", "pixel:mse*10",
                  "--val-data", str(images), *flags) == 0  # fmt: skip
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} == {"config.toml", "checkpoint.pt", "metrics.csv", "samples",
                                               "model.safetensors"}  # fmt: skip
    assert [p.name for p in (run / "samples").iterdir()] == ["step_000002.png"]
    rows = _rows(run)
    assert [r["step"] for r in rows] == ["1", "2"] and "feature:relu1_2" in rows[0] and "pixel:mse" in rows[0]
    assert ("kl" in rows[0]) == (kind == "vae")
    assert rows[0]["val_psnr"] == "" and 0 < float(rows[1]["val_psnr"]) < 60  # scored at the sample step
    if kind == "vae":  # the total holds the weighted KL
        r = rows[0]
        total = float(r["feature:relu1_2"]) + 10 * float(r["pixel:mse"]) + 0.01 * float(r["kl"])
        assert float(r["loss"]) == pytest.approx(total, rel=1e-4)
    state, meta = load_model_file(run / "model.safetensors")
    assert meta["task"] == "deepsim" and meta["kind"] == kind and meta["steps"] == "2" and meta["width"] == "8"
    net = build_deepsim_net(kind, **({"network": "alexnet", "layer": "relu3"} if kind == "invert" else {}), width=8)
    net.load_state_dict(state)
    assert '"steps": 2' in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["autoencoder", "vae"])  # the VAE's noise continues its stream too
def test_resume_equals_straight(kind, images, tmp_path):
    assert _train(kind, images, tmp_path / "straight", "--loss", "pixel:mse", steps=3) == 0
    assert _train(kind, images, tmp_path / "resumed", "--loss", "pixel:mse", steps=2) == 0
    assert _train(kind, images, tmp_path / "resumed", "--loss", "pixel:mse", steps=3) == 0
    a, b = (load_model_file(tmp_path / name / "model.safetensors")[0] for name in ("straight", "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _rows(tmp_path / "straight") == [dict(r, seconds=s["seconds"]) for r, s in
                                            zip(_rows(tmp_path / "resumed"), _rows(tmp_path / "straight"))]


def test_adversarial_term_alternates_generator_and_discriminator(images, tmp_path):
    assert _train("autoencoder", images, tmp_path / "gan", "--loss", "pixel:mse", "--loss", "adversarial*0.1",
                  "--d-channels", "8") == 0  # fmt: skip
    rows = _rows(tmp_path / "gan")
    assert all("d_loss" in r and "adversarial" in r for r in rows)
    saved = load_checkpoint(tmp_path / "gan" / "checkpoint.pt")
    for key in ("optimizer", "d_optimizer"):  # two steps of each
        assert {float(s["step"]) for s in saved[key]["state"].values()} == {2.0}
    assert "discriminator" in saved


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--crop", "36"], "crop must be a multiple of downsample 8"),
        (["--loss", "nonsense"], "unknown loss term"),
        (["--downsample", "4"], "downsample must be one of"),
        (["--kl-weight", "-1"], "kl_weight"),
    ],
)
def test_bad_configs_give_one_line_errors(flags, message, images, tmp_path, capsys):
    assert _train("vae", images, tmp_path / "bad", *flags) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize(("flags", "message"), [(["--network", "vgg16", "--layer", "relu5"], "unknown vgg16 layer 'relu5'"),
                                               (["--layer", "pool5"], "crop must be at least 63 pixels")])
def test_bad_inverter_settings(flags, message, images, tmp_path, capsys):
    assert _train("invert", images, tmp_path / "bad", *flags) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "bad").exists()


def test_reconstruct_invert_and_sample_commands(images, tmp_path, capsys):
    from perceptlab.io import read_image

    image = images / "0.png"  # 40 x 48: not multiples of 16, padded and cropped back
    assert _train("vae", images, tmp_path / "vae", "--loss", "pixel:mse", "--downsample", "16") == 0
    assert _train("invert", images, tmp_path / "inv", "--loss", "pixel:mse", "--layer", "relu2") == 0
    assert main(["reconstruct", str(image), "-o", str(tmp_path / "r.png"), "--model", str(tmp_path / "vae")]) == 0
    assert read_image(tmp_path / "r.png").shape == (1, 3, 40, 48)
    assert main(["invert", str(image), "-o", str(tmp_path / "i.png"), "--model", str(tmp_path / "inv")]) == 0
    assert read_image(tmp_path / "i.png").shape == (1, 3, 40, 48)
    assert main(["sample", "--model", str(tmp_path / "vae" / "checkpoint.pt"), "-n", "3", "--side", "32",
                 "-o", str(tmp_path / "s")]) == 0  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["sample_000.png", "sample_001.png", "sample_002.png"]
    capsys.readouterr()
    for argv, message in (
        (["invert", str(image), "-o", str(tmp_path / "x.png"), "--model", str(tmp_path / "vae")], "not an inverter"),
        (["sample", "--model", str(tmp_path / "inv"), "-o", str(tmp_path / "y")], "only a vae model samples"),
        (["reconstruct", str(image), "-o", str(tmp_path / "z.png"), "--model", str(images)], "run folder without"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "y").exists()


def test_shipped_names_resolve_and_are_listed(images, tmp_path, capsys, monkeypatch):
    import json
    import shutil

    import perceptlab.training
    from perceptlab.deepsim import SHIPPED_DEEPSIM

    assert _train("invert", images, tmp_path / "inv", "--loss", "pixel:mse", "--layer", "relu2") == 0
    models = tmp_path / "models"
    models.mkdir()
    name = "deepsim_invert_alexnet_relu3"
    assert name in SHIPPED_DEEPSIM
    shutil.copyfile(tmp_path / "inv" / "model.safetensors", models / f"{name}.safetensors")
    (models / f"{name}.md").write_text(f"# {name}\n\nAn inverter of AlexNet features; trained by perceptlab.\n")
    monkeypatch.setattr(perceptlab.training, "MODELS_DIR", models)
    capsys.readouterr()
    assert main(["models", "--task", "deepsim", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["task"], r["kind"]) for r in rows] == [(name, "deepsim", "invert alexnet relu2")]
    assert rows[0]["summary"] == "An inverter of AlexNet features"
    assert main(["invert", str(images / "0.png"), "-o", str(tmp_path / "i.png"), "--model", name]) == 0
    assert (tmp_path / "i.png").is_file()
