"""Method registry. Importing this package registers every built-in method."""

from .base import METHODS, MethodSpec
from . import adapters, alore, arc, basic, fact, kadaptation, lora, peft_generic, repadapter, rlrr, ssf, vpt  # noqa: F401  (registration side effects)

__all__ = ["METHODS", "MethodSpec"]
