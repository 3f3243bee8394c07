"""The VMAF proxy (ProxIQA), its training material, the codec's perceptual distortions and the
alternating proxy/codec training (issue 17)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from perceptlab.cli import main
from perceptlab.codec import CodecTrainConfig, train_codec
from perceptlab.codec.distort import KINDS, check_kinds, distort, random_distortions
from perceptlab.codec.distortion import SCALES, Distortion, parse_distortion
from perceptlab.codec.proxy import ProxyTrainConfig, fit_step, load_proxy, train_proxy
from perceptlab.data import ImageCrops
from perceptlab.nets.proxy import QualityProxy
from perceptlab.stats import agreement, plcc, ranks, rmse, srocc
from perceptlab.training import load_model_file

pytest.importorskip("vmaf_torch")


def _smooth(h: int, w: int, seed: int) -> torch.Tensor:
    """A photo-like image: smooth shapes and a little texture (VMAF of pure noise is meaningless)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, h // 8 + 1, w // 8 + 1, generator=g)
    x = torch.nn.functional.interpolate(low, size=(h, w), mode="bicubic", align_corners=False)
    return (x + 0.05 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1)[0]


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        array = (_smooth(72, 80, i).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(array).save(folder / f"p{i}.png")
    return folder


# ------------------------------------------------------------------ statistics


def test_ranks_average_ties_and_correlations_are_the_textbook_values():
    assert ranks([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]
    assert srocc([1, 2, 3, 4], [1, 4, 9, 16]) == pytest.approx(1.0)
    assert srocc([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # hand-computed: x = 1,2,3; y = 1,3,2 -> Pearson 0.5, and Spearman of those ranks too
    assert plcc([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert srocc([1, 2, 3], [10, 30, 20]) == pytest.approx(0.5)
    assert rmse([0, 0], [3, 4]) == pytest.approx(np.sqrt(12.5))
    assert np.isnan(plcc([1, 1, 1], [1, 2, 3]))
    assert set(agreement([1, 2], [2, 1])) == {"srocc", "plcc", "rmse"}
    with pytest.raises(ValueError, match="same length"):
        plcc([1, 2], [1, 2, 3])


# ------------------------------------------------------------------ the network and the distortions


def test_the_proxy_scores_each_pair_between_0_and_100_and_refuses_tiny_images():
    proxy = QualityProxy(width=8)
    out = proxy(torch.rand(3, 3, 40, 33), torch.rand(3, 3, 40, 33))
    assert out.shape == (3,) and bool(((out > 0) & (out < 100)).all())
    with pytest.raises(ValueError, match="at least 16"):
        proxy(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="width"):
        QualityProxy(width=0)


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "codec"])
def test_each_distortion_gives_an_8_bit_image_of_the_same_size_and_stronger_is_further(kind):
    x = _smooth(48, 48, 0).mul(255).round().div(255)
    mild, strong = (distort(x, kind, u, torch.Generator().manual_seed(0)) for u in (0.0, 1.0))
    for y in (mild, strong):
        assert y.shape == x.shape and torch.equal(y, y.mul(255).round().div(255)) and 0 <= y.min() <= y.max() <= 1
    if kind == "none":
        assert torch.equal(mild, x) and torch.equal(strong, x)
    else:
        assert torch.mean((strong - x) ** 2) > torch.mean((mild - x) ** 2) > 0


def test_random_distortions_follow_the_generator_and_codec_outputs_need_a_codec():
    x = torch.stack([_smooth(32, 32, i) for i in range(6)])
    a, kinds_a = random_distortions(x, torch.Generator().manual_seed(3), ("jpeg", "blur", "noise"))
    b, kinds_b = random_distortions(x, torch.Generator().manual_seed(3), ("jpeg", "blur", "noise"))
    assert torch.equal(a, b) and kinds_a == kinds_b and set(kinds_a) <= {"jpeg", "blur", "noise"}
    with pytest.raises(ValueError, match="needs learned codec"):
        check_kinds(["codec"], [])
    with pytest.raises(ValueError, match="unknown distortion 'gif'"):
        check_kinds(["gif"], [])


def test_holdout_moves_every_nth_image_out_of_the_training_set(photos):
    data = ImageCrops(photos, crop=32)
    before = list(data.paths)
    held = data.holdout(3)
    assert held.paths == [before[0], before[3]] and data.paths == [before[1], before[2]]
    assert held.sample_crops(2).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="every >= 2"):
        data.holdout(1)


def test_fit_step_moves_the_proxy_towards_its_labels():
    torch.manual_seed(0)
    proxy = QualityProxy(width=8)
    opt = torch.optim.Adam(proxy.parameters(), lr=1e-2)
    ref = torch.stack([_smooth(32, 32, i) for i in range(4)])
    dist = (ref + 0.1 * torch.randn_like(ref)).clamp(0, 1)
    labels = torch.tensor([20.0, 40.0, 60.0, 80.0])
    first = fit_step(proxy, opt, dist, ref, labels)["proxy_rmse"]
    for _ in range(60):
        last = fit_step(proxy, opt, dist, ref, labels)["proxy_rmse"]
    assert last < 0.5 * first


# ------------------------------------------------------------------ training the proxy


def _proxy_config(photos, **kwargs) -> ProxyTrainConfig:
    values = dict(data=[str(photos)], kinds=["jpeg", "blur", "none"], width=8, crop=32, steps=4, batch_size=4,
                  val_patches=8, holdout=2, sample_every=2, log_every=1, threads=1)  # fmt: skip
    return ProxyTrainConfig(**{**values, **kwargs})


def test_proxy_training_resumes_exactly_and_reports_its_accuracy_on_held_back_images(photos, tmp_path):
    straight = train_proxy(_proxy_config(photos), tmp_path / "straight", progress=False)
    train_proxy(_proxy_config(photos, steps=2), tmp_path / "resumed", progress=False)
    train_proxy(_proxy_config(photos), tmp_path / "resumed", progress=False)
    a, meta = load_model_file(tmp_path / "straight" / "model.safetensors")
    b, _ = load_model_file(tmp_path / "resumed" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert meta["task"] == "proxy" and meta["width"] == "8" and "VMAF v0.6.1" in meta["target"]
    assert straight["validation"]["patches"] == 8 and set(straight["validation"]) >= {"srocc", "plcc", "rmse"}
    header = (tmp_path / "straight" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header == ["step", "seconds", "proxy_loss", "proxy_rmse", "val_srocc", "val_plcc", "val_rmse"]
    rows = json.loads((tmp_path / "straight" / "validation.json").read_text())["patches"]
    assert len(rows) == 8 and {r["kind"] for r in rows} <= {"jpeg", "blur", "none"}
    # the reported RMSE is that of the saved proxy on those rows
    assert straight["validation"]["rmse"] == pytest.approx(rmse([r["proxy"] for r in rows], [r["vmaf"] for r in rows]),
                                                           abs=1e-2)  # fmt: skip
    # an undistorted pair is what VMAF scores highest on a still
    assert all(r["vmaf"] == pytest.approx(97.43, abs=0.05) for r in rows if r["kind"] == "none")
    assert isinstance(load_proxy(str(tmp_path / "straight")), QualityProxy)
    with pytest.raises(ValueError, match="not a proxy model"):
        codec_run = tmp_path / "not_proxy"
        train_codec(_codec_config(photos, steps=1), codec_run, progress=False)
        load_proxy(str(codec_run / "model.safetensors"))


def test_train_proxy_cli_refuses_bad_options_with_one_line(photos, tmp_path, capsys):
    base = ["train", "proxy", "--data", str(photos), "--out", str(tmp_path / "run"), "--no-progress"]
    for extra, message in ((["--kinds", "jpeg,gif"], "unknown distortion 'gif'"),
                           (["--kinds", "codec"], "needs learned codec"),
                           (["--holdout", "1"], "holdout must be at least 2")):  # fmt: skip
        assert main(base + extra) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ the codec's distortions


def test_distortion_specs_scales_and_the_alpha_mix():
    assert parse_distortion("feature:relu3_3") == ("feature", "relu3_3")
    for bad, message in (("psnr", "must be one of"), ("feature", "needs a layer"), ("feature:relu9_9", "unknown VGG"),
                         ("lpips:x", "takes no argument")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            parse_distortion(bad)
    x = torch.rand(2, 3, 32, 32)
    x_hat = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    mse = torch.mean((x_hat - x) ** 2)
    assert torch.allclose(Distortion("mse")(x_hat, x)["distortion"], 255**2 * mse)
    proxy = QualityProxy(width=8)
    full = Distortion("vmaf_proxy", 1.0, proxy)(x_hat, x)
    mixed = Distortion("vmaf_proxy", 0.25, proxy)(x_hat, x)
    assert torch.allclose(full["distortion"], 100 - full["vmaf_proxy"])
    assert torch.allclose(mixed["distortion"], 0.25 * (100 - full["vmaf_proxy"]) + 0.75 * SCALES["mse"] * mse)
    with pytest.raises(ValueError, match="needs a trained quality proxy"):
        Distortion("vmaf_proxy")
    with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\]"):
        Distortion("vmaf", alpha=1.5)


def test_the_chroma_term_weighs_colour_errors_only_and_is_logged(photos, tmp_path):
    from perceptlab.metrics.fidelity import chroma_psnr, rgb_to_cbcr

    x = torch.rand(2, 3, 32, 32) * 0.8 + 0.1
    grey = x + 0.05  # a luma shift: the same on R, G and B
    cast = x + torch.tensor([0.0, 0.0, 0.05]).view(1, 3, 1, 1)  # a blue cast
    proxy = QualityProxy(width=8)
    plain, weighted = Distortion("vmaf_proxy", 0.8, proxy), Distortion("vmaf_proxy", 0.8, proxy, chroma=1.5)
    for y in (grey, cast):
        extra = weighted(y, x)["distortion"] - plain(y, x)["distortion"]
        chroma_mse = rgb_to_cbcr(y - x, offset=False).square().mean()
        assert torch.allclose(extra, 1.5 * SCALES["mse"] * chroma_mse, atol=1e-4)
        assert torch.allclose(weighted(y, x)["chroma_mse"], chroma_mse)
    assert float(weighted(grey, x)["chroma_mse"]) < 1e-12 < float(weighted(cast, x)["chroma_mse"])
    # the same BT.601 chroma as the chroma PSNR metric
    assert float(chroma_psnr(cast, x).mean()) == pytest.approx(float(-10 * torch.log10(chroma_mse)), abs=1e-3)
    # the gradient reaches the image
    y = cast.clone().requires_grad_(True)
    Distortion("mse", chroma=1.0)(y, x)["distortion"].backward()
    assert y.grad is not None and float(y.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="chroma weight must be non-negative"):
        Distortion("mse", chroma=-1.0)
    with pytest.raises(ValueError, match="chroma_weight must be non-negative"):
        _codec_config(photos, chroma_weight=-1.0).validate()
    # in training: the term goes into the loss (times lambda) and into metrics.csv
    base = dict(steps=1, distortion="mse")
    one = train_codec(_codec_config(photos, **base), tmp_path / "plain", progress=False)["final"]
    two = train_codec(_codec_config(photos, chroma_weight=2.0, **base), tmp_path / "chroma", progress=False)["final"]
    lam = _codec_config(photos).lambda_
    assert two["loss"] == pytest.approx(one["loss"] + lam * 2.0 * SCALES["mse"] * two["chroma_mse"], rel=1e-5)
    assert "chroma_mse" in (tmp_path / "chroma" / "metrics.csv").read_text().splitlines()[0].split(",")


def test_another_base_distortion_replaces_mse_in_the_mix_and_is_checked(photos, tmp_path):
    proxy = QualityProxy(width=8)
    x = torch.rand(2, 3, 64, 64)
    x_hat = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    mixed = Distortion("vmaf_proxy", 0.25, proxy, base="feature:relu2_2")(x_hat, x)
    alone = Distortion("feature:relu2_2")(x_hat, x)
    assert torch.allclose(mixed["distortion"], 0.25 * (100 - mixed["vmaf_proxy"]) + 0.75 * alone["distortion"])
    assert torch.allclose(mixed["feature"], alone["feature"]) and "mse" in mixed
    for spec, base, message in (("mse", "lpips", "other than itself"), ("lpips", "lpips", "other than itself"),
                                ("lpips", "vmaf", "must be one of")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            Distortion(spec, 0.5, base=base)
    for kwargs, message in ((dict(distortion="lpips", base_distortion="vmaf_proxy", alpha=0.5), "must be one of"),
                            (dict(distortion="lpips", base_distortion="dists"), "alpha below 1"),
                            (dict(distortion="mse", base_distortion="lpips", alpha=0.5), "perceptual --distortion"),
                            (dict(distortion="lpips", base_distortion="ms_ssim", alpha=0.5), "at least 161")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            _codec_config(photos, **kwargs).validate()
    # a short run logs both terms
    train_codec(_codec_config(photos, steps=2, distortion="lpips", alpha=0.5, base_distortion="dists"),
                tmp_path / "run", progress=False)  # fmt: skip
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"lpips", "dists", "mse"} <= set(header)


def test_the_codec_gradient_passes_through_the_proxy_without_training_it():
    proxy = QualityProxy(width=8)
    x = torch.rand(1, 3, 32, 32)
    x_hat = x.clone().mul(0.9).requires_grad_()
    Distortion("vmaf_proxy", 1.0, proxy)(x_hat, x)["distortion"].backward()
    assert x_hat.grad is not None and x_hat.grad.abs().sum() > 0
    assert all(p.grad is None for p in proxy.parameters())


def _codec_config(photos, **kwargs) -> CodecTrainConfig:
    values = dict(arch="bls2017", N=8, M=8, data=[str(photos)], crop=32, batch_size=2, steps=4, lr=1e-3,
                  sample_every=4, log_every=1, threads=1)  # fmt: skip
    return CodecTrainConfig(**{**values, **kwargs})


def test_alternating_training_trains_the_proxy_on_the_codecs_outputs_and_resumes_exactly(photos, tmp_path):
    train_proxy(_proxy_config(photos, steps=1), tmp_path / "proxy", progress=False)
    start, _ = load_model_file(tmp_path / "proxy" / "model.safetensors")
    alt = dict(distortion="vmaf_proxy", proxy=str(tmp_path / "proxy"), alternate=True, proxy_lr=1e-3)
    train_codec(_codec_config(photos, **alt), tmp_path / "straight", progress=False)
    train_codec(_codec_config(photos, steps=2, **alt), tmp_path / "resumed", progress=False)
    train_codec(_codec_config(photos, **alt), tmp_path / "resumed", progress=False)
    a, meta = load_model_file(tmp_path / "straight" / "proxy.safetensors")
    b, _ = load_model_file(tmp_path / "resumed" / "proxy.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a) and not all(torch.equal(a[k], start[k]) for k in a)
    assert meta["task"] == "proxy" and isinstance(load_proxy(str(tmp_path / "straight")), QualityProxy)
    header = (tmp_path / "straight" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"vmaf_proxy", "vmaf", "proxy_loss", "proxy_rmse"} <= set(header)
    codec_a, codec_meta = load_model_file(tmp_path / "straight" / "model.safetensors")
    codec_b, _ = load_model_file(tmp_path / "resumed" / "model.safetensors")
    assert all(torch.equal(codec_a[k], codec_b[k]) for k in codec_a)
    assert codec_meta["distortion"] == "vmaf_proxy" and codec_meta["alpha"] == "1.0"
    # frozen: the proxy is used as it is, and no proxy file is written
    train_codec(_codec_config(photos, distortion="vmaf_proxy", proxy=str(tmp_path / "proxy"), steps=2),
                tmp_path / "frozen", progress=False)  # fmt: skip
    assert not (tmp_path / "frozen" / "proxy.safetensors").exists()
    assert "vmaf" in (tmp_path / "frozen" / "metrics.csv").read_text().splitlines()[0].split(",")


def test_train_codec_refuses_inconsistent_perceptual_options_with_one_line(photos, tmp_path, capsys):
    base = ["train", "codec", "--data", str(photos), "--out", str(tmp_path / "run"), "--no-progress"]
    for extra, message in ((["--distortion", "vmaf_proxy"], "needs a trained quality proxy"),
                           (["--alternate"], "needs distortion vmaf_proxy"),
                           (["--proxy", str(photos)], "is for distortion vmaf_proxy"),
                           (["--distortion", "vmaf", "--alpha", "2"], "alpha must lie in"),
                           (["--distortion", "ssim"], "distortion must be one of")):  # fmt: skip
        assert main(base + extra) == 2, extra
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()
