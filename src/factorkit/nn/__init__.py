"""Neural-network building blocks and the dependence measures of mddAE."""

from .blocks import ConvDecoder, ConvEncoder

__all__ = ["ConvDecoder", "ConvEncoder"]
