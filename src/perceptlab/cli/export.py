"""``perceptlab export MODEL -o FILE.onnx [--opset N] [--dynamic | --static WxH]``: a model as ONNX."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from perceptlab.export import DEFAULT_OPSET


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="export an SR, style, codec or DeePSiM model to ONNX",
        description="Write a model as ONNX, to run it with onnxruntime or another ONNX runtime: float32 RGB in "
                    "[0, 1], NCHW, batch 1. SR: lr (1, 3, h, w) -> sr (1, 3, s h, s w), not clamped. Style: image "
                    "-> stylized, the same size, in (0, 1). Codec: two files, FILE.analysis.onnx (image -> latent "
                    "y, and z for the hyperprior) and FILE.synthesis.onnx (quantised y -> image); quantisation and "
                    "entropy coding stay in perceptlab. DeePSiM: an autoencoder or VAE, image -> reconstruction "
                    "(sides multiples of its code's stride); an inverter with its comparator, image -> inverted. "
                    "The model's metadata (task, net, scale or style, steps, "
                    "configuration, the model card's summary) is stored in the file's metadata_props. Needs "
                    'pip install "perceptlab[onnx]".',
    )  # fmt: skip
    p.add_argument("model", metavar="MODEL",
                   help="a shipped model (list them with `perceptlab models`), a model.safetensors, "
                        "checkpoint.pt or run folder")  # fmt: skip
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.onnx", help="the ONNX file to write")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX operator set (default {DEFAULT_OPSET}; the exporter's own are {DEFAULT_OPSET} and "
                        "up, lower ones only where its converter manages)")  # fmt: skip
    shape = p.add_mutually_exclusive_group()
    shape.add_argument("--dynamic", action="store_true", help="any height and width (the default)")
    shape.add_argument("--static", type=_size, metavar="WxH",
                       help="a fixed input width and height instead, e.g. 512x512 (a codec: the image's, "
                            "multiples of its stride)")  # fmt: skip
    p.set_defaults(run=run)


def _size(text: str) -> tuple[int, int]:
    """``"WxH"`` as (height, width)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 512x384, got {text!r}") from None
    if min(width, height) < 1:
        raise argparse.ArgumentTypeError(f"width and height must be positive, got {text!r}")
    return height, width


def load_model(spec: str):
    """``(network, metadata)`` for a shipped name, model file, checkpoint or run folder of any task."""
    from perceptlab.codec.models import load_codec_model, shipped_codec_models
    from perceptlab.deepsim.models import load_deepsim_model, shipped_deepsim_models
    from perceptlab.export import model_metadata
    from perceptlab.sr.models import load_sr_model, shipped_sr_models
    from perceptlab.style.models import load_style_model, shipped_style_models
    from perceptlab.training import resolve_model_file

    loaders = {"sr": load_sr_model, "style": load_style_model, "codec": lambda s: load_codec_model(s).net,
               "deepsim": load_deepsim_model}  # fmt: skip
    shipped = {**shipped_sr_models(), **shipped_style_models(), **shipped_codec_models(), **shipped_deepsim_models()}
    path = resolve_model_file(spec, shipped, "SR, style, codec or DeePSiM")
    metadata = model_metadata(path)
    task = metadata.get("task")
    if task in loaders:
        return loaders[task](spec), metadata
    if path.suffix != ".pt":
        raise ValueError(f"{path}: not a model written by perceptlab (its metadata names no task)")
    # A checkpoint says its task only through its configuration, which each loader recognises.
    for task in ("style", "codec", "deepsim"):
        try:
            net = loaders[task](str(path))
        except ValueError:
            continue
        return net, metadata | {"task": task}
    return load_sr_model(str(path)), metadata | {"task": "sr"}


def run(args: argparse.Namespace) -> int:
    from perceptlab._files import check_output_file
    from perceptlab.export import export_onnx, require_onnx

    if args.output.suffix.lower() != ".onnx":
        raise ValueError(f"{args.output}: name the output FILE.onnx")
    check_output_file(args.output)
    require_onnx()
    net, metadata = load_model(args.model)
    options = {"dynamic": True} if args.static is None else {"dynamic": False, "size": args.static}
    info = export_onnx(net, args.output, opset=args.opset, metadata=metadata, **options)
    shape = "dynamic height and width" if info["dynamic"] else "{1}x{0} input".format(*info["input_size"])
    for file, graph in info["graphs"].items():
        print(f"{args.model} -> {file} (ONNX opset {info['opset']}, {shape}; {graph['signature']})", file=sys.stderr)
    return 0
