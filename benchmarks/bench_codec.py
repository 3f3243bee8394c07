"""Learned codec speed: encode and decode MP/s on Kodak, and the share of the entropy coder (issue 16).

    python benchmarks/bench_codec.py --threads 1 --model ~/perceptlab-runs/compression/bls2017_q3
    python benchmarks/bench_codec.py --quick          # a random-weight model, two small images

For each image: ``perceptlab.codec.compress`` and ``decompress`` whole (the
file's bytes in, the image out), and their transforms alone (the analysis
transform, and the hyper-analysis, for encoding; the synthesis for decoding;
for the hyperprior, both also run the hyper-synthesis, in integers, to choose
the tables), timed round-robin with ``harness.interleaved``. Everything else
in a call (range coding, the table look-ups, the header) is the coder's share:
``1 - transforms / whole``; the integer hyper-synthesis's own share is reported
beside it. Targets (issue 16): decode >= 1 MP/s on our
2 cores, entropy coding < 10 % of the time. A model with random weights codes
symbols of other statistics than a trained one: its coder share is only a
check that the script runs.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import harness
import torch

from perceptlab.codec import compress, decompress, load_codec_model
from perceptlab.codec.bitstream import pad

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"


def _random_model():
    from perceptlab.codec.model import CodecModel

    torch.manual_seed(0)
    model = CodecModel("bls2017").eval()
    model.build_tables()
    model.name = "random_bls2017"
    return model


def main(argv=None) -> int:
    parser = harness.build_parser(__doc__.splitlines()[0])
    parser.add_argument("--model", help="a codec run folder or model.safetensors (default: random weights)")
    parser.add_argument("--images", type=int, default=4, help="how many Kodak images (default 4)")
    args = harness.parse_args(parser, argv)
    env = harness.environment()
    model = load_codec_model(args.model) if args.model else _random_model()
    from perceptlab.io import read_image

    paths = sorted(KODAK.glob("*.png"))[: 2 if args.quick else args.images]
    if not paths:
        print(f"no Kodak images in {KODAK}", file=sys.stderr)
        return 1
    repeat = 2 if args.quick else 5
    rows, table = [], []
    for path in paths:
        x = read_image(path)
        if args.quick:
            x = x[..., :128, :192]
        pixels = x.shape[-2] * x.shape[-1] / 1e6
        data = compress(model, x)
        padded = pad(x, model.stride)
        with torch.no_grad():
            y_hat = model.symbols(padded)["y"]
        if not model.hyper:
            y_hat = y_hat.float() + model._medians()[:, None, None]

        def analysis():
            with torch.no_grad():
                y = model.net.analysis(padded)
                return model.net.hyper_analysis(y) if model.hyper else y

        def synthesis():
            with torch.no_grad():
                return model.net.synthesis(y_hat.float()[None])

        calls = {"encode": lambda: compress(model, x), "decode": lambda: decompress(data, model),
                 "analysis": analysis, "synthesis": synthesis}  # fmt: skip
        if model.hyper:  # the integer hyper-synthesis that picks each symbol's table, in encoder and decoder
            z_hat = model.symbols(padded)["z"]
            calls["hyper_synthesis"] = lambda: model.scale_indices(z_hat)

        # Round-robin, so that load from other jobs hits the whole calls and their transforms alike;
        # the coder's share is taken round by round (paired), then the median.
        timed = harness.interleaved(calls, warmup=2, repeat=repeat)
        med = {k: v["median_s"] for k, v in timed.items()}
        hyper = ["hyper_synthesis"] if model.hyper else []

        def share(parts: list[str], whole: str, rest: bool = True) -> float:
            rounds = zip(*(timed[p]["times_s"] for p in parts), timed[whole]["times_s"], strict=True)
            return statistics.median((1 - sum(r[:-1]) / r[-1]) if rest else sum(r[:-1]) / r[-1] for r in rounds)

        row = {"image": path.name, "megapixels": pixels, "bytes": len(data), "bpp": 8 * len(data) / (pixels * 1e6),
               "timings_s": timed,
               "encode_mp_per_s": pixels / med["encode"], "decode_mp_per_s": pixels / med["decode"],
               "coder_share_encode": share(["analysis", *hyper], "encode"),
               "coder_share_decode": share(["synthesis", *hyper], "decode"),
               "hyper_synthesis_share_decode": share(hyper, "decode", rest=False) if hyper else 0.0}  # fmt: skip
        rows.append(row)
        table.append([path.name, row["bpp"], row["encode_mp_per_s"], row["decode_mp_per_s"],
                      row["coder_share_encode"], row["coder_share_decode"], row["hyper_synthesis_share_decode"]])  # fmt: skip
    harness.print_table(["image", "bpp", "encode MP/s", "decode MP/s", "coder share enc", "coder share dec",
                         "int h_s share dec"], table)  # fmt: skip
    summary = {k: statistics.median(r[k] for r in rows) for k in ("encode_mp_per_s", "decode_mp_per_s",
               "coder_share_encode", "coder_share_decode", "hyper_synthesis_share_decode")}  # fmt: skip
    path = harness.write_result("codec", {
        "model": args.model or "random weights (bls2017, N=64, M=96): coder share not representative",
        "arch": model.arch, "N": model.N, "M": model.M, "threads": torch.get_num_threads(),
        "method": "harness.interleaved round-robin over the calls (2 warm-up rounds, then at least 5 timed); "
                  "coder share = median over rounds of 1 - transforms' time / whole call, the transforms being "
                  "the analysis and hyper-analysis (encode) or the synthesis (decode), and for the hyperprior "
                  "the integer hyper-synthesis in both (its own share of a decode reported beside); images read "
                  "whole, padded to the model's stride",
        "rows": rows, "median_over_images": summary}, env)  # fmt: skip
    print(f"median: encode {summary['encode_mp_per_s']:.2f} MP/s, decode {summary['decode_mp_per_s']:.2f} MP/s, "
          f"coder share {summary['coder_share_encode']:.0%} / {summary['coder_share_decode']:.0%} (integer "
          f"hyper-synthesis {summary['hyper_synthesis_share_decode']:.0%} of a decode); wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
