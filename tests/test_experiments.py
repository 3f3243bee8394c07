"""The experiment scripts run end to end at a tiny size and write the report they promise."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import shared_dir

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"experiment_{name}", EXPERIMENTS / name / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_style_speed_quality_measures_a_case_and_writes_table_plot_and_strip(tmp_path, monkeypatch):
    shared_dir("style")
    experiment = _load("style_speed_quality")
    out, docs = tmp_path / "runs", tmp_path / "docs"
    argv = ["run.py", "--sizes", "40", "--iterations", "4", "--ff-iterations", "2", "--styles", "udnie",
            "--images", "chicago", "--jobs", "1", "--out", str(out), "--docs", str(docs)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    assert experiment.main() == 0
    case = json.loads((out / "cases" / "udnie_40_chicago.json").read_text())
    assert set(case["curves"]) == {"lbfgs_content", "lbfgs_feedforward", "adam_content", "adam_feedforward"}
    lbfgs, adam = case["curves"]["lbfgs_content"], case["curves"]["adam_content"]
    assert adam["iteration"] == [0, 1, 2, 3, 4]
    # One entry per evaluation: L-BFGS's line search may try several points in an iteration.
    assert lbfgs["iteration"][-1] == 4 and lbfgs["iteration"] == sorted(lbfgs["iteration"])
    assert lbfgs["evals"] == list(range(1, len(lbfgs["evals"]) + 1)) and lbfgs["seconds"] == sorted(lbfgs["seconds"])
    # The feed-forward-initialised curve starts at the feed-forward output's loss (up to the 1/255 margin)
    # and its clock starts after the feed-forward time.
    ff_curve = case["curves"]["lbfgs_feedforward"]
    assert ff_curve["loss"][0] == pytest.approx(case["L_ff"]["loss"], rel=0.05)
    assert ff_curve["seconds"][0] > case["t_ff"] > 0
    # A reach, when there is one, is the first iteration at or below L_ff.
    reach = case["reach"]["lbfgs_content"]
    if reach is not None:
        k = reach["evals"] - 1
        assert lbfgs["loss"][k] <= case["L_ff"]["loss"] < min(lbfgs["loss"][:k] or [float("inf")])
    report = (docs / "style_speed_quality.md").read_text()
    assert "| udnie | 40 | chicago |" in report and "## Answer" in report
    ET.fromstring((docs / "style_speed_quality_udnie_40.svg").read_text())
    assert (docs / "style_speed_quality_strip_udnie.jpg").is_file()
    # The second run reuses the measured case; a case measured on other weights is measured again.
    assert experiment.main() == 0
    assert json.loads((out / "cases" / "udnie_40_chicago.json").read_text())["measured"] == case["measured"]
    assert len(case["model_sha256"]) == 64
    (out / "cases" / "udnie_40_chicago.json").write_text(json.dumps(case | {"model_sha256": "0" * 64, "t_ff": -1.0}))
    assert experiment.main() == 0
    again = json.loads((out / "cases" / "udnie_40_chicago.json").read_text())
    assert again["model_sha256"] == case["model_sha256"] and again["t_ff"] > 0


def test_style_speed_quality_extrapolates_at_the_pace_of_the_second_half():
    experiment = _load("style_speed_quality")
    # Iterations 0..10 with L-BFGS-like extra evaluations in iteration 1, then one a second; a final
    # re-evaluation row. After the start, an iteration costs 1 s: 500 iterations end at 3 + 499 s.
    iterations = [0, 1, 1, 1, *range(2, 11), 10]
    seconds = [0.5, 1.0, 2.0, 3.0, *(3.0 + k for k in range(1, 10)), 12.2]
    curve = {"iteration": iterations, "seconds": seconds}
    assert experiment._extrapolate(curve, 500) == pytest.approx(3.0 + 499.0)
    assert experiment._extrapolate(curve, 500, upto=6) == pytest.approx(3.0 + 499.0)


def _entry(changes: dict[str, float], base: float = 30.0) -> dict:
    """A results entry whose BSD100 images have PSNR-Y ``base + change`` (Set5 and Set14 empty)."""
    images = [{"name": name, "psnr_y": base + change} for name, change in changes.items()]
    mean = {"lpips": 0.3 - sum(changes.values()) / 1000, "dists": 0.2}
    return {"benchmarks": {b: {"images": images if b == "BSD100" else [], "mean": mean}
                           for b in ("Set5", "Set14", "BSD100")}}  # fmt: skip


def test_sr_crop_measures_the_receptive_field_and_answers_from_the_per_image_changes():
    import torch

    experiment = _load("sr_crop")
    torch.manual_seed(0)
    two_convs = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Conv2d(4, 3, 5, padding=2))
    assert experiment.receptive_field(two_convs, size=21) == 7
    names = ["img_006", "a", "b", "c"]
    bicubic = _entry(dict.fromkeys(names, 0.0))
    shipped_j = _entry({"img_006": -23.0, "a": -12.0, "b": -2.0, "c": -1.0})
    shipped_s = _entry({"img_006": -11.0, "a": -2.0, "b": -2.0, "c": -2.0})
    results = {"baselines": {"bicubic": bicubic, "johnson_x4_vgg": shipped_j, "srcnn_x4_vgg": shipped_s}, "runs": {}}
    assert experiment.verdict(results).startswith("Not answered yet")
    results["runs"] = {"johnson_crop128": _entry({"img_006": -2.5, "a": -1.0, "b": -1.5, "c": 0.5}),
                       "srcnn_crop128": shipped_s}  # fmt: skip
    rows = {r["model"]: r for r in experiment.summary_rows(results)}
    assert rows["johnson_x4_vgg"]["worst"] == (-23.0, "BSD100", "img_006") and rows["johnson_x4_vgg"]["below_10db"] == 2
    assert rows["johnson_crop128"]["worst"] == (-2.5, "BSD100", "img_006") and rows["johnson_crop128"]["below_10db"] == 0
    assert rows["johnson_crop128"]["hr_crop"] == 128 and rows["srcnn_x4_vgg"]["hr_crop"] == 64
    answer = experiment.verdict(results)
    assert answer.startswith("**Larger crops: Yes.**") and "-23.0 dB" in answer and "-2.5 dB" in answer
    assert "pixel term" not in answer
    results["runs"]["johnson_crop128"] = _entry({"img_006": -11.0, "a": -1.0, "b": -1.5, "c": 0.5})
    assert experiment.verdict(results).startswith("**Larger crops: Partly:")
    results["runs"]["johnson_crop128"] = _entry({"img_006": -11.0, "a": -4.0, "b": -3.5, "c": 0.5})
    assert experiment.verdict(results).startswith("**Larger crops: No: fewer images lose more than 10 dB against "
                                                  "bicubic (2 -> 1), but more lose more than 3 dB (2 -> 3).**")  # fmt: skip
    results["runs"]["johnson_crop128"] = shipped_j
    results["runs"]["johnson_pixel"] = _entry({"img_006": -1.0, "a": -1.0, "b": -1.5, "c": 0.5})
    answer = experiment.verdict(results)
    assert answer.startswith("**Larger crops: No.**") and "**A pixel term: Yes.**" in answer
    # The shipped pixel-term model, read from the package; the LPIPS means above favour it 3 times of 6.
    from perceptlab.sr.models import DEFAULT_SR_MODEL

    line = experiment.shipped_line(results)
    assert "`johnson_pixel` ships as `johnson_x4_vgg_pixel`" in line
    assert "better than `srcnn_x4_vgg` in 3 and than `johnson_x4_vgg` in 3 of 6" in line
    assert ("the default of `perceptlab upscale`" in line) == (DEFAULT_SR_MODEL == "johnson_x4_vgg_pixel")
    del results["runs"]["johnson_pixel"]
    assert experiment.shipped_line(results) == ""


def test_deepsim_ablation_trains_evaluates_reports_and_ships_at_a_tiny_size(tmp_path, monkeypatch):
    import torch

    experiment = _load("deepsim_ablation")
    images = tmp_path / "images"
    images.mkdir()
    from perceptlab.io import write_image

    for i in range(2):
        write_image(torch.rand(1, 3, 80, 80), images / f"train{i}.png")
    photos = [(f"kodim{n:02d}", torch.rand(1, 3, 64, 96)) for n in (5, 15, 23, 1)]
    monkeypatch.setenv("PERCEPTLAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr(experiment, "COMMON", experiment.COMMON | {
        "data": [str(images)], "val_data": None, "crop": 64, "batch_size": 2, "steps": 2, "sample_every": 2,
        "ckpt_every": 1, "log_every": 1})  # fmt: skip
    monkeypatch.setattr(experiment, "DOCS", tmp_path / "docs")
    monkeypatch.setattr(experiment, "kodak", lambda: photos)
    monkeypatch.setattr(experiment, "ROOT", tmp_path)
    monkeypatch.setattr(experiment, "HERE", tmp_path)
    (tmp_path / "notes.md").write_text("# notes\n\n## Budget\n\nMore steps.\n")
    (tmp_path / "src" / "perceptlab" / "models").mkdir(parents=True)
    monkeypatch.setattr(sys, "argv", ["run.py", "--train-all"])
    assert experiment.main() == 0
    runs = tmp_path / "runs" / "deepsim_ablation"
    assert all((runs / n / "model.safetensors").is_file() for n in experiment.RUNS + list(experiment.SHIP_RUNS))
    # The shipped autoencoder went on from the ablation's run; the inverter started afresh, at relu3.
    steps = {n: [int(line.split(",")[0]) for line in (runs / n / "metrics.csv").read_text().splitlines()[1:]]
             for n in experiment.SHIP_RUNS}  # fmt: skip
    assert steps["ship_autoencoder"][0] == 1 and steps["ship_autoencoder"][-1] == 6
    assert steps["ship_invert_relu3"] == [1, 2, 3, 4] and "relu3" in (runs / "ship_invert_relu3" / "config.toml").read_text()
    monkeypatch.setattr(sys, "argv", ["run.py", "--ship"])
    assert experiment.main() == 0
    results = json.loads((tmp_path / "docs" / "deepsim_ablation.json").read_text())
    assert list(results["runs"]) == experiment.RUNS
    for entry in results["runs"].values():
        assert set(entry["images"]) == {stem for stem, _ in photos} and entry["steps"] == 2
        assert set(entry["mean"]) == set(experiment.METRICS)
    report = (tmp_path / "docs" / "deepsim_ablation.md").read_text()
    # Every run is a row; every point is answered (holds or not) for both networks, from the numbers.
    rows = report.splitlines()
    assert sum(r.startswith("| autoencoder |") for r in rows) == 4 and sum(r.startswith("| invert |") for r in rows) == 4
    assert "| `deepsim_autoencoder` | autoencoder | 6 |" in report and "| `deepsim_invert_alexnet_relu3` |" in report
    assert report.count("*: holds") + report.count("*: does not hold") == 6 and "More steps." in report
    assert all((tmp_path / "docs" / f"deepsim_{n}.jpg").is_file() for n in ("ablation_autoencoder", "shipped"))
    shipped = tmp_path / "src" / "perceptlab" / "models"
    assert {p.name for p in shipped.iterdir()} == {
        "deepsim_autoencoder.safetensors", "deepsim_autoencoder.md",
        "deepsim_invert_alexnet_relu3.safetensors", "deepsim_invert_alexnet_relu3.md"}  # fmt: skip
    card = (shipped / "deepsim_autoencoder.md").read_text()
    assert "PSNR" in card and "steps: 6" in card and (tmp_path / "logs" / "ship_autoencoder.csv").is_file()
    assert "AlexNet's relu3" in (shipped / "deepsim_invert_alexnet_relu3.md").read_text()


def test_perceptual_compression_table_is_the_per_image_bd_rate_against_our_mse_codec():
    experiment = _load("perceptual_compression")
    anchor = experiment.ANCHOR
    rows = []
    for image in ("a", "b"):
        for i, bpp in enumerate((0.2, 0.4, 0.8, 1.6)):
            quality = {"psnr": 28.0 + 3 * i, "ms_ssim": 0.90 + 0.02 * i, "vmaf": 50.0 + 10 * i, "lpips": 0.4 - 0.08 * i}
            rows.append({"image": image, "codec": anchor, "bpp": bpp} | quality)
            # The same qualities for 20 % fewer bits (a), and for 25 % more (b): BD-rates -20 and +25 %.
            rows.append({"image": image, "codec": "ours_alternate", "bpp": bpp * (0.8 if image == "a" else 1.25)} | quality)
            rows.append({"image": image, "codec": "jpeg", "bpp": bpp * 1.5} | quality)
    result = {"rows": rows, "codecs": {anchor: {}, "ours_alternate": {}, "jpeg": {}}}
    table = experiment.source_table(result)
    entry = table["vmaf"]["ours_alternate"]
    assert entry["mean"] == pytest.approx(2.5, abs=0.1) and entry["std"] == pytest.approx(22.5, abs=0.1)
    assert table["psnr"]["jpeg"]["mean"] == pytest.approx(50.0, abs=0.1) and table["vmaf"][anchor]["mean"] == 0
    text = "\n".join(experiment.table_markdown(table, 2))
    assert "+2.5 ± 22.5 %" in text and "+78.36 %" in text and "not trained at every rate point yet" in text
    checks = "\n".join(experiment.direction_check(table))
    assert "JPEG: +50.0 % against the source's +78.36 %: same direction" in checks
    assert "alternating: +2.5 % against the source's -23.35 %: opposite direction" in checks


def test_perceptual_compression_reads_the_mse_codecs_chroma_curve_from_the_curves_cache(tmp_path, monkeypatch):
    experiment = _load("perceptual_compression")
    monkeypatch.setenv("PERCEPTLAB_RUNS", str(tmp_path / "runs"))
    assert experiment.anchor_points("chroma_psnr") == []  # no evaluation yet
    rows = [{"image": image, "param": f"q{q}", "bpp": bpp + (0.02 if image == "b" else 0), "chroma_psnr": 36.0 + q}
            for q, bpp in ((2, 0.3), (1, 0.1)) for image in ("a", "b")]  # fmt: skip
    experiment.runs_root().mkdir(parents=True)
    (experiment.runs_root() / "eval_curves.json").write_text(json.dumps({"anchor_rows": rows}))
    points = experiment.anchor_points("chroma_psnr")
    assert [p["bpp"] for p in points] == pytest.approx([0.11, 0.31]) and [p["chroma_psnr"] for p in points] == [37, 38]
    assert experiment.anchor_points("grid") == []
    # the cache's first form (one stamp for every curve) is read per curve; another ALSO starts afresh
    old = {"limit": None, "also": list(experiment.ALSO), "stamp": {"ours_x": [1.0], experiment.ANCHOR: [2.0]},
           "rows": [{"codec": "ours_x", "image": "a"}], "codecs": {"ours_x": {"kind": "learned"}}, "anchor_rows": rows}
    path = tmp_path / "cache.json"
    path.write_text(json.dumps(old))
    entries = experiment._curves_cache(path, None)["entries"]
    assert entries["ours_x"] == {"stamp": [1.0], "codec": {"kind": "learned"}, "rows": old["rows"]}
    assert entries[experiment.ANCHOR]["rows"] == rows and experiment._curves_cache(path, 8)["entries"] == {}


def test_perceptual_compression_ships_a_methods_four_compact_points_and_the_proxy_with_cards(tmp_path, monkeypatch):
    import torch

    from perceptlab.codec import CodecModel, CodecTrainConfig, load_codec_model
    from perceptlab.codec.proxy import load_proxy
    from perceptlab.codec.train import save_codec_weights
    from perceptlab.nets.proxy import QualityProxy
    from perceptlab.training import save_model_file

    experiment = _load("perceptual_compression")
    monkeypatch.setenv("PERCEPTLAB_RUNS", str(tmp_path / "runs"))
    runs = experiment.runs_root()
    for point in experiment.POINTS:
        model = CodecModel("hyperprior", N=8, M=12).eval()
        model.build_tables()
        save_codec_weights(runs / f"alternate_{point}" / "model.safetensors", model,
                           CodecTrainConfig(arch="hyperprior", N=8, M=12, data=["x"], distortion="vmaf_proxy"),
                           {"name": f"alternate_{point}", "steps": "2000", "train_seconds": "600"})  # fmt: skip
    proxy = runs / "proxy_vmaf"
    save_model_file(proxy / "model.safetensors", QualityProxy(8),
                    {"task": "proxy", "width": "8", "steps": "3000", "train_seconds": "540", "config": "{}"})  # fmt: skip
    (proxy / "validation.json").write_text(json.dumps({"srocc": 0.95, "plcc": 0.97, "rmse": 5.8,
                                                       "patches": [{"kind": "jpeg", "vmaf": 50, "proxy": 52}]}))  # fmt: skip
    files = experiment.curve_models()["ours_alternate"]
    assert all(f.name == "shipped.safetensors" for f in files)
    rows = [{"codec": "ours_alternate", "param": str(f), "image": "a", "bpp": 0.1 * (i + 1), "psnr": 27.0 + i,
             "ms_ssim": 0.9, "vmaf": 60.0 + i, "lpips": 0.3} for i, f in enumerate(files)]  # fmt: skip
    curves = {"rows": rows, "codecs": {"ours_alternate": {}}, "machine": "AMD EPYC, 2 cores",
              "table": {"vmaf": {"ours_alternate": {"mean": -21.5, "std": 4.0}}},
              "lattice": experiment.lattice([r | {"grid": 0.02 + 0.01 * i} for i, r in enumerate(rows)], [])}
    with pytest.raises(SystemExit, match="not shipping vmaf"):
        experiment.ship("vmaf", curves, tmp_path)
    target = tmp_path / "models"
    target.mkdir()
    written = experiment.ship("alternate", curves, target)
    assert sorted(p.name for p in written if p.suffix == ".safetensors") == [
        *(f"codec_hyperprior_alternate_{q}.safetensors" for q in experiment.POINTS), "proxy_vmaf.safetensors"]
    card = (target / "codec_hyperprior_alternate_q2.md").read_text()
    assert card.startswith("# codec_hyperprior_alternate_q2\n") and "alternately" in card and "bpp 0.2" in card
    assert "vmaf 61" in card and "VMAF BD-rate -21.5 % ± 4.0" in card and "10 min" in card
    assert "Lattice at this point (`grid`, period 4, over Kodak): median 0.030, worst 0.030." in card
    assert "SROCC 0.950, PLCC 0.970, RMSE 5.8" in (target / "proxy_vmaf.md").read_text()
    shipped = load_codec_model(str(target / "codec_hyperprior_alternate_q2.safetensors"))
    assert shipped.tables is not None and next(shipped.parameters()).dtype == torch.float32
    assert load_proxy(str(target / "proxy_vmaf.safetensors")) is not None
    from perceptlab.codec.models import SHIPPED_CODEC

    for kind in experiment.CURVES:  # every curve can ship under a name the package knows
        assert {experiment.SHIP_NAME.format(kind=kind, point=q) for q in experiment.POINTS} <= set(SHIPPED_CODEC)


def test_style_gallery_shows_every_shipped_style_in_the_readme(tmp_path):
    import torch

    from perceptlab.io import read_image, write_image
    from perceptlab.style.models import shipped_style_models

    experiment = _load("style_models")
    photo = tmp_path / "kodim23.png"
    write_image(torch.rand(1, 3, 96, 128), photo)
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n## Style transfer\n\n```bash\nperceptlab stylize a -o b\n```\n\nText after.\n")
    written = experiment.gallery(photo, tmp_path / "docs" / "g", readme)
    names = sorted(shipped_style_models())
    assert [p.name for p in written] == ["photo.jpg", *(f"{n}.jpg" for n in names)]
    assert read_image(written[1]).shape[-1] == experiment.GALLERY_SIDE
    text = readme.read_text()
    assert all(f"(docs/g/{n}.jpg)" in text for n in names) and text.endswith("Text after.\n")
    # Run again: the gallery is replaced, not added twice.
    experiment.gallery(photo, tmp_path / "docs" / "g", readme)
    assert readme.read_text() == text and text.count(experiment.GALLERY_BEGIN) == 1
    assert text.index("```\n") < text.index(experiment.GALLERY_BEGIN) < text.index("Text after.")


def test_style_look_pictures_show_each_photo_next_to_the_runs_latest_weights(tmp_path):
    import os
    import shutil

    from PIL import Image

    from perceptlab.style.models import shipped_style_models

    shared_dir("kodak")
    experiment = _load("style_models")
    folder = experiment.run_dir("wave", tmp_path)
    folder.mkdir()
    shutil.copyfile(shipped_style_models()["style_starry_night"], folder / "model.safetensors")
    os.utime(folder / "model.safetensors", (1000, 1000))
    (folder / "checkpoint.pt").write_bytes(b"not a checkpoint")  # newer than the model: the one looked at
    with pytest.raises(Exception):
        experiment.look("wave", tmp_path, side=64)
    (folder / "checkpoint.pt").unlink()
    whole, crops = experiment.look("wave", tmp_path, side=64)
    assert Image.open(whole).size[0] >= 2 * 64 and Image.open(whole).size[1] >= len(experiment.LOOK_PHOTOS) * 42
    assert Image.open(crops).size[1] > Image.open(whole).size[1] / 2


def test_every_sr_default_recipe_is_a_valid_training_config_at_its_named_scale():
    from perceptlab.sr.train import SRTrainConfig

    experiment = _load("sr_default")
    for name, start in experiment.STARTS_FROM.items():
        values = experiment.recipe(name)
        scale = int(name.split("_x", 1)[1].split("_", 1)[0])
        assert values["scale"] == scale and values["hr_crop"] % scale == 0, name
        assert (start is None) == ("init" not in values), name
        if start:
            assert experiment.recipe(start)["scale"] == scale and values["init"] == str(experiment.start_file(start))
        if "grid" in " ".join(values["losses"]) and scale == 8:
            assert "grid:8*1000" in values["losses"], name  # the lattice of three sub-pixel stages
        SRTrainConfig.from_dict(values)


def test_compression_ships_an_architecture_only_when_every_rate_point_is_finished_from_the_current_base(
        tmp_path, monkeypatch):  # fmt: skip
    import os

    import torch
    from safetensors.torch import save_file

    experiment = _load("compression")
    monkeypatch.setenv("PERCEPTLAB_RUNS", str(tmp_path))
    monkeypatch.setattr(experiment, "MODELS_DIR", tmp_path / "package")  # nothing shipped

    def model(name: str, steps: int, mtime: float) -> None:
        path = tmp_path / "compression" / name / "model.safetensors"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"w": torch.zeros(1)}, str(path), metadata={"steps": str(steps)})
        os.utime(path, (mtime, mtime))

    arch, base = "hyperprior", experiment.BASE_POINT
    others = [q for q in experiment.LAMBDAS if q != base]
    assert experiment.finished(arch) == (False, f"{arch}_{base} is not trained")
    model(f"{arch}_{base}", experiment.BASE_STEPS - 1, 2000)
    for q in others:
        model(f"{arch}_{q}", experiment.FINE_STEPS, 1000)  # fine-tuned from an earlier, shorter base
    assert f"has {experiment.BASE_STEPS - 1} of its {experiment.BASE_STEPS} steps" in experiment.finished(arch)[1]
    model(f"{arch}_{base}", experiment.BASE_STEPS, 2000)
    assert "fine-tuned from an earlier" in experiment.finished(arch)[1]
    for q in others:
        model(f"{arch}_{q}", experiment.FINE_STEPS, 3000)
    assert experiment.finished(arch) == (True, "")


def test_sr_default_makes_the_benchmarks_a_release_lacks_and_scores_other_scales(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    from perceptlab.sr import load_benchmark, make_benchmark

    experiment = _load("sr_default")
    data, rng = tmp_path / "data", np.random.default_rng(0)
    for bench in ("Set5", "Set14"):  # original photos, and a released x2
        (data / bench / "HR_original").mkdir(parents=True)
        for name in ("b", "a"):
            Image.fromarray(rng.integers(0, 256, (50, 42, 3), dtype=np.uint8)).save(data / bench / "HR_original" / f"{name}.png")
        make_benchmark(data / bench / "HR_original", 2, data / bench)
    (data / "BSD100" / "image_SRF_4").mkdir(parents=True)  # BSD100: its x4 release only
    for i in (1, 2):
        hr = rng.integers(0, 256, (48, 32, 3), dtype=np.uint8)
        Image.fromarray(hr).save(data / "BSD100" / "image_SRF_4" / f"img_00{i}_SRF_4_HR.png")
        Image.fromarray(hr[::4, ::4]).save(data / "BSD100" / "image_SRF_4" / f"img_00{i}_SRF_4_LR.png")
    monkeypatch.setattr(experiment, "DATA", data)
    monkeypatch.setenv("PERCEPTLAB_RUNS", str(tmp_path / "runs"))
    x2 = experiment.benchmark_roots(2)
    assert x2[:2] == [data / "Set5", data / "Set14"] and x2[2] == tmp_path / "runs" / "sr_default" / "benchmarks" / "BSD100"
    x8 = experiment.benchmark_roots(8)
    assert all(root.parent.name == "benchmarks" for root in x8)
    assert [it.name for it in load_benchmark(x8[0], 8)] == ["a", "b"]
    assert [it.name for it in load_benchmark(x8[2], 8)] == ["img_001", "img_002"]
    assert load_benchmark(x8[2], 8)[0].hr.shape == (1, 3, 48, 32)
    assert experiment.benchmark_roots(8) == x8  # made once
    entry = experiment.evaluate_other_scale("bicubic_x8")
    assert entry["scale"] == 8 and set(entry["benchmarks"]) == {"Set5", "Set14", "BSD100"}
    lines = experiment.other_scales_section({"bicubic_x8": entry} | {"perceptsr_x8_psnr": entry | {"steps": 3}})
    assert sum(line.startswith("| `perceptsr_x8_psnr` (3 steps) | x8 |") for line in lines) == 3
    assert experiment.other_scales_section({"bicubic_x8": entry}) == []
    # An x8 model ships only when it beats bicubic x8 and meets the plain targets; its card says x8.
    model = entry | {"steps": 3, "train_minutes": 0.1}
    results = {"hardware": "test", "models": {}, "other_scales": {"bicubic_x8": entry, "perceptsr_x8_vgg_grid": model}}
    checks = experiment.other_scale_checks(model, entry)
    bicubic_lpips = f"{entry['benchmarks']['Set5']['mean']['lpips']:.3f}"
    assert len(checks) == 6 * 3 and not checks[f"Set5 LPIPS mean < bicubic {bicubic_lpips}"]
    card = experiment.model_card("perceptsr_x8_vgg_grid", results)
    assert card.startswith("# perceptsr_x8\n") and "x8 super-resolution" in card and "bicubic x1/8" in card
    assert "--scale 8" in card and "Targets at x8" in card
    with pytest.raises(SystemExit, match="not shipping perceptsr_x8_vgg_grid: .*LPIPS mean < bicubic"):
        experiment.ship("perceptsr_x8_vgg_grid", results)
    assert not (experiment.ROOT / "src" / "perceptlab" / "models" / "perceptsr_x8.md").exists()


def test_compression_measures_and_ships_the_compact_copy_made_once_per_weights(tmp_path, monkeypatch):
    import os

    from perceptlab.codec import CodecModel, CodecTrainConfig
    from perceptlab.codec.train import save_codec_weights
    from perceptlab.training import load_model_file

    experiment = _load("compression")
    monkeypatch.setenv("PERCEPTLAB_RUNS", str(tmp_path))
    weights = tmp_path / "compression" / "hyperprior_q3" / "model.safetensors"
    model = CodecModel("hyperprior", N=8, M=12).eval()
    model.build_tables()
    save_codec_weights(weights, model, CodecTrainConfig(arch="hyperprior", N=8, M=12, data=["x"]),
                       {"name": "hyperprior_q3", "steps": "1"})  # fmt: skip
    copy = experiment.shipping_copy(weights)
    assert copy == weights.with_name("shipped.safetensors")
    assert load_model_file(copy)[0]["net.g_a.0.weight"].dtype.itemsize == 2
    os.utime(copy, (5000, 5000))
    os.utime(weights, (4000, 4000))
    assert experiment.shipping_copy(weights).stat().st_mtime == 5000  # up to date: kept
    os.utime(weights, (6000, 6000))
    assert experiment.shipping_copy(weights).stat().st_mtime > 6000  # newer weights: made again


def test_sr_losses_restores_shipped_runs_reads_two_stage_budgets_and_tables_the_defects(tmp_path):
    from perceptlab.sr.train import SRTrainConfig

    experiment = _load("sr_losses")
    assert experiment.restore_shipped(tmp_path, ("srcnn_x4_vgg",)) == ["srcnn_x4_vgg"]
    assert (tmp_path / "srcnn_x4_vgg" / "model.safetensors").is_file()
    assert (tmp_path / "srcnn_x4_vgg" / "metrics.csv").is_file()
    assert experiment.restore_shipped(tmp_path, ("srcnn_x4_vgg",)) == []  # a run folder with weights is kept
    stage2 = SRTrainConfig.from_dict(experiment.recipe("srcnn_x4_mse"))
    stage2.validate()
    assert Path(stage2.init).is_file() and stage2.lr_milestones
    first = experiment.stage_one("srcnn_x4_mse")
    assert first["steps"] == 12000 and 20 < first["minutes"] < 60
    bench = {"median": {"grid": 0.0123, "lr_psnr": 41.26, "color_shift": 0.44},
             "worst": {"grid": 0.0456, "lr_psnr": 30.0, "color_shift": 3.0}}
    table = experiment.defects_table({"m": {"benchmarks": dict.fromkeys(experiment.BENCHMARKS, bench)}})
    assert table[0].count("grid median / worst") == 3 and table[2] == "| m |" + " 0.012 / 0.046 | 41.3 | 0.4 |" * 3


def test_metric_blindness_defects_have_the_named_strength():
    import torch

    experiment = _load("metric_blindness")
    from perceptlab.metrics.fidelity import color_shift, grid_score

    pattern = experiment.lattice((9, 10))
    assert pattern.shape == (9, 10) and torch.equal(pattern[:4, :4], pattern[4:8, 4:8])
    assert pattern[:8, :8].mean().abs() < 1e-6 and abs(float(pattern[:8, :8].pow(2).mean().sqrt()) - 1) < 1e-5
    x = torch.full((1, 3, 64, 64), 128 / 255)  # an 8-bit level: rounding leaves it
    lat = experiment.apply("lattice", x, 8)
    assert abs(float((lat - x).pow(2).mean().sqrt()) * 255 - 8) < 0.5 and float(grid_score(lat)) > 0.5
    cast = experiment.apply("colour cast", x, 16)
    assert float(color_shift(cast, x)) == pytest.approx(16, abs=0.6) and torch.equal(cast[:, 1], x[:, 1])
    noise = experiment.apply("noise", x, 4)
    assert abs(float((noise - x).std()) * 255 - 4) < 0.5 and float(grid_score(noise)) < 0.1
    assert torch.allclose(experiment.apply("blur", x, 1.0), x)  # a flat image stays flat
    with pytest.raises(ValueError, match="unknown defect"):
        experiment.apply("jpeg", x, 1)


def test_later_stages_start_from_the_shipped_copy_only_where_the_run_folder_is_gone(tmp_path, monkeypatch):
    monkeypatch.setenv("PERCEPTLAB_RUNS", str(tmp_path))
    sr, codec = _load("sr_default"), _load("compression")
    models = EXPERIMENTS.parent / "src" / "perceptlab" / "models"
    assert sr.start_file("perceptsr_x4_vgg_grid") == models / "perceptsr_x4.safetensors"  # shipped as perceptsr_x4
    assert sr.start_file("perceptsr_x8_psnr") == tmp_path / "sr_default" / "perceptsr_x8_psnr" / "model.safetensors"
    assert codec.weights("hyperprior_q2") == models / "codec_hyperprior_q2.safetensors"
    assert codec.finished("hyperprior") == (True, "")
    for run in (tmp_path / "sr_default" / "perceptsr_x4_vgg_grid", tmp_path / "compression" / "hyperprior_q2"):
        run.mkdir(parents=True)
        (run / "model.safetensors").write_bytes(b"")
    assert sr.start_file("perceptsr_x4_vgg_grid") == tmp_path / "sr_default" / "perceptsr_x4_vgg_grid" / "model.safetensors"
    assert codec.weights("hyperprior_q2") == tmp_path / "compression" / "hyperprior_q2" / "model.safetensors"


def test_sr_default_lays_a_shipped_run_again_and_does_not_train_it_over(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PERCEPTLAB_RUNS", str(tmp_path))
    sr = _load("sr_default")
    run = tmp_path / "sr_default" / "perceptsr_x4_vgg_grid"
    shipped = EXPERIMENTS.parent / "src" / "perceptlab" / "models" / "perceptsr_x4.safetensors"
    assert sr.restore("perceptsr_x4_vgg_grid") and not sr.restore("perceptsr_x4_vgg_grid")
    assert (run / "model.safetensors").read_bytes() == shipped.read_bytes()
    assert (run / "metrics.csv").read_text() == (EXPERIMENTS / "sr_default" / "logs" / "perceptsr_x4_vgg_grid.csv").read_text()
    assert not sr.restore("perceptsr_x8_psnr")  # never shipped: nothing to lay again
    sr.train("perceptsr_x4_vgg_grid", None)  # finished: returns at once
    assert "finished (3000 steps)" in capsys.readouterr().err and not (run / "checkpoint.pt").exists()
    with pytest.raises(SystemExit, match="no checkpoint to go on from"):
        sr.train("perceptsr_x4_vgg_grid", 4000)


def test_perceptual_compression_keeps_finished_runs_in_git_and_lays_them_again(tmp_path, monkeypatch, capsys):
    import torch
    from safetensors.torch import save_file

    monkeypatch.setenv("PERCEPTLAB_RUNS", str(tmp_path / "runs"))
    experiment = _load("perceptual_compression")
    monkeypatch.setattr(experiment, "ARCHIVE", tmp_path / "kept")
    monkeypatch.setattr(experiment, "ROOT", tmp_path)
    run = tmp_path / "runs" / "perceptual_compression" / "proxy_vmaf"
    assert experiment.archive("proxy_vmaf") is None  # not trained
    run.mkdir(parents=True)
    save_file({"w": torch.ones(2)}, str(run / "model.safetensors"), metadata={"steps": "3000"})
    for name in ("metrics.csv", "validation.json", "checkpoint.pt"):
        (run / name).write_text(name)
    assert experiment.archive("proxy_vmaf") == tmp_path / "kept" / "proxy_vmaf"
    assert sorted(p.name for p in (tmp_path / "kept" / "proxy_vmaf").iterdir()) == [
        "metrics.csv", "model.safetensors", "validation.json"]  # never the checkpoint
    assert not experiment.restore("proxy_vmaf")  # the run folder is there
    shutil.rmtree(run)
    assert experiment.restore("proxy_vmaf")
    assert (run / "validation.json").read_text() == "validation.json" and not (run / "checkpoint.pt").exists()
    experiment.train("proxy_vmaf")  # laid again, finished: not trained over
    assert "proxy_vmaf: finished (3000 steps" in capsys.readouterr().err


def test_compression_keeps_its_last_evaluation_in_git_for_a_machine_without_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("PERCEPTLAB_RUNS", str(tmp_path / "runs"))
    experiment = _load("compression")
    monkeypatch.setattr(experiment, "KEPT_RESULTS", tmp_path / "kept" / "results.json.gz")
    assert experiment.saved_results() is None
    result = tmp_path / "runs" / "compression" / "eval" / "results.json"
    result.parent.mkdir(parents=True)
    result.write_text(json.dumps({"rows": [{"codec": "jpeg", "image": "kodim01", "bpp": 1.0}], "rd": {}}))
    experiment.keep_results(result)
    first = experiment.KEPT_RESULTS.read_bytes()
    experiment.keep_results(result)
    assert experiment.KEPT_RESULTS.read_bytes() == first  # the same rows, the same bytes: no churn in git
    result.write_text(json.dumps({"rows": [], "rd": {}}))
    assert experiment.saved_results()["rows"] == []  # the runs folder's evaluation first
    result.unlink()
    assert experiment.saved_results()["rows"][0]["image"] == "kodim01"  # then the kept copy


def test_perceptual_compression_calls_a_bd_gap_under_one_point_level_not_ahead():
    experiment = _load("perceptual_compression")
    table = {m: {"ours_alternate": {"mean": -37.48}} for m in ("vmaf", "ms_ssim", "lpips")}
    table["vmaf"] |= {"jpeg2000": {"mean": -37.46}, "hevc": {"mean": -36.0}, "webp": {"mean": -14.5}}
    line = [x for x in experiment.direction_check(table) if "is ahead of" in x][0]
    assert "ahead of 2 of the 3 standard codecs in VMAF at equal bits (hevc, webp)" in line  # 1.48 points: ahead
    assert "level with jpeg2000 (-0.02 points);" in line


def test_perceptual_compression_measures_a_lattice_at_every_rate_point_beside_the_mse_codecs():
    # Per curve and point the grid median and worst over the images; a curve whose median is more than twice the
    # MSE codec's at a point is said to print a lattice there.
    experiment = _load("perceptual_compression")
    anchor, rows = [], []
    for image in ("a", "b", "c"):
        for i, point in enumerate(experiment.POINTS):
            anchor.append({"image": image, "param": f"/m/codec_hyperprior_{point}.safetensors", "bpp": 0.1 * (i + 1),
                           "grid": 0.015, "codec": experiment.ANCHOR})  # fmt: skip
            grid = 0.16 if point == "q1" else 0.02  # a lattice at the lowest rate only
            rows.append({"image": image, "param": f"/runs/alternate_{point}/shipped.safetensors", "bpp": 0.08 * (i + 1),
                         "grid": grid + (0.2 if image == "c" else 0.0), "codec": "ours_alternate"})  # fmt: skip
    lattice = experiment.lattice(rows, anchor)
    first = lattice["ours_alternate"][0]
    assert first["point"] == "q1" and first["median"] == pytest.approx(0.16) and first["max"] == pytest.approx(0.36)
    assert [p["point"] for p in lattice[experiment.ANCHOR]] == list(experiment.POINTS)
    text = "\n".join(experiment.lattice_markdown(lattice, 0.011))
    assert "the originals score 0.011" in text and "0.160 (0.36) at 0.08 bpp" in text
    assert "alternating: a lattice at q1 (grid median more than 2x the MSE codec's)." in text


def test_perceptual_compression_tells_the_bits_a_curve_needs_for_the_mse_codecs_colour():
    # A curve with the anchor's chroma PSNR at 25 % more bits: chroma BD-rate +25 %; rows without chroma: no table.
    experiment = _load("perceptual_compression")
    anchor, rows = [], []
    for image in ("a", "b"):
        for i, bpp in enumerate((0.1, 0.2, 0.4, 0.8)):
            anchor.append({"image": image, "codec": experiment.ANCHOR, "bpp": bpp, "chroma_psnr": 34.0 + 2 * i})
            rows.append({"image": image, "codec": "ours_alternategrid10", "bpp": 1.25 * bpp, "chroma_psnr": 34.0 + 2 * i})
    table = experiment.chroma_table(rows, anchor)
    assert table["ours_alternategrid10"]["mean"] == pytest.approx(25.0, abs=0.1) and table["ours_alternategrid10"]["images"] == 2
    assert experiment.chroma_table(rows, [{k: v for k, v in r.items() if k != "chroma_psnr"} for r in anchor]) == {}
