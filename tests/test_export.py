"""ONNX export (perceptlab.export, `perceptlab export`): onnxruntime gives what PyTorch gives, for every shipped
model, at several sizes from one file; codec transforms; metadata; errors before any work, no partial file."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")

import onnx  # noqa: E402

from conftest import load_rgb, shared_dir  # noqa: E402
from perceptlab.cli import main  # noqa: E402
from perceptlab.export import bicubic_upscale, codec_paths, export_onnx, onnx_session  # noqa: E402
from perceptlab.nets.fold import fold_batchnorm  # noqa: E402
from perceptlab.nets.sr import build_sr_net  # noqa: E402
from perceptlab.nets.style import JohnsonStyleNet  # noqa: E402
from perceptlab.ops.resize import imresize  # noqa: E402
from perceptlab.sr.models import load_sr_model, shipped_sr_models  # noqa: E402
from perceptlab.style.models import load_style_model, shipped_style_models  # noqa: E402
from perceptlab.deepsim.models import shipped_deepsim_models  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

TOLERANCE = 1e-3  # max abs difference in [0, 1] units; 8-bit outputs may differ by one level where it rounds


def _run(session, x: torch.Tensor) -> list[np.ndarray]:
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})


def _check(ours: np.ndarray, reference: torch.Tensor) -> float:
    reference = reference.numpy()
    assert ours.shape == reference.shape
    diff = float(np.abs(ours - reference).max())
    assert diff < TOLERANCE

    def to_8bit(a: np.ndarray) -> np.ndarray:
        return np.round(np.clip(a, 0, 1) * 255)

    assert np.abs(to_8bit(ours) - to_8bit(reference)).max() <= 1
    return diff


def _metadata(path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


@pytest.fixture(scope="module")
def lr_image() -> torch.Tensor:
    """A real LR image of odd size: Set5's woman, the x4 LR file, 86x57."""
    return load_rgb(shared_dir("Set5") / "image_SRF_4" / "img_005_SRF_4_LR.png")


def _parity(net: torch.nn.Module, path, real: torch.Tensor | None, sizes=((23, 31), (16, 20))) -> None:
    """One exported file at every size: random inputs at ``sizes`` and the real image."""
    session = onnx_session(path)
    inputs = [torch.rand(1, 3, h, w) for h, w in sizes] + ([real] if real is not None else [])
    for x in inputs:
        with torch.no_grad():
            _check(_run(session, x)[0], net(x))


@pytest.mark.parametrize("name", list(shipped_sr_models()))
def test_every_shipped_sr_model_runs_in_onnxruntime_as_in_pytorch(name, tmp_path, lr_image, capsys):
    out = tmp_path / f"{name}.onnx"
    assert main(["export", name, "-o", str(out)]) == 0
    assert f"{name} -> {out}" in capsys.readouterr().err
    _parity(load_sr_model(name), out, lr_image)
    meta = _metadata(out)
    scale = re.search(r"_x(\d+)", name).group(1)  # every shipped SR name carries its factor
    assert (meta["name"], meta["task"], meta["scale"]) == (name, "sr", scale)
    assert meta["net"] == name.split("_")[0] and int(meta["steps"]) > 0 and "config" in meta
    assert "super-resolution" in meta["summary"] and meta["perceptlab_version"]
    assert {o.domain: o.version for o in onnx.load(str(out)).opset_import}[""] == 18
    assert [f.name for f in tmp_path.iterdir()] == [out.name]  # no temporary file or external data left


@pytest.mark.parametrize("name", list(shipped_style_models()))
def test_every_shipped_style_model_runs_in_onnxruntime_as_in_pytorch(name, tmp_path, lr_image):
    out = tmp_path / f"{name}.onnx"
    assert main(["export", name, "-o", str(out)]) == 0
    # 86x57 and 23x31 are no multiples of 4: the graph pads and crops as the network does.
    _parity(load_style_model(name), out, lr_image, sizes=((23, 31), (32, 40)))
    meta = _metadata(out)
    assert (meta["task"], meta["net"], meta["norm"]) == ("style", "johnson_style", "instance")
    assert meta["style"].endswith(".jpg") and "style transfer" in meta["summary"]


@pytest.mark.parametrize("build", [
    lambda: build_sr_net("srresnet", scale=2, n_blocks=2),
    lambda: build_sr_net("perceptsr", scale=2, n_blocks=2, upsample="nearest"),
], ids=["srresnet_x2", "perceptsr_nearest_x2"])  # fmt: skip
def test_other_sr_networks_export_with_their_own_upsampling(build, tmp_path):
    net = build().eval()
    info = export_onnx(net, tmp_path / "net.onnx")
    assert info["kind"] == "sr" and info["dynamic"] and info["metadata"]["perceptlab_version"]
    _parity(net, tmp_path / "net.onnx", None)


def test_a_batch_norm_style_network_with_nearest_upsampling_and_zero_padding(tmp_path):
    net = JohnsonStyleNet(norm="batch", padding="zeros", upsample="nearest")
    with torch.no_grad():
        for _ in range(2):  # running statistics that are not the identity
            net(torch.rand(2, 3, 32, 32))
    net = fold_batchnorm(net.eval()).requires_grad_(False)
    export_onnx(net, tmp_path / "style.onnx")
    _parity(net, tmp_path / "style.onnx", None, sizes=((21, 30), (40, 36)))


def test_bicubic_as_a_fixed_convolution_is_matlab_imresize():
    for scale in (2, 3, 4, 8):
        for h, w in ((2, 3), (7, 5), (16, 11)):
            x = torch.rand(2, 3, h, w, dtype=torch.float64)
            torch.testing.assert_close(bicubic_upscale(x, scale), imresize(x, scale=scale), rtol=0, atol=1e-12)


def test_codec_run_folder_exports_analysis_and_synthesis(tmp_path, capsys):
    from perceptlab.codec import load_codec_model
    from perceptlab.codec.model import CodecModel
    from perceptlab.codec.train import CodecTrainConfig, save_codec_weights

    folder = tmp_path / "tiny"
    model = CodecModel("hyperprior", N=8, M=12).eval()
    model.build_tables()
    save_codec_weights(folder / "model.safetensors", model, CodecTrainConfig(arch="hyperprior", N=8, M=12, data=["x"]),
                       {"name": "tiny", "steps": "0"})  # fmt: skip
    out = tmp_path / "tiny.onnx"
    assert main(["export", str(folder), "-o", str(out)]) == 0
    files = codec_paths(out)
    assert not out.exists() and all(f.is_file() for f in files.values())
    net = load_codec_model(str(folder)).net
    analysis, synthesis = onnx_session(files["analysis"]), onnx_session(files["synthesis"])
    for h, w in ((64, 128), (192, 64)):
        x = torch.rand(1, 3, h, w)
        y, z = _run(analysis, x)
        with torch.no_grad():
            _check(y, net.analysis(x))
            _check(z, net.hyper_analysis(net.analysis(x)))
            y_hat = torch.round(torch.from_numpy(y))
            assert np.abs(_run(synthesis, y_hat)[0] - net.synthesis(y_hat).numpy()).max() < TOLERANCE
    meta = _metadata(files["synthesis"])
    assert (meta["task"], meta["arch"], meta["name"]) == ("codec", "hyperprior", "tiny")
    assert meta["codec_part"] == "synthesis"
    assert "analysis.onnx" in capsys.readouterr().err


def test_a_checkpoint_exported_with_a_fixed_input_size(tmp_path, capsys):
    from perceptlab.training import save_checkpoint

    net = build_sr_net("srcnn", scale=3)
    state = {"config": {"net": "srcnn", "scale": 3}, "net": net.state_dict(), "step": 5}
    save_checkpoint(tmp_path / "run" / "checkpoint.pt", state)
    out = tmp_path / "fixed.onnx"
    assert main(["export", str(tmp_path / "run"), "-o", str(out), "--static", "40x24"]) == 0
    assert "40x24 input" in capsys.readouterr().err
    (graph_input,) = onnx.load(str(out)).graph.input
    assert [d.dim_value for d in graph_input.type.tensor_type.shape.dim] == [1, 3, 24, 40]
    meta = _metadata(out)
    assert (meta["name"], meta["task"], meta["net"], meta["scale"], meta["steps"]) == ("run", "sr", "srcnn", "3", "5")
    session, x = onnx_session(out), torch.rand(1, 3, 24, 40)
    with torch.no_grad():
        _check(_run(session, x)[0], load_sr_model(str(tmp_path / "run"))(x))
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        _run(session, torch.rand(1, 3, 32, 40))


def test_a_codec_of_a_fixed_size_takes_multiples_of_its_stride(tmp_path):
    from perceptlab.codec.model import CodecModel

    with pytest.raises(ValueError, match="multiples of 16"):
        export_onnx(CodecModel("bls2017", N=8, M=12).eval().net, tmp_path / "c.onnx", dynamic=False, size=(40, 48))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv,expected", [
    (["nope", "-o", "{tmp}/a.onnx"], "unknown SR, style, codec or DeePSiM model 'nope'"),
    (["srcnn_x4_mse", "-o", "{tmp}/a.png"], "name the output FILE.onnx"),
    (["srcnn_x4_mse", "-o", "{tmp}/is_a_folder.onnx"], "is a folder, not a file"),
    (["srcnn_x4_mse", "-o", "{tmp}/a.onnx", "--opset", "99"], "opset must be between 7 and"),
])  # fmt: skip
def test_bad_requests_fail_in_one_line_before_any_work(argv, expected, tmp_path, capsys):
    (tmp_path / "is_a_folder.onnx").mkdir()
    assert main(["export", *(a.format(tmp=tmp_path) for a in argv)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("perceptlab: error: ") and expected in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["is_a_folder.onnx"]


def test_without_the_onnx_packages_the_error_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import fails
    assert main(["export", "srcnn_x4_mse", "-o", str(tmp_path / "a.onnx")]) == 2
    assert 'pip install "perceptlab[onnx]"' in capsys.readouterr().err


def test_an_opset_the_exporter_cannot_reach_leaves_no_file(tmp_path, capsys):
    assert main(["export", "srcnn_x4_mse", "-o", str(tmp_path / "a.onnx"), "--opset", "13"]) == 2
    assert "use 18 or higher" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_static_size_is_parsed_as_width_by_height(capsys):
    with pytest.raises(SystemExit):
        main(["export", "srcnn_x4_mse", "-o", "a.onnx", "--static", "wide"])
    assert "WIDTHxHEIGHT" in capsys.readouterr().err


def _deepsim_run(tmp_path, kind: str, *flags: str):
    import numpy as np
    from PIL import Image

    photos = tmp_path / "photos"
    if not photos.is_dir():
        photos.mkdir()
        rng = np.random.default_rng(0)
        for i in range(2):
            Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)).save(photos / f"{i}.png")
    run = tmp_path / kind
    argv = ["train", kind, "--data", str(photos), "--out", str(run), "--steps", "2", "--batch-size", "2",
            "--crop", "32", "--width", "8", "--no-progress", "--loss", "pixel:mse", *flags]  # fmt: skip
    assert main(argv) == 0
    return run


@pytest.mark.parametrize(("kind", "flags"), [("autoencoder", ()), ("vae", ("--downsample", "16")),
                                             ("invert", ("--layer", "relu2"))])  # fmt: skip
def test_deepsim_generators_run_in_onnxruntime_as_in_pytorch(kind, flags, tmp_path, capsys):
    from perceptlab.deepsim import invert, load_deepsim_model, reconstruct

    run = _deepsim_run(tmp_path, kind, *flags)
    out = tmp_path / f"{kind}.onnx"
    assert main(["export", str(run), "-o", str(out)]) == 0
    assert ("inverted" if kind == "invert" else "reconstruction") in capsys.readouterr().err
    net = load_deepsim_model(str(run))
    apply = invert if kind == "invert" else reconstruct
    session = onnx_session(out)
    for h, w in ((32, 48), (64, 80)):
        x = torch.rand(1, 3, h, w)
        _check(_run(session, x)[0], apply(net, x))
    meta = _metadata(out)
    assert meta["task"] == "deepsim" and meta["kind"] == kind
    if kind != "invert":  # the code's stride: other sides are refused before any file is written
        assert main(["export", str(run), "-o", str(tmp_path / "odd.onnx"), "--static", "40x36"]) == 2
        assert "multiples of" in capsys.readouterr().err and not (tmp_path / "odd.onnx").exists()


@pytest.mark.parametrize("name", list(shipped_deepsim_models()))
def test_every_shipped_deepsim_model_runs_in_onnxruntime_as_in_pytorch(name, tmp_path):
    from perceptlab.deepsim import invert, load_deepsim_model, reconstruct

    out = tmp_path / f"{name}.onnx"
    assert main(["export", name, "-o", str(out)]) == 0
    net = load_deepsim_model(name)
    x = torch.rand(1, 3, 96, 128)
    _check(_run(onnx_session(out), x)[0], (invert if net.name == "invert" else reconstruct)(net, x))
