"""Neural-network building blocks and the dependence measures of mddAE."""

from .blocks import ConvDecoder, ConvEncoder
from .dependence import dcov2, xcov

__all__ = ["ConvDecoder", "ConvEncoder", "dcov2", "xcov"]
