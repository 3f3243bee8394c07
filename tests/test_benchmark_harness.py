"""The benchmark harness's command line and result files (benchmarks/harness.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parents[1] / "benchmarks" / "harness.py"


@pytest.fixture
def harness(monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location("harness_under_test", HARNESS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(module, "environment", lambda: {"cpu": "test"})
    return module


def test_a_tag_writes_beside_the_main_result_and_bad_tags_are_refused(harness, tmp_path):
    parser = harness.build_parser("test")
    harness.parse_args(parser, [])
    assert harness.write_result("bench", {"x": 1}) == tmp_path / "bench.json"
    harness.parse_args(parser, ["--tag", "amd-avx2"])
    path = harness.write_result("bench", {"x": 2})
    assert path == tmp_path / "bench-amd-avx2.json"
    assert json.loads(path.read_text())["benchmark"] == "bench"
    assert json.loads((tmp_path / "bench.json").read_text())["x"] == 1  # the main result is kept
    for bad in ("../x", "a/b", ""):
        with pytest.raises(SystemExit):
            harness.parse_args(parser, ["--tag", bad])


def test_the_codec_benchmark_runs_and_writes_speeds_and_the_coder_share(monkeypatch, tmp_path):
    import sys

    from conftest import shared_dir

    shared_dir("kodak")
    monkeypatch.syspath_prepend(str(HARNESS.parent))
    import harness as shared_harness

    monkeypatch.setattr(shared_harness, "RESULTS_DIR", tmp_path)
    spec = importlib.util.spec_from_file_location("bench_codec_under_test", HARNESS.parent / "bench_codec.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--quick", "--threads", "1"]) == 0
    result = json.loads((tmp_path / "codec.json").read_text())
    assert len(result["rows"]) == 2 and result["arch"] == "bls2017"
    row = result["rows"][0]
    assert row["bpp"] == pytest.approx(8 * row["bytes"] / (row["megapixels"] * 1e6))
    assert row["encode_mp_per_s"] > 0 and row["decode_mp_per_s"] > 0 and row["coder_share_decode"] < 1
    sys.modules.pop("harness", None)
