"""Backbone registry. Importing this package registers every built-in backbone and `timm:<name>`."""

from .base import BACKBONES, BackboneSpec, WeightRelease, WeightSource
from . import vit, hierarchical, timm_any  # noqa: F401  (registration side effects)

__all__ = ["BACKBONES", "BackboneSpec", "WeightRelease", "WeightSource"]
