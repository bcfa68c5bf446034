"""The names of attachment sites, without torch: method options (`sites=attn`) are checked with them
before any model exists. The sites themselves are found in `backbones.sites`."""

from typing import Literal

SiteKind = Literal["attn", "mlp"]
SiteChoice = Literal["both", "attn", "mlp"]
