"""perceptlab: perceptual losses, perceptual metrics and the networks trained with them.

Every image argument is an NCHW float tensor in ``[0, 1]``; feature networks
apply their own normalisation inside.
"""

__version__ = "0.1.0"
