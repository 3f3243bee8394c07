"""Networks perceptlab trains: discriminators (more to come: SR and style transformation nets)."""

from perceptlab.nets.discriminators import PatchDiscriminator

__all__ = ["PatchDiscriminator"]
