"""SVG line plots for reports: valid SVG, correct axes, bad input refused."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import pytest

from perceptlab.plot import crop_sheet
from perceptlab.plot.lines import _linear_ticks, _log_ticks, line_plot

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def _texts(root: ET.Element) -> list[str]:
    return [t.text for t in root.iter(f"{SVG}text")]


def test_log_ticks_cover_the_range_with_1_2_5_and_label_decades():
    ticks, labelled = _log_ticks(0.03, 200)
    assert ticks == pytest.approx([0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200])
    assert labelled == pytest.approx([0.1, 1, 10, 100])
    # Less than two decades inside: every tick is labelled.
    ticks, labelled = _log_ticks(3, 40)
    assert labelled == ticks == pytest.approx([5, 10, 20])


def test_linear_ticks_are_nice_steps_inside_the_range():
    assert _linear_ticks(0, 1) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ticks = _linear_ticks(-3.3, 47.1)
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:])}
    assert steps == {10} and ticks[0] >= -3.3 and ticks[-1] <= 47.1


def test_a_plot_is_valid_svg_with_one_path_per_series_in_order_and_escaped_text():
    svg = line_plot(
        [{"label": "L-BFGS <fast>", "x": [1, 10, 100], "y": [100, 20, 5]},
         {"label": "Adam & co", "x": [1, 10, 100], "y": [100, 50, 30], "dash": "dashed"}],
        xlog=True, ylog=True, title="loss vs time", xlabel="seconds", ylabel="loss",
        hlines=[{"label": "L_ff", "y": 25}],
    )  # fmt: skip
    root = _parse(svg)
    texts = _texts(root)
    assert "L-BFGS <fast>" in texts and "Adam & co" in texts and "loss vs time" in texts
    paths = [p for p in root.iter(f"{SVG}path")]
    assert len(paths) == 2 and paths[1].get("stroke-dasharray") == "6,4"
    # The first series falls monotonically: its y pixel coordinates grow (SVG's y points down).
    ys = [float(v) for v in re.findall(r"[ML][\d.]+,([\d.]+)", paths[0].get("d"))]
    assert ys == sorted(ys) and len(ys) == 3
    # Points equally spaced in log x are equally spaced on the page.
    xs = [float(v) for v in re.findall(r"[ML]([\d.]+),", paths[0].get("d"))]
    assert math.isclose(xs[1] - xs[0], xs[2] - xs[1], abs_tol=0.11)


def test_non_positive_values_are_dropped_on_log_axes_and_kept_on_linear_ones():
    series = [{"label": "a", "x": [0, 1, 2, 4], "y": [1, -1, 2, 3]}]
    log_path = _parse(line_plot(series, xlog=True, ylog=True)).find(f".//{SVG}path")
    assert log_path.get("d").count("L") + log_path.get("d").count("M") == 2  # (2, 2) and (4, 3)
    lin_path = _parse(line_plot(series)).find(f".//{SVG}path")
    assert lin_path.get("d").count("L") + lin_path.get("d").count("M") == 4


@pytest.mark.parametrize("corner", ["upper right", "lower left"])
def test_legend_goes_to_the_corner_asked_for(corner):
    svg = line_plot([{"label": "a", "x": [1, 2], "y": [1, 2]}], legend=corner, width=500, height=300)
    box = [r for r in _parse(svg).iter(f"{SVG}rect") if r.get("stroke") == "#ccc"][0]
    x, y = float(box.get("x")), float(box.get("y"))
    assert (x > 250) == corner.endswith("right") and (y < 150) == corner.startswith("upper")


def test_bad_input_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="different lengths"):
        line_plot([{"label": "a", "x": [1, 2], "y": [1]}])
    with pytest.raises(ValueError, match="nothing to plot"):
        line_plot([{"label": "a", "x": [0, -1], "y": [1, 2]}], xlog=True)
    with pytest.raises(ValueError, match="corner"):
        line_plot([{"label": "a", "x": [1], "y": [1]}], legend="middle")


def test_crop_sheet_enlarges_the_same_busy_window_of_every_image():
    import torch

    flat = torch.full((1, 3, 40, 40), 0.5)
    busy = flat.clone()
    busy[..., 20:30, 24:34] = torch.rand(1, 3, 10, 10)  # the detail is here
    darker = busy * 0.5
    sheet = crop_sheet([("a", {"model": darker, "HR": busy})], crop=8, zoom=2)
    assert sheet.size == (2 * (16 + 6) + 6, 16 + 6 + 18 + 6)
    # The crop of the busy image holds its detail (not the flat grey), and the other cell the same window.
    left = sheet.crop((6 + 22, 6 + 18, 6 + 22 + 16, 6 + 18 + 16))
    right_values = {left.getpixel((x, y)) for x in range(16) for y in range(16)}
    assert len(right_values) > 4
    model = sheet.crop((6, 6 + 18, 6 + 16, 6 + 18 + 16))
    import numpy as np

    a, b = np.asarray(model, dtype=int), np.asarray(left, dtype=int)
    assert np.abs(2 * a - b).max() <= 2
