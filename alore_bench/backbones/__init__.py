"""Backbone registry. Importing this package registers every built-in backbone."""

from .base import BACKBONES, BackboneSpec, WeightSource
from . import vit  # noqa: F401  (registration side effects)

__all__ = ["BACKBONES", "BackboneSpec", "WeightSource"]
