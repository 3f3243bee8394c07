"""Networks perceptlab trains: super-resolution networks (a registry), the style transformation net,
discriminators (:mod:`.discriminators`), and the layers they share (:mod:`.layers`)."""

from perceptlab.nets.discriminators import PatchDiscriminator, SRGANDiscriminator
from perceptlab.nets.layers import SplitKernelConv2d
from perceptlab.nets.sr import SR_NETS, SRNetInfo, build_sr_net, list_sr_nets, register_sr_net
from perceptlab.nets.style import JohnsonStyleNet

__all__ = [
    "SR_NETS", "JohnsonStyleNet", "PatchDiscriminator", "SRGANDiscriminator", "SRNetInfo", "SplitKernelConv2d",
    "build_sr_net", "list_sr_nets", "register_sr_net",
]  # fmt: skip
