"""The learned codec: GDN, entropy models, integer tables, the .plc format, deterministic decoding, trainer, CLI.

Every model here is tiny and made in the test (random weights, or a few training steps); the shipped
codecs are checked in tests/test_shipped_models.py.
"""

from __future__ import annotations

import argparse
import hashlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from perceptlab.cli import build_parser, main
from perceptlab.codec import (CodecFileError, CodecModel, CodecTrainConfig, compress, decompress, estimate_bits,
                              load_codec_model, model_hash, read_header, train_codec)  # fmt: skip
from perceptlab.codec import coding, entropy, fixed_point
from perceptlab.codec.bitstream import pad
from perceptlab.codec.train import save_codec_weights
from perceptlab.io import read_image
from perceptlab.nets.codec import CODEC_NETS, build_codec_net
from perceptlab.nets.layers import GDN, IGDN, lower_bound
from perceptlab.training import load_model_file

EPS = torch.finfo(torch.float32).eps


def _model(arch: str, seed: int = 0, gain: float = 30.0) -> CodecModel:
    """A random tiny model with tables; ``gain`` spreads the latents so that many symbols (and escapes) occur."""
    torch.manual_seed(seed)
    model = CodecModel(arch, N=8, M=12)
    with torch.no_grad():
        model.net.g_a[-1].weight.mul_(gain)
    model.eval().build_tables()
    return model


def _image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    smooth = Image.fromarray((rng.random((6, 6, 3)) * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC)
    return torch.from_numpy(np.asarray(smooth, dtype=np.float32) / 255).permute(2, 0, 1)[None].contiguous()


def _run_folder(tmp_path, arch: str, name: str, seed: int = 0):
    """A run folder holding a model.safetensors as the trainer writes it."""
    folder = tmp_path / name
    model = _model(arch, seed)
    save_codec_weights(folder / "model.safetensors", model, CodecTrainConfig(arch=arch, N=8, M=12, data=["x"]),
                       {"name": name, "steps": "0"})  # fmt: skip
    return folder


# ------------------------------------------------------------------ layers and networks


def test_gdn_is_the_formula_and_igdn_inverts_it_for_small_inputs():
    torch.manual_seed(0)
    gdn = GDN(5)
    with torch.no_grad():
        gdn.gamma.add_(0.05 * torch.rand(5, 5))
    x = torch.randn(2, 5, 7, 9)
    beta = gdn.beta**2 - gdn.pedestal
    gamma = gdn.gamma**2 - gdn.pedestal
    expected = x / torch.sqrt(beta.view(1, -1, 1, 1) + torch.einsum("ij,njhw->nihw", gamma, x * x))
    assert torch.allclose(gdn(x), expected, atol=1e-6)
    igdn = IGDN(5)
    igdn.load_state_dict(gdn.state_dict())
    small = 0.05 * x
    assert igdn(gdn(small)).sub(small).abs().max() < 1e-3 * small.abs().max()
    assert gdn(x).shape == igdn(x).shape == x.shape


def test_gdn_parameters_stay_bounded_and_still_learn_below_the_bound():
    gdn = GDN(3)
    with torch.no_grad():
        gdn.beta.fill_(-1.0)  # below the bound: beta is beta_min, not negative
    x = torch.rand(1, 3, 4, 4)
    out = gdn(x)
    assert torch.isfinite(out).all() and (out > 0).all()
    out.sum().backward()  # a larger beta lowers the output: the gradient asks for it and passes the bound
    assert (gdn.beta.grad != 0).all()
    y = torch.tensor([-1.0, 3.0], requires_grad=True)
    lower_bound(y, 0.0).sum().backward()  # would push y further down: no gradient below the bound
    assert y.grad.tolist() == [0.0, 1.0]


@pytest.mark.parametrize("name", list(CODEC_NETS))
def test_every_codec_net_has_the_registered_stride(name):
    net = build_codec_net(name, N=8, M=12)
    info = CODEC_NETS[name]
    assert (net.name, net.stride, net.hyper) == (name, info.stride, info.hyper)
    y = net.analysis(torch.rand(2, 3, 64, 128))
    assert y.shape == (2, 12, 4, 8)
    assert net.synthesis(y).shape == (2, 3, 64, 128)
    if info.hyper:
        z = net.hyper_analysis(y)
        assert z.shape == (2, 8, 1, 2)
        assert net.hyper_synthesis(z).shape == y.shape and (net.hyper_synthesis(z) >= 0).all()


def test_unknown_net_and_bad_channels_are_refused():
    with pytest.raises(ValueError, match="unknown codec network"):
        build_codec_net("jpeg")
    with pytest.raises(ValueError, match="N must be a positive int"):
        build_codec_net("bls2017", N=0)


# ------------------------------------------------------------------ entropy models


def test_factorized_likelihoods_sum_to_one_over_the_integers():
    torch.manual_seed(0)
    density = entropy.FactorizedDensity(4)
    with torch.no_grad():
        for p in density.parameters():
            p.add_(0.3 * torch.randn_like(p))
    medians = density.quantiles((0.5,))[:, 0].float()
    values = torch.arange(-3000, 3001, dtype=torch.float32)
    y = (values.view(1, 1, -1) + medians.view(1, -1, 1)).unsqueeze(-1)  # (1, C, L, 1)
    total = density.likelihood(y).sum(dim=(0, 2, 3))
    assert torch.allclose(total, torch.ones(4), atol=1e-4), total
    # the median splits the mass in two, the tails hold TAIL_MASS
    q = density.quantiles()
    assert (q[:, 0] < q[:, 1]).all() and (q[:, 1] < q[:, 2]).all()


def test_gaussian_likelihoods_sum_to_one_and_scales_are_bounded():
    values = torch.arange(-3000, 3001, dtype=torch.float32).view(1, 1, -1, 1)
    for scale in (0.01, 0.11, 1.0, 7.3, 250.0):
        total = entropy.GaussianConditional().likelihood(values, torch.full_like(values, scale)).sum()
        assert abs(float(total) - 1) < 1e-4, (scale, total)
    gaussian = entropy.GaussianConditional()
    at_bound = gaussian.likelihood(torch.zeros(1), torch.tensor([entropy.SCALE_MIN]))
    assert torch.equal(gaussian.likelihood(torch.zeros(1), torch.tensor([1e-4])), at_bound)


def test_integer_tables_are_16_bit_positive_and_close_to_the_floats():
    p = np.array([0.5, 0.25, 0.2, 1e-12, 0.05 - 1e-12, 0.0])
    q = entropy.quantize_pmf(p)
    assert q.sum() == 2**16 and q.min() >= 1 and np.abs(q / 2**16 - p).max() < 1e-3
    with pytest.raises(ValueError, match="1 to 32768"):
        entropy.quantize_pmf(np.ones(2**15 + 1))
    tables = entropy.gaussian_tables()
    assert len(tables["length"]) == entropy.SCALE_LEVELS
    for k in range(entropy.SCALE_LEVELS):
        start, n = int(tables["start"][k]), int(tables["length"][k])
        pmf = tables["pmf"][start : start + n + 1]
        assert int(pmf.sum()) == 2**16 and int(pmf.min()) >= 1
        assert int(tables["offset"][k]) == -(n // 2)  # symmetric: -R .. R


def test_rounding_and_noise():
    x = torch.tensor([0.2, 0.7, -1.6])
    assert entropy.quantize(x, "round").tolist() == [0.0, 1.0, -2.0]
    assert torch.allclose(entropy.quantize(x, "round", torch.tensor(0.25)), torch.tensor([0.25, 0.25, -1.75]))
    noisy = entropy.quantize(x.expand(1000, 3), "noise")
    assert ((noisy - x).abs() <= 0.5).all() and (noisy != torch.round(noisy)).any()


def test_escaped_symbols_of_any_size_round_trip():
    tables = coding.Tables(*[entropy.gaussian_tables()[k] for k in ("pmf", "start", "length", "offset")])
    symbols = torch.tensor([0, 1, -1, 2, -3, 40, -41, 2**16 + 5, -(2**20), 2**31 - 1, -(2**31) + 1, 7])
    groups = torch.tensor([0, 0, 0, 1, 1, 5, 5, 0, 2, 3, 3, 63])
    encoder = coding.new_encoder()
    coding.encode(encoder, symbols, groups, tables)
    decoder = coding.new_decoder(coding.finish(encoder))
    assert torch.equal(coding.decode(decoder, groups, tables), symbols)


def test_coded_bytes_are_those_of_format_version_1():
    # Golden bytes: constriction's models and coder (and our escapes) must not change what a file holds, or
    # files written before stop decoding; the same bytes came out of constriction 0.4.0, 0.4.1 and 0.5.0.
    # If this fails after an upgrade, bump bitstream.VERSION rather than the hash.
    pmfs = [np.array([1, 2, 3, 4, 5, 4, 3, 2, 1]) * 4096, np.array([60000, 5000, 535, 1]), np.array([32768, 32768])]
    packed = entropy._pack([entropy.quantize_pmf(p) for p in pmfs], [-4, 0, 7])
    tables = coding.Tables(packed["pmf"], packed["start"], packed["length"], packed["offset"])
    rng = np.random.default_rng(7)
    groups, symbols = torch.from_numpy(rng.integers(0, 3, 500)), torch.from_numpy(rng.integers(-6, 9, 500))
    encoder = coding.new_encoder()
    coding.encode(encoder, symbols, groups, tables)  # many escapes: every table's range is narrower
    data = coding.finish(encoder)
    assert (len(data), hashlib.sha256(data).hexdigest()[:16]) == (692, "d4c20b277598c82c")
    assert torch.equal(coding.decode(coding.new_decoder(data), groups, tables), symbols)


# ------------------------------------------------------------------ the file format


@pytest.mark.parametrize("arch", ["bls2017", "hyperprior"])
@pytest.mark.parametrize("kind", ["rgb", "gray", "rgba"])
def test_round_trip_decodes_the_encoders_symbols_exactly(arch, kind, tmp_path):
    model = _model(arch)
    h, w = (37, 71) if kind == "rgb" else (65, 30)
    image = _image(h, w)
    path = tmp_path / "input.png"
    array = (image[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    if kind == "gray":
        Image.fromarray(array).convert("L").save(path)
    elif kind == "rgba":
        alpha = np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)[..., None]
        Image.fromarray(np.concatenate([array, alpha], axis=2), "RGBA").save(path)
    else:
        Image.fromarray(array).save(path)
    x = read_image(path)
    data = compress(model, x, mode="L" if kind == "gray" else "RGB")
    out = decompress(data, model)
    expected = model.symbols(pad(x, model.stride))
    assert out["symbols"].keys() == expected.keys()
    assert all(torch.equal(out["symbols"][k], expected[k]) for k in expected)
    assert out["image"].shape == x.shape and 0 <= out["image"].min() and out["image"].max() <= 1
    assert out["bpp"] == 8 * len(data) / (h * w)
    assert out["mode"] == ("L" if kind == "gray" else "RGB") and out["model"] == arch
    if kind == "gray":
        assert torch.equal(out["image"][:, 0], out["image"][:, 2])
    else:  # decoding is what the float synthesis makes of the symbols
        assert torch.equal(out["image"], model.reconstruct(expected)[..., :h, :w].clamp(0, 1))
    # and the symbols span many values
    assert len(torch.unique(expected["y"])) > 5


@pytest.mark.parametrize("arch", ["bls2017", "hyperprior"])
def test_the_compact_copy_is_smaller_loads_wide_and_codes_nearly_the_same(arch, tmp_path):
    from perceptlab.codec.models import compact_model_file

    src = _run_folder(tmp_path, arch, f"{arch}_q1") / "model.safetensors"
    sizes = compact_model_file(src, tmp_path / "compact.safetensors")
    tensors, meta = load_model_file(tmp_path / "compact.safetensors")
    assert meta == load_model_file(src)[1]
    # (a tiny model: its fixed-size pmf tables weigh more than its weights; a shipped point halves)
    assert sizes["bytes_after"] < 0.8 * sizes["bytes_before"] and 0 < sizes["max_weight_change"] < 1e-3
    assert tensors["net.g_a.0.weight"].dtype == torch.float16 and tensors["net.g_a.0.bias"].dtype == torch.float32
    assert tensors["net.g_a.1.gamma"].dtype == torch.float32  # GDN stays float32
    if arch == "hyperprior":
        assert tensors["tables.hs0_weight"].dtype == torch.int32 and tensors["tables.hs0_bias"].dtype == torch.int64
    full, compact = load_codec_model(str(src)), load_codec_model(str(tmp_path / "compact.safetensors"))
    assert all(p.dtype == torch.float32 for p in compact.parameters())
    assert all(v.dtype == full.tables.as_dict()[k].dtype for k, v in compact.tables.as_dict().items())
    assert all(torch.equal(v, full.tables.as_dict()[k]) for k, v in compact.tables.as_dict().items())
    assert model_hash(compact) != model_hash(full)  # another model: its files say so
    x = _image(48, 64)
    data = compress(compact, x)
    out = decompress(data, compact)
    assert all(torch.equal(out["symbols"][k], v) for k, v in compact.symbols(pad(x, compact.stride)).items())
    reference = decompress(compress(full, x), full)["image"]
    assert (out["image"] - reference).abs().max() < 0.02
    with pytest.raises(ValueError, match="not a codec model"):
        sr = tmp_path / "sr.safetensors"
        from perceptlab.training import save_model_file

        save_model_file(sr, torch.nn.Conv2d(1, 1, 1), {"task": "sr"})
        compact_model_file(sr, tmp_path / "x.safetensors")


def test_the_estimate_is_near_the_file_size_for_a_trained_looking_model():
    model = _model("bls2017", gain=1.0)
    x = _image(64, 96)
    data = compress(model, x)
    bits = estimate_bits(model, x)
    # The file adds a header (~45 bytes here) and pays the 16-bit tables' rounding; the rest is the estimate.
    assert bits > 0 and abs(8 * len(data) - bits) < 8 * 64 + 0.05 * bits


def test_header_fields_and_hash():
    model = _model("hyperprior")
    data = compress(model, _image(20, 130), mode="L")
    header = read_header(data)
    assert (header.model, header.height, header.width, header.mode) == ("hyperprior", 20, 130, "L")
    assert header.model_hash == model_hash(model) and len(header.model_hash) == 8
    assert data[:4] == b"\x89PLC" and data[4] == 1
    other = _model("hyperprior", seed=1)
    assert model_hash(other) != model_hash(model)


@pytest.mark.parametrize("damage,message", [
    (lambda d: d[:-3], "truncated"),
    (lambda d: d[:3], "truncated"),
    (lambda d: d + b"\0", "unexpected bytes"),
    (lambda d: d[:-5] + bytes([d[-5] ^ 0x10]) + d[-4:], "checksum"),
    (lambda d: d[:20] + bytes([d[20] ^ 1]) + d[21:], "checksum"),
    (lambda d: b"GIF89a" + d[6:], "not a .plc file"),
    (lambda d: d[:4] + bytes([2]) + d[5:], "format version 2"),
])  # fmt: skip
def test_damaged_files_are_refused_with_one_line(damage, message):
    model = _model("bls2017")
    data = compress(model, _image(40, 40))
    with pytest.raises(CodecFileError, match=message) as info:
        decompress(damage(data), model)
    assert "\n" not in str(info.value)


def test_a_file_from_other_weights_or_an_uninstalled_model_is_refused():
    data = compress(_model("bls2017"), _image(40, 40))
    with pytest.raises(CodecFileError, match="with weights"):
        decompress(data, _model("bls2017", seed=1))
    with pytest.raises(CodecFileError, match="not installed"):
        decompress(data)


# ------------------------------------------------------------------ deterministic decoding


def _naive_float_indices(model: CodecModel, z: torch.Tensor) -> torch.Tensor:
    """What CompressAI does: table indices from the float hyper-synthesis (the scheme that fails, issue #279)."""
    medians = model.tables.median.float() / 2**fixed_point.ACTIVATION_BITS
    scales = model.net.hyper_synthesis((z.float() + medians[:, None, None])[None])[0]
    return torch.searchsorted(entropy.scale_table().float()[:-1].contiguous(), scales.reshape(-1)).reshape(scales.shape)


def _perturbed(monkeypatch, factor: float) -> None:
    """Every float convolution's output off by ``factor`` (a few ulp): another CPU, BLAS or thread count."""
    conv2d, conv_transpose2d = F.conv2d, F.conv_transpose2d
    monkeypatch.setattr(F, "conv2d", lambda *a, **k: conv2d(*a, **k) * factor)
    monkeypatch.setattr(F, "conv_transpose2d", lambda *a, **k: conv_transpose2d(*a, **k) * factor)


def test_scale_choice_survives_a_few_ulp_of_float_error(monkeypatch):
    model = _model("hyperprior", gain=20.0)
    with torch.no_grad():  # scales over much of the table, not only its smallest entries
        model.net.h_s[-2].weight.mul_(30)
        model.net.h_s[-2].bias.add_(1)
    x = _image(128, 128, seed=3)
    z = model.symbols(pad(x, 64))["z"]
    # Put one float scale on a table boundary: shift its channel's last bias so it equals a table scale.
    scales = model.net.hyper_synthesis((z.float() + model._medians()[:, None, None])[None])[0]
    c, i, j = np.unravel_index(int(scales.argmax()), scales.shape)
    table = entropy.scale_table().float()
    k = int(torch.searchsorted(table, scales[c, i, j])) - 1
    last = model.net.h_s[-2]
    with torch.no_grad():
        last.bias[c] += table[k] - scales[c, i, j]
    model.build_tables()  # the integer hyper-synthesis of the changed weights
    low, high = 1 - 4 * EPS, 1 + 4 * EPS

    def indices(factor, how):
        with monkeypatch.context() as patch:
            _perturbed(patch, factor)
            return how(model, z)

    # The naive float path flips at least one index between two "machines" 8 ulp apart: the test can fail.
    assert (indices(low, _naive_float_indices) != indices(high, _naive_float_indices)).any()
    # The integer path gives the same indices whatever the float error.
    integer = CodecModel.scale_indices
    assert torch.equal(indices(low, integer), indices(high, integer))
    assert torch.equal(indices(low, integer), integer(model, z))
    # The integer path agrees with the float one almost everywhere (it is the same network, quantised).
    assert (integer(model, z) == _naive_float_indices(model, z)).float().mean() > 0.99
    assert len(torch.unique(integer(model, z))) > 10

    # End to end: encoded on one machine, decoded on another whose float convolutions are 8 ulp off.
    data = compress(model, x)
    expected = model.symbols(pad(x, 64))
    with monkeypatch.context() as patch:
        _perturbed(patch, high)
        out = decompress(data, model)
    assert all(torch.equal(out["symbols"][key], expected[key]) for key in expected)

    # The same round trip with the naive float choice of tables does not survive.
    monkeypatch.setattr(CodecModel, "scale_indices", _naive_float_indices)
    with monkeypatch.context() as patch:
        _perturbed(patch, low)
        data = compress(model, x)
    with monkeypatch.context() as patch:
        _perturbed(patch, high)
        try:
            broken = decompress(data, model)["symbols"]
        except CodecFileError:
            broken = None
    assert broken is None or not torch.equal(broken["y"], expected["y"])


def test_integer_convolutions_match_torch_exactly_on_integers():
    torch.manual_seed(0)
    layers = torch.nn.Sequential(torch.nn.ConvTranspose2d(3, 4, 5, 2, 2, 1), torch.nn.ReLU(),
                                 torch.nn.Conv2d(4, 4, 5, stride=2, padding=2), torch.nn.ReLU(),
                                 torch.nn.Conv2d(4, 2, 3, padding=1))  # fmt: skip
    with torch.no_grad():  # weights on a grid of 1/8: three layers' products stay on the 2**-10 grid, so exact
        for p in layers.parameters():
            p.copy_(torch.round(p * 8) / 8)
    tables = fixed_point.quantize_layers(layers)
    x = torch.randint(-20, 20, (1, 3, 5, 6)).double()
    expected = layers.double()(x)[0] * 2**fixed_point.ACTIVATION_BITS
    got = fixed_point.run_layers((x[0] * 2**fixed_point.ACTIVATION_BITS).long(), tables)
    assert torch.equal(got.double(), expected)


# ------------------------------------------------------------------ models and training


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        array = (_image(72, 80, seed=i)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        Image.fromarray(array).save(folder / f"p{i}.png")
    return folder


def _config(photos, **kwargs) -> CodecTrainConfig:
    values = dict(arch="hyperprior", N=8, M=8, data=[str(photos)], crop=64, batch_size=2, steps=4, lr=1e-3,
                  val_data=str(photos), sample_every=2, log_every=1, threads=1)  # fmt: skip
    return CodecTrainConfig(**{**values, **kwargs})


def test_resumed_training_equals_uninterrupted_training_and_ends_with_tables(photos, tmp_path):
    train_codec(_config(photos), tmp_path / "straight", progress=False)
    train_codec(_config(photos, steps=2), tmp_path / "resumed", progress=False)
    summary = train_codec(_config(photos), tmp_path / "resumed", progress=False)
    a, meta = load_model_file(tmp_path / "straight" / "model.safetensors")
    b, _ = load_model_file(summary["weights"])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(k.startswith("tables.") for k in a)
    assert {k: meta[k] for k in ("task", "arch", "N", "M", "lambda", "distortion", "steps", "name")} == {
        "task": "codec", "arch": "hyperprior", "N": "8", "M": "8", "lambda": "0.0067", "distortion": "mse",
        "steps": "4", "name": "straight"}  # fmt: skip
    lines = (tmp_path / "resumed" / "metrics.csv").read_text().splitlines()
    assert lines[0].split(",")[:6] == ["step", "seconds", "loss", "bpp", "mse", "psnr"]
    assert "val_bpp" in lines[0] and [line.split(",")[0] for line in lines[1:]] == ["1", "2", "3", "4"]
    assert (tmp_path / "resumed" / "samples" / "step_000004.png").is_file()
    # every way to name the model loads the same one; a checkpoint gets its tables built from its floats
    for spec in (tmp_path / "straight", tmp_path / "straight" / "model.safetensors"):
        model = load_codec_model(str(spec))
        assert model.name == "straight" and model_hash(model) == read_header(compress(model, _image(9, 9))).model_hash
    from_checkpoint = load_codec_model(str(tmp_path / "straight" / "checkpoint.pt"))
    assert from_checkpoint.tables is not None and from_checkpoint.name == "straight"


def test_fine_tuning_to_another_lambda_starts_from_the_given_weights(photos, tmp_path):
    train_codec(_config(photos, steps=2), tmp_path / "base", progress=False)
    base, _ = load_model_file(tmp_path / "base" / "model.safetensors")
    # No step at all would keep the weights: one step at a tiny learning rate moves them only a little.
    train_codec(_config(photos, steps=1, lr=1e-9, lambda_=0.02, init=str(tmp_path / "base")), tmp_path / "tuned",
                progress=False)  # fmt: skip
    tuned, meta = load_model_file(tmp_path / "tuned" / "model.safetensors")
    floats = [k for k in base if not k.startswith("tables.")]
    assert meta["lambda"] == "0.02" and all(torch.allclose(base[k], tuned[k], atol=1e-6) for k in floats)
    with pytest.raises(ValueError, match="not a hyperprior with N=16"):
        train_codec(_config(photos, N=16, init=str(tmp_path / "base")), tmp_path / "other", progress=False)
    with pytest.raises(ValueError, match="no such file"):
        _config(photos, init=str(tmp_path / "nope")).validate()


def test_ms_ssim_training_and_bad_configurations(photos, tmp_path):
    with pytest.raises(ValueError, match="at least 161"):
        train_codec(_config(photos, distortion="ms_ssim"), tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="multiple of 64"):
        train_codec(_config(photos, crop=48), tmp_path / "b", progress=False)
    with pytest.raises(ValueError, match="no training data"):
        train_codec(_config(photos, data=[]), tmp_path / "c", progress=False)
    big = tmp_path / "big"
    big.mkdir()
    Image.fromarray((_image(180, 180)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(big / "a.png")
    summary = train_codec(_config(big, arch="bls2017", distortion="ms_ssim", crop=176, steps=1, val_data=None,
                                  lambda_=5.0), tmp_path / "d", progress=False)  # fmt: skip
    assert 0 < summary["final"]["ms_ssim"] <= 1 and summary["final"]["bpp"] > 0


def test_grid_penalty_is_logged_added_to_the_loss_and_checked(photos, tmp_path):
    import csv

    from perceptlab.losses.grid import grid_loss

    base = dict(arch="bls2017", steps=1, crop=64, val_data=None)
    plain = train_codec(_config(photos, **base), tmp_path / "plain", progress=False)["final"]
    weighted = train_codec(_config(photos, grid_weight=100.0, **base), tmp_path / "grid", progress=False)["final"]
    # The same first step (same seed and weights): the penalty is the only difference in the loss.
    assert "grid" not in plain and weighted["grid"] > 0
    assert weighted["loss"] == pytest.approx(plain["loss"] + 100.0 * weighted["grid"], rel=1e-5)
    with open(tmp_path / "grid" / "metrics.csv") as handle:
        assert "grid" in next(csv.DictReader(handle))
    pattern = torch.zeros(1, 3, 64, 64)
    pattern[..., ::16, ::16] = 1.0  # a dot every 16 pixels: the lattice the penalty looks for
    smooth = torch.full((1, 3, 64, 64), 0.5)
    assert float(grid_loss((smooth + 0.1 * pattern).clamp(0, 1), smooth, 16)) > 0
    with pytest.raises(ValueError, match="grid_weight must be non-negative"):
        _config(photos, grid_weight=-1.0).validate()
    with pytest.raises(ValueError, match="grid_period at least 2"):
        _config(photos, grid_period=1).validate()


def test_train_codec_flags_come_from_the_dataclass(tmp_path):
    parser = build_parser()
    for name in ("train", "codec"):
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    args = parser.parse_args(["--out", str(tmp_path), "--lambda", "0.02", "--N", "16", "--arch", "hyperprior",
                              "--data", "a", "--data", "b"])  # fmt: skip
    from perceptlab.cli._config import load_config

    config = load_config(CodecTrainConfig, args, args.config_flags)
    assert (config.lambda_, config.N, config.arch, config.data, config.M) == (0.02, 16, "hyperprior", ["a", "b"], 96)


def test_the_codec_imports_no_other_task():
    from test_architecture import GRAPH

    wrong = [f"{m} imports {t}" for m, imports in GRAPH.items() if m.startswith("perceptlab.codec")
             for t in imports if t.startswith(("perceptlab.sr", "perceptlab.style", "perceptlab.cli"))]  # fmt: skip
    assert not wrong, wrong


# ------------------------------------------------------------------ the commands


def _write_png(path, h, w, seed=0, mode="RGB"):
    array = (_image(h, w, seed)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    Image.fromarray(array).convert(mode).save(path)


def test_cli_round_trip_of_files_and_folders(tmp_path, capsys, monkeypatch):
    run = _run_folder(tmp_path, "hyperprior", "tiny_hyper")
    images = tmp_path / "images"
    images.mkdir()
    _write_png(images / "a.png", 33, 47)
    _write_png(images / "b.png", 64, 20, seed=1, mode="L")
    assert main(["compress", str(images), "-o", str(tmp_path / "coded"), "--model", str(run)]) == 0
    printed = capsys.readouterr().out
    coded = sorted((tmp_path / "coded").iterdir())
    assert [p.name for p in coded] == ["a.plc", "b.plc"]
    bpp = 8 * coded[0].stat().st_size / (33 * 47)
    assert f"{bpp:.4f} bpp" in printed and "estimate" in printed
    assert main(["decompress", str(tmp_path / "coded"), "-o", str(tmp_path / "out"), "--model", str(run)]) == 0
    a, b = Image.open(tmp_path / "out" / "a.png"), Image.open(tmp_path / "out" / "b.png")
    assert (a.mode, a.size, b.mode, b.size) == ("RGB", (47, 33), "L", (20, 64))
    # one file to one named file; an installed model is found from the header
    monkeypatch.setattr("perceptlab.codec.models.SHIPPED_CODEC", ("tiny_hyper",))
    monkeypatch.setattr("perceptlab.training.MODELS_DIR", run.parent)
    (run.parent / "tiny_hyper.safetensors").write_bytes((run / "model.safetensors").read_bytes())
    assert main(["decompress", str(coded[0]), "-o", str(tmp_path / "one.png")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "one.png")), np.asarray(a))


@pytest.mark.parametrize("case", ["corrupt", "truncated", "foreign", "other_weights", "not_installed"])
def test_cli_refuses_bad_files_with_one_line_and_no_output(case, tmp_path, capsys):
    run = _run_folder(tmp_path, "bls2017", "tiny")
    _write_png(tmp_path / "a.png", 40, 40)
    assert main(["compress", str(tmp_path / "a.png"), "-o", str(tmp_path / "a.plc"), "--model", str(run)]) == 0
    data = (tmp_path / "a.plc").read_bytes()
    model = ["--model", str(run)]
    if case == "corrupt":
        data = data[:-6] + bytes([data[-6] ^ 0xFF]) + data[-5:]
    elif case == "truncated":
        data = data[: len(data) // 2]
    elif case == "foreign":
        data = (tmp_path / "a.png").read_bytes()
    elif case == "other_weights":
        model = ["--model", str(_run_folder(tmp_path, "bls2017", "other", seed=1))]
    else:
        model = []
    (tmp_path / "a.plc").write_bytes(data)
    capsys.readouterr()
    assert main(["decompress", str(tmp_path / "a.plc"), "-o", str(tmp_path / "out.png"), *model]) == 2
    err = capsys.readouterr().err
    assert err.startswith("perceptlab: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert str(tmp_path / "a.plc") in err
    assert not (tmp_path / "out.png").exists() and not list(tmp_path.glob(".out.png*"))


def test_cli_keep_going_and_output_checks(tmp_path, capsys):
    run = _run_folder(tmp_path, "bls2017", "tiny")
    folder = tmp_path / "coded"
    folder.mkdir()
    _write_png(tmp_path / "a.png", 30, 30)
    assert main(["compress", str(tmp_path / "a.png"), "-o", str(folder / "a.plc"), "--model", str(run)]) == 0
    (folder / "b.plc").write_bytes(b"\x89PLC\x01")
    assert main(["decompress", str(folder), "-o", str(tmp_path / "out"), "--model", str(run), "--keep-going"]) == 2
    err = capsys.readouterr().err
    assert "b.plc: truncated" in err and "1 of 2 files failed" in err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.png"]
    assert main(["compress", str(tmp_path / "a.png"), "-o", str(tmp_path / "a.jpg"), "--model", str(run)]) == 2
    assert "name the output file with .plc" in capsys.readouterr().err
    assert main(["compress", str(tmp_path / "a.png"), "-o", str(tmp_path / "x.plc"), "--model", "nope"]) == 2
    assert "unknown codec model 'nope'" in capsys.readouterr().err
