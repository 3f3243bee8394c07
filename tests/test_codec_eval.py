"""Codec evaluation: BD-rate/BD-PSNR (hand-checked cases, a reference implementation, input checks), the standard
codecs (round trips, real bytes, missing codecs reported), evaluate_codecs and ``perceptlab eval codec``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

import perceptlab.codec
from perceptlab.cli import main
from perceptlab.codec import classic
from perceptlab.codec.bd import bd_psnr, bd_rate
from perceptlab.codec.classic import CODECS, Availability, ClassicCodec, get_codec, list_codecs
from perceptlab.codec.evaluate import evaluate_codecs, load_learned, markdown_report, write_report

# --- BD-rate ---------------------------------------------------------------------------------------------------

RATES = [0.25, 0.5, 1.0, 2.0, 4.0]
# Quality rising 3 dB per doubling of the rate, with some curvature so the interpolations have work to do.
PSNR = [30 + 3 * math.log2(r) - 0.2 * math.log2(r) ** 2 for r in RATES]
METHODS = ("pchip", "cubic")

# The example curves of the bjontegaard package's README (FAU-LMS/bjontegaard, x265 presets, kbps and dB);
# the expected values were computed with bjontegaard 1.3.0 (SciPy 1.17.1's PchipInterpolator; np.polyfit).
README_ANCHOR = ([9487.76, 4593.60, 2486.44, 1358.24], [40.037, 38.615, 36.845, 34.851])
README_TEST = ([9787.80, 4469.00, 2451.52, 1356.24], [40.121, 38.651, 36.970, 34.987])
README_EXPECTED = {"pchip": (-4.417485350589045, 0.11969278542479489),
                   "cubic": (-4.420462706125383, 0.12040941911451103)}


@pytest.mark.parametrize("method", METHODS)
def test_identical_curves_give_zero(method):
    assert bd_rate(RATES, PSNR, RATES, PSNR, method) == pytest.approx(0.0, abs=1e-12)
    assert bd_psnr(RATES, PSNR, RATES, PSNR, method) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("factor", [0.8, 0.5, 2.0])
def test_scaling_every_rate_gives_that_saving_exactly(method, factor):
    # log-rate moves by log(factor) at every quality: the interpolant moves with it, whatever its shape.
    scaled = [factor * r for r in RATES]
    assert bd_rate(RATES, PSNR, scaled, PSNR, method) == pytest.approx(100 * (factor - 1), abs=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_quality_shift_on_a_straight_curve(method):
    # q = 30 + 3 log2(r): +1.5 dB at every rate is the same curve at 2^-0.5 times the rate.
    quality = [30 + 3 * math.log2(r) for r in RATES]
    shifted = [q + 1.5 for q in quality]
    assert bd_psnr(RATES, quality, RATES, shifted, method) == pytest.approx(1.5, abs=1e-12)
    assert bd_rate(RATES, quality, RATES, shifted, method) == pytest.approx(100 * (2**-0.5 - 1), abs=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_order_of_points_does_not_matter_and_swapping_inverts(method):
    test_rates, test_q = [0.3, 0.55, 1.1, 2.4, 3.9], [30.4, 32.5, 35.1, 37.6, 39.0]
    forward = bd_rate(RATES, PSNR, test_rates, test_q, method)
    assert bd_rate(RATES[::-1], PSNR[::-1], test_rates[::-1], test_q[::-1], method) == pytest.approx(forward, abs=1e-12)
    # Same common range both ways: the mean log-rate differences are opposite.
    backward = bd_rate(test_rates, test_q, RATES, PSNR, method)
    assert (1 + forward / 100) * (1 + backward / 100) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_published_example_curves(method):
    rate, psnr = README_EXPECTED[method]
    assert bd_rate(*README_ANCHOR, *README_TEST, method) == pytest.approx(rate, abs=1e-8)
    assert bd_psnr(*README_ANCHOR, *README_TEST, method) == pytest.approx(psnr, abs=1e-8)


@pytest.mark.parametrize("method", METHODS)
def test_against_the_bjontegaard_package(method):
    bjontegaard = pytest.importorskip("bjontegaard")
    rng = np.random.default_rng(7)
    compared = 0
    for _ in range(40):
        n = int(rng.integers(4, 8))
        anchor = (np.exp(np.sort(rng.uniform(-3, 1.5, n))), np.sort(rng.uniform(26, 42, n)))
        test = (np.exp(np.sort(rng.uniform(-3, 1.5, n))), np.sort(rng.uniform(26, 42, n)))
        try:
            ours = bd_rate(*anchor, *test, method), bd_psnr(*anchor, *test, method)
        except ValueError:  # no overlap; the package warns and returns NaN
            continue
        theirs = (bjontegaard.bd_rate(*anchor, *test, method=method, min_overlap=0),
                  bjontegaard.bd_psnr(*anchor, *test, method=method, min_overlap=0))  # fmt: skip
        assert ours == pytest.approx(theirs, rel=1e-6, abs=1e-8)
        compared += 1
    assert compared >= 20


@pytest.mark.parametrize(
    ("anchor", "test", "message"),
    [
        (([1, 2, 4], [30, 33, 36]), (RATES, PSNR), "at least 4"),
        (([1, 2, 4, 8], [30, 33, 36]), (RATES, PSNR), "3 quality values"),
        (([0, 2, 4, 8], [30, 33, 36, 39]), (RATES, PSNR), "positive"),
        (([1, 2, 4, 8], [30, 33, float("nan"), 39]), (RATES, PSNR), "finite"),
        (([1, 2, 2, 8], [30, 33, 34, 39]), (RATES, PSNR), "same rate"),
        (([1, 2, 4, 8], [30, 33, 32, 39]), (RATES, PSNR), "rise with rate"),
        (([1, 2, 4, 8], [40, 41, 42, 43]), (RATES, PSNR), "do not overlap"),
    ],
)
def test_bad_curves_are_refused(anchor, test, message):
    with pytest.raises(ValueError, match=message):
        bd_rate(*anchor, *test)


def test_unknown_method_and_rate_ranges_apart():
    with pytest.raises(ValueError, match="pchip, cubic"):
        bd_rate(RATES, PSNR, RATES, PSNR, method="akima")
    with pytest.raises(ValueError, match="ranges do not overlap"):
        bd_psnr(RATES, PSNR, [100 * r for r in RATES], PSNR)


# --- standard codecs -------------------------------------------------------------------------------------------


def _image(seed: int = 0, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    """A smooth picture with an edge and a little noise: what codecs are made for, unlike pure noise."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    rng = np.random.default_rng(seed)
    rgb = np.stack([0.5 + 0.4 * np.sin(6 * xx + seed), 0.3 + 0.5 * yy, 0.5 + 0.3 * np.cos(5 * (xx + yy))], axis=-1)
    rgb[h // 3 : h // 2, w // 4 : w // 2] = (0.9, 0.2, 0.1)
    rgb += rng.normal(0, 0.02, rgb.shape)
    return np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * math.log10(255**2 / np.mean((a.astype(float) - b) ** 2))


def test_registry_lists_the_six_codecs():
    assert list_codecs() == ["jpeg", "webp", "avif", "jpeg2000", "jpegxl", "hevc"]
    with pytest.raises(ValueError, match="choose from jpeg, webp"):
        get_codec("bpg")
    for codec in CODECS.values():
        found = codec.available()
        assert isinstance(found, Availability) and found.detail and "\n" not in found.detail


@pytest.mark.parametrize("name", list_codecs())
def test_codec_round_trip(name):
    codec = get_codec(name)
    found = codec.available()
    if not found:
        pytest.skip(f"{name} is missing here: {found.detail}")
    rgb = _image()
    low, high = codec.encode(rgb, codec.params[0]), codec.encode(rgb, codec.params[-1])
    assert isinstance(high, bytes) and len(low) < len(high), "the default sweep runs from low to high rate"
    decoded = codec.decode(high)
    assert decoded.shape == rgb.shape and decoded.dtype == np.uint8
    assert _psnr(decoded, rgb) > 30
    assert codec.encode(rgb, codec.params[-1]) == high  # deterministic, so the byte count is the codec's


def test_codecs_refuse_what_is_not_an_rgb_array():
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        get_codec("jpeg").encode(np.zeros((8, 8, 3), np.float32), 50)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        get_codec("jpeg").encode(np.zeros((8, 8), np.uint8), 50)


def test_hevc_without_ffmpeg_is_reported_with_the_reason(monkeypatch):
    classic._hevc_ffmpeg.cache_clear()
    monkeypatch.setattr(classic, "_ffmpeg_candidates", lambda: [])
    try:
        found = get_codec("hevc").available()
        assert not found and "ffmpeg with libx265" in found.detail
    finally:
        classic._hevc_ffmpeg.cache_clear()


# --- evaluate_codecs -------------------------------------------------------------------------------------------

FAST = {"jpeg": [10, 30, 50, 70, 90], "webp": [10, 30, 50, 70, 90]}


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for k in range(2):
        Image.fromarray(_image(seed=k)).save(folder / f"im{k}.png")
    return folder


def _missing_codec(monkeypatch):
    fake = ClassicCodec("fake", "nothing", "q", (1, 2, 3, 4), lambda rgb, q: b"", lambda data: None,
                        lambda: Availability(False, "needs libfake, which is not installed"))  # fmt: skip
    monkeypatch.setitem(CODECS, "fake", fake)


def test_evaluate_two_images_gives_rows_curves_and_a_bd_table(images, monkeypatch, tmp_path):
    _missing_codec(monkeypatch)
    with pytest.warns(UserWarning, match="fake is missing: needs libfake"):
        result = evaluate_codecs(images, ("jpeg", "webp", "fake"), metrics=("psnr", "ssim"), params=FAST)
    assert result["images"] == ["im0.png", "im1.png"]
    assert len(result["rows"]) == 2 * 10
    for row in result["rows"]:
        assert row["bpp"] == 8 * row["bytes"] / (48 * 64)
        assert row["psnr"] > 20 and 0 < row["ssim"] <= 1
    # The row's byte count is what the codec writes for that image and point.
    first = result["rows"][0]
    rgb = np.asarray(Image.open(images / first["image"]).convert("RGB"))
    assert len(get_codec(first["codec"]).encode(rgb, first["param"])) == first["bytes"]
    for points in result["rd"].values():
        assert [p["bpp"] for p in points] == sorted(p["bpp"] for p in points) and len(points) == 5
    assert result["missing"] == {"fake": "needs libfake, which is not installed"}
    assert set(result["bd_rate"]) == {"webp"} and math.isfinite(result["bd_rate"]["webp"]["psnr"])
    lo, hi = result["bd_range"]["webp"]["psnr"]
    assert lo < hi
    written = write_report(tmp_path / "out", result)
    assert [p.name for p in written] == ["results.json", "results.md", "rd_psnr.svg", "rd_ssim.svg"]
    doc = json.loads(written[0].read_text())
    assert doc["bd_rate"]["webp"]["psnr"] == pytest.approx(result["bd_rate"]["webp"]["psnr"])
    text = written[1].read_text()
    assert "| webp |" in text and "| fake | missing | missing |" in text and "needs libfake" in text
    assert written[2].read_text().startswith("<svg")


class _JpegModel:
    """A stand-in learned codec: JPEG at one quality, through tensors."""

    def __init__(self, quality: int, name: str = "fake-learned"):
        self.name, self.label, self.quality = name, f"q{quality}", quality

    def compress(self, x: torch.Tensor) -> bytes:
        rgb = (x[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        return get_codec("jpeg").encode(rgb, self.quality)

    def decompress(self, data: bytes) -> torch.Tensor:
        return torch.from_numpy(get_codec("jpeg").decode(data).copy()).permute(2, 0, 1)[None].float() / 255


def test_learned_models_form_a_curve_beside_the_standard_codecs(images):
    models = [_JpegModel(q) for q in FAST["jpeg"]]
    # A callable adapter x -> (bytes, x_hat) is taken too.
    adapter = _JpegModel(50, name="callable")
    call = lambda x: (adapter.compress(x), adapter.decompress(adapter.compress(x)))  # noqa: E731
    call.name = "callable"
    result = evaluate_codecs(images, ("jpeg",), learned=[*models, call], metrics=("psnr",),
                             params={"jpeg": FAST["jpeg"]})
    assert result["codecs"]["fake-learned"]["params"] == ["q10", "q30", "q50", "q70", "q90"]
    # The same JPEG through the learned path: the same curve, so no BD-rate difference at all.
    assert result["bd_rate"]["fake-learned"]["psnr"] == pytest.approx(0.0, abs=1e-9)
    assert len(result["rd"]["callable"]) == 1 and result["bd_rate"]["callable"]["psnr"] is None
    assert "at least 4" in result["bd_notes"]["callable"]["psnr"]
    assert "fake-learned" in markdown_report(result)
    with pytest.raises(ValueError, match="distinct labels"):
        evaluate_codecs(images, ("jpeg",), learned=[_JpegModel(10), _JpegModel(10)], metrics=("psnr",))


def test_load_learned_says_when_the_codec_package_lacks_it(monkeypatch):
    monkeypatch.delattr(perceptlab.codec, "load_codec_model", raising=False)
    models, reason = load_learned(["a.safetensors"])
    assert models == [] and "load_codec_model is missing" in reason


def test_a_trained_learned_codec_runs_through_its_own_files(images, tmp_path):
    from perceptlab.codec import CodecModel, CodecTrainConfig
    from perceptlab.codec.train import save_codec_weights

    specs = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = CodecModel("bls2017", N=8, M=12).eval()
        model.build_tables()
        folder = tmp_path / f"run{seed}"
        save_codec_weights(folder / "model.safetensors", model, CodecTrainConfig(arch="bls2017", N=8, M=12,
                           data=["x"]), {"name": f"run{seed}", "steps": "0"})  # fmt: skip
        specs.append(str(folder))
    models, reason = load_learned(specs, name="ours")
    assert reason is None and [m.label for m in models] == specs
    result = evaluate_codecs(images, ("jpeg",), learned=models, metrics=("psnr",), params={"jpeg": FAST["jpeg"]})
    rows = [r for r in result["rows"] if r["codec"] == "ours"]
    assert len(rows) == 4 and all(r["bpp"] == 8 * r["bytes"] / (48 * 64) for r in rows)
    x = torch.from_numpy(_image(seed=0)).permute(2, 0, 1)[None].float() / 255
    assert rows[0]["bytes"] == len(models[0].compress(x))  # the whole .plc file, header included
    assert result["bd_rate"]["ours"]["psnr"] is None  # two points make no BD curve, and the report says why
    assert "at least 4" in result["bd_notes"]["ours"]["psnr"]


def test_grid_is_kept_beside_the_metrics_without_a_bd_rate(images):
    # A learned "codec" that prints a period-4 lattice on what JPEG decodes: its rows' grid is far above JPEG's,
    # in the rows and the mean points, and no BD-rate is computed for it.
    class Lattice(_JpegModel):
        def decompress(self, data):
            y = super().decompress(data)
            y[..., ::4, ::4] = (y[..., ::4, ::4] + 0.15).clamp(0, 1)
            return y

    result = evaluate_codecs(images, ("jpeg",), learned=[Lattice(q, "lattice") for q in FAST["jpeg"]],
                             metrics=("psnr",), params={"jpeg": FAST["jpeg"]}, also=("grid",))  # fmt: skip
    grid = {c: [r["grid"] for r in result["rows"] if r["codec"] == c] for c in ("jpeg", "lattice")}
    assert len(grid["lattice"]) == 10 and min(grid["lattice"]) > 5 * max(grid["jpeg"]), grid
    assert all("grid" in p for p in result["rd"]["lattice"]) and result["also"] == ["grid"]
    assert set(result["bd_rate"]["lattice"]) == {"psnr"}
    with pytest.raises(ValueError, match="'lr_psnr' needs scale, lr"):
        evaluate_codecs(images, ("jpeg",), metrics=("psnr",), also=("lr_psnr",))


def test_evaluate_refuses_bad_requests_before_any_work(images, tmp_path):
    with pytest.raises(ValueError, match="unknown codec"):
        evaluate_codecs(images, ("jpeg", "bpg"))
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate_codecs(images, ("jpeg",), metrics=("psnr", "sharpness"))
    with pytest.raises(ValueError, match="cannot score"):
        evaluate_codecs(images, ("jpeg",), metrics=("lr_psnr",))
    with pytest.raises(ValueError, match="anchor 'jpeg' is not among"):
        evaluate_codecs(images, ("webp",), metrics=("psnr",))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        evaluate_codecs(tmp_path / "empty", ("jpeg",), metrics=("psnr",))


# --- perceptlab eval codec ---------------------------------------------------------------------------------------


def test_cli_writes_its_report(images, tmp_path, capsys):
    out = tmp_path / "report"
    argv = ["eval", "codec", "--codecs", "jpeg,webp", "--data", str(images), "--out", str(out), "--metrics", "psnr",
            "--limit", "1"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "| webp |" in captured.out and "report:" in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["rd_psnr.svg", "results.json", "results.md"]
    assert json.loads((out / "results.json").read_text())["images"] == ["im0.png"]


def test_cli_refuses_an_output_it_cannot_write_before_any_work(images, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["eval", "codec", "--codecs", "jpeg", "--data", str(images), "--out", str(blocker / "out"),
                 "--metrics", "psnr"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith("perceptlab: error:") and err.count("\n") == 1 and "eval codecs" not in err


def test_cli_one_line_errors(images, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["eval", "codec", "--codecs", "jpeg,bpg", "--data", str(images), "--out", out]) == 2
    assert main(["eval", "codec", "--codecs", "jpeg", "--data", str(images), "--out", out, "--limit", "0"]) == 2
    assert main(["eval", "codec", "--codecs", "jpeg", "--data", str(images), "--out", out, "--models", "ours="]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("perceptlab: error:") for line in lines)


def test_bd_per_image_is_each_images_bd_rate_with_its_mean_and_spread():
    from perceptlab.codec.evaluate import bd_per_image

    rows = []
    for image, saving in (("a.png", 0.8), ("b.png", 0.5)):
        for k, (rate, q) in enumerate(zip((1, 2, 4, 8), (30, 33, 36, 39))):
            rows.append({"image": image, "codec": "anchor", "param": k, "bpp": rate, "psnr": q})
            rows.append({"image": image, "codec": "test", "param": k, "bpp": rate * saving, "psnr": q})
    # a third image whose test curve falls with rate cannot be compared
    for k, (rate, q) in enumerate(zip((1, 2, 4, 8), (30, 33, 36, 39))):
        rows.append({"image": "c.png", "codec": "anchor", "param": k, "bpp": rate, "psnr": q})
        rows.append({"image": "c.png", "codec": "test", "param": k, "bpp": rate, "psnr": 40 - q})
    out = bd_per_image(rows, "anchor", "test", "psnr")
    assert out["values"] == pytest.approx({"a.png": -20.0, "b.png": -50.0})
    assert out["mean"] == pytest.approx(-35.0) and out["std"] == pytest.approx(15.0)
    assert list(out["failed"]) == ["c.png"]
