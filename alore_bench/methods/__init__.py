"""Method registry. Importing this package registers every built-in method (`methods.specs`, without
torch or peft; each method's torch code is imported when it is first applied)."""

from .base import METHODS, MethodSpec
from . import specs  # noqa: F401  (registration side effects)

__all__ = ["METHODS", "MethodSpec"]
