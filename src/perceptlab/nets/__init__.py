"""Networks perceptlab trains: super-resolution networks (a registry), the style transformation net, discriminators."""

from perceptlab.nets.discriminators import PatchDiscriminator
from perceptlab.nets.style import JohnsonStyleNet
from perceptlab.nets.sr import (
    SR_NETS,
    SplitKernelConv2d,
    SRGANDiscriminator,
    SRNetInfo,
    build_sr_net,
    list_sr_nets,
    register_sr_net,
)

__all__ = [
    "SR_NETS", "JohnsonStyleNet", "PatchDiscriminator", "SRGANDiscriminator", "SRNetInfo", "SplitKernelConv2d",
    "build_sr_net", "list_sr_nets", "register_sr_net",
]  # fmt: skip
