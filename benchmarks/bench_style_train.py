"""One style training step: the content targets' VGG pass to the deepest content layer only, against the whole pass.

Run ``python benchmarks/bench_style_train.py [--quick] [--threads N] [--tag TAG]``; writes
``benchmarks/results/style_train.json``. The step of ``perceptlab.style.train_style`` as the shipped
recipes run it (``JohnsonStyleNet`` with nearest upsampling, batch 4 of 256 px crops, the loss with the
grid penalty, the loss network in bf16 where the CPU has bf16 units, else fp32, Adam), timed round-robin
two ways: as shipped (``StyleTransferLoss.content_targets`` runs VGG-16 to relu2_2, the content layer)
and as before (the content pass to relu4_3, the deepest style layer). ``speedup`` is the median over rounds
of (whole-pass step time / shipped step time) in the same round, so load that drifts between rounds cancels.
"""

from __future__ import annotations

import statistics
import sys

import harness
import torch

from perceptlab.features.base import native_bf16
from perceptlab.nets.style import JohnsonStyleNet
from perceptlab.style import StyleTransferLoss


def main(argv=None) -> int:
    args = harness.parse_args(harness.build_parser(__doc__.splitlines()[0]), argv)
    env = harness.environment()
    side, batch, repeat = (64, 2, 2) if args.quick else (256, 4, 5)
    precision = "bf16" if native_bf16() else "fp32"
    torch.manual_seed(0)
    style = torch.rand(1, 3, side, side)
    loss = StyleTransferLoss(style, precision=precision, grid_weight=100.0, vgg_weights=None if args.quick else "vgg16")
    net = JohnsonStyleNet(upsample="nearest")
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    x = torch.rand(batch, 3, side, side)

    def whole_pass(content: torch.Tensor) -> dict:
        with torch.no_grad():
            features = loss.net(content)
        return {name: features[name] for name in loss.content_layers}

    def step(before: bool) -> None:
        if before:  # the content pass as before (the grid term still sees the photo)
            loss.content_targets = whole_pass
        try:
            parts = loss(net(x), x)
        finally:
            if before:
                del loss.content_targets
        optimizer.zero_grad(set_to_none=True)
        parts["loss"].backward()
        optimizer.step()

    timed = harness.interleaved({"shipped": lambda: step(False), "whole_pass": lambda: step(True)},
                                warmup=1, repeat=repeat)  # fmt: skip
    pairs = zip(timed["whole_pass"]["times_s"], timed["shipped"]["times_s"], strict=True)
    speedup = statistics.median(w / s for w, s in pairs)
    path = harness.write_result("style_train", {
        "side": side, "batch": batch, "vgg_precision": precision, "content_layers": list(loss.content_layers),
        "style_layers": list(loss.style_layers), "timings_s": timed, "speedup": speedup,
        "method": "harness.interleaved round-robin (1 warm-up round); speedup = median over rounds of whole-pass "
                  "step time / shipped step time"}, env)  # fmt: skip
    print(f"step {timed['shipped']['median_s']:.2f} s as shipped, {timed['whole_pass']['median_s']:.2f} s with the "
          f"whole content pass: {speedup:.3f}x; wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
