"""`perceptlab score` and the command's error handling, driven through main([...]) and as a real process."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import TID2013_PAIRS
from perceptlab.cli import main

FAST = "psnr,ssim"


def _png(path, size=(48, 40), seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(array).convert(mode).save(path)
    return path


def test_two_files_json_with_every_default_metric(tid2013, capsys):
    ref, dist = tid2013 / "ref_dir" / "I06.bmp", tid2013 / "dist_dir" / "I06.bmp"
    assert main(["score", str(ref), str(dist), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["metrics"] == ["psnr", "ssim", "ms_ssim", "lpips", "lpips_vgg", "dists"]
    (pair,) = doc["pairs"]
    # REFERENCE_VALUES.md for I06: PSNR 27.01, LPIPS-alex 0.0508, LPIPS-vgg 0.0544, DISTS 0.0682.
    assert pair["psnr"] == pytest.approx(27.01, abs=0.01)
    assert pair["lpips"] == pytest.approx(0.0508, abs=1e-4)
    assert pair["lpips_vgg"] == pytest.approx(0.0544, abs=1e-4)
    assert pair["dists"] == pytest.approx(0.0682, abs=1e-4)
    assert doc["mean"] == {k: pair[k] for k in doc["metrics"]}


def test_folders_paired_by_stem_report_partners_and_means(tid2013, tmp_path, capsys):
    dist_dir = tmp_path / "dist"
    dist_dir.mkdir()
    for key in TID2013_PAIRS[:3]:
        (dist_dir / f"{key}.bmp").write_bytes((tid2013 / "dist_dir" / f"{key}.bmp").read_bytes())
    _png(dist_dir / "extra.png")
    out_file = tmp_path / "scores.json"
    assert main(["score", str(tid2013 / "ref_dir"), str(dist_dir), "--metrics", FAST, "--format", "json",
                 "-o", str(out_file)]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "2 reference file(s) without partner" in err and "1 distorted file(s) without partner" in err
    doc = json.loads(out_file.read_text())
    assert [p["distorted"].rsplit("/", 1)[-1] for p in doc["pairs"]] == ["I03.bmp", "I04.bmp", "I06.bmp"]
    assert doc["mean"]["psnr"] == pytest.approx(np.mean([p["psnr"] for p in doc["pairs"]]))
    assert doc["unmatched"]["distorted"][0].endswith("extra.png")


def test_csv_and_table_formats(tmp_path, capsys):
    a, b = _png(tmp_path / "a.png"), _png(tmp_path / "b.png", seed=1)
    assert main(["score", str(a), str(b), "--metrics", FAST, "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["reference", "distorted", "psnr", "ssim"] and len(rows) == 2
    assert main(["score", str(a), str(b), "--metrics", FAST]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["distorted", "psnr", "ssim"] and len(table) == 3


def test_identical_images_give_infinite_psnr_as_null_in_json(tmp_path, capsys):
    a = _png(tmp_path / "a.png")
    assert main(["score", str(a), str(a), "--metrics", "psnr", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["pairs"][0]["psnr"] is None


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert err.startswith("perceptlab: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_inputs_give_one_line_errors(tmp_path, capsys):
    good = _png(tmp_path / "good.png")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(_png(tmp_path / "whole.png", size=(200, 200)).read_bytes()[:2000])
    other_size = _png(tmp_path / "other.png", size=(50, 40))
    small = _png(tmp_path / "small.png", size=(100, 100))
    small2 = _png(tmp_path / "small2.png", size=(100, 100), seed=3)

    assert "missing.png: no such file" in _error(capsys, ["score", str(good), str(tmp_path / "missing.png")])
    assert "notes.png: not an image" in _error(capsys, ["score", str(good), str(text), "--metrics", FAST])
    assert "cut.png" in _error(capsys, ["score", str(good), str(truncated), "--metrics", FAST])
    err = _error(capsys, ["score", str(good), str(other_size), "--metrics", FAST])
    assert "other.png: size 50x40 differs from the reference's 48x40 (use --resize)" in err
    err = _error(capsys, ["score", str(small), str(small2), "--metrics", "ms_ssim"])
    assert "too small for ms_ssim (needs at least 161x161 pixels, got 100x100)" in err
    assert "unknown metric 'nope'" in _error(capsys, ["score", str(good), str(good), "--metrics", "nope"])
    assert "both be files or both be folders" in _error(capsys, ["score", str(tmp_path), str(good)])


def test_resize_scores_images_of_different_sizes(tmp_path, capsys):
    ref = _png(tmp_path / "ref.png", size=(64, 48))
    Image.open(ref).resize((32, 24), Image.BICUBIC).save(tmp_path / "half.png")
    assert main(["score", str(ref), str(tmp_path / "half.png"), "--metrics", FAST, "--resize", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["pairs"][0]["psnr"] > 5


def test_grayscale_and_rgba_files_are_scored(tmp_path, capsys):
    gray = _png(tmp_path / "gray.png", mode="L")
    rgba = _png(tmp_path / "rgba.png", mode="RGBA")
    assert main(["score", str(gray), str(rgba), "--metrics", FAST, "--format", "json"]) == 0
    assert np.isfinite(json.loads(capsys.readouterr().out)["pairs"][0]["psnr"])


def test_failed_run_leaves_no_output_file(tmp_path, capsys):
    good = _png(tmp_path / "good.png")
    out = tmp_path / "out.json"
    _error(capsys, ["score", str(good), str(tmp_path / "missing.png"), "-o", str(out)])
    assert not out.exists() and list(tmp_path.glob(".out.json*")) == []


def test_installed_command_and_module_entry_points(tmp_path):
    good = _png(tmp_path / "good.png")
    result = subprocess.run([sys.executable, "-m", "perceptlab", "score", str(good), str(tmp_path / "x.png")],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"perceptlab: error: {tmp_path / 'x.png'}: no such file or folder"
    version = subprocess.run([sys.executable, "-m", "perceptlab", "--version"], capture_output=True, text=True)
    assert version.stdout.startswith("perceptlab ")
