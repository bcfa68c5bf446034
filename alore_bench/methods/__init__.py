"""Method registry. Importing this package registers every built-in method."""

from .base import METHODS, MethodSpec
from . import alore, basic, lora  # noqa: F401  (registration side effects)

__all__ = ["METHODS", "MethodSpec"]
