"""The method contract: a registry entry with a config dataclass, `apply` and optional `merge`.

Importing this module (and the registry of built-ins, `methods.specs`) needs neither torch nor
peft: commands that train nothing check a run's method and options without them. The entries'
callables are `Lazy` names of functions in the implementation modules, imported on first call. The
torch helpers methods share live in `methods.modules`; they are importable from here too (plugins
written against `from alore_bench.methods.base import freeze` keep working)."""

from __future__ import annotations

from dataclasses import dataclass
import importlib
from typing import TYPE_CHECKING, Any, Callable, Dict, Mapping, Optional, Union

from ..config import config_from_dict, config_to_dict, parse_opts
from ..errors import param
from ..registry import Registry, entries_of

if TYPE_CHECKING:
    from torch import nn


class Lazy:
    """A callable named `package.module:function`, imported on its first call: registry entries can
    name their torch code without importing it."""

    def __init__(self, target: str):
        module, sep, attribute = target.partition(":")
        if not sep or not module or not attribute:
            raise ValueError(f"Lazy({target!r}): name the callable as 'package.module:function'")
        self.target = target
        self._resolved: Optional[Callable[..., Any]] = None

    def resolve(self) -> Callable[..., Any]:
        if self._resolved is None:
            module, _sep, attribute = self.target.partition(":")
            self._resolved = getattr(importlib.import_module(module), attribute)
        return self._resolved

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Lazy) and other.target == self.target

    def __hash__(self) -> int:
        return hash(self.target)

    def __repr__(self) -> str:
        return f"Lazy({self.target!r})"

    def __getstate__(self) -> Dict[str, Any]:
        return {"target": self.target, "_resolved": None}


@dataclass(frozen=True)
class MethodSpec:
    """One adaptation method.

    `apply(model, config)` adapts a backbone in place and returns it with only the method's own
    parameters and the classifier head trainable. `merge(model)`, where present, folds the
    method into the frozen weights and returns a plain backbone with identical logits.
    """

    name: str
    config_cls: type
    apply: Callable[[nn.Module, Any], nn.Module]
    paper: str
    summary: str
    merge: Optional[Callable[[nn.Module], nn.Module]] = None
    # Whether the adapted model computes exactly the backbone's function before training
    # (false where the paper's initialisation is not an identity, e.g. SSF, or prompts are added);
    # a callable of the config where an option decides it (LoRA's `init`).
    identity_at_init: Union[bool, Callable[[Any], bool]] = True
    # How the model is put into training mode each epoch; None is model.train(). VPT's official
    # training keeps the frozen backbone in eval mode (no drop-path, no dropout in it).
    train_mode: Optional[Callable[[nn.Module], None]] = None
    # Train only the head on features of the frozen backbone, computed once and cached (alore_bench.probe).
    feature_probe: bool = False
    # The name tables print (reports: `--name` overrides it).
    display: str = ""
    # The paper's budget formula: trainable parameters without the head, from the unadapted model
    # and the config (`alore-bench validate method` compares it with the adapted model).
    budget: Optional[Callable[[nn.Module, Any], int]] = None

    @property
    def display_name(self) -> str:
        return self.display or self.name

    def set_train_mode(self, model: nn.Module) -> None:
        if self.train_mode is None:
            model.train()
        else:
            self.train_mode(model)

    def starts_as_backbone(self, config: Any) -> bool:
        """Whether `apply(model, config)` computes the backbone's function before any training."""
        if callable(self.identity_at_init):
            return bool(self.identity_at_init(config))
        return self.identity_at_init

    @property
    def mergeable(self) -> bool:
        return self.merge is not None

    def default_config(self) -> Any:
        return self.config_cls()

    def config_from_opts(self, opts: list[str]) -> Any:
        return parse_opts(self.config_cls, opts, f"{param('options')} (method {self.name})")

    def config_from_dict(self, data: Mapping[str, Any]) -> Any:
        return config_from_dict(self.config_cls, data, f"method {self.name} config")

    def config_to_dict(self, config: Any) -> Dict[str, Any]:
        return config_to_dict(config)

    def config_for_task(self, config: Any, task: str) -> Any:
        """Per-task settings a config may carry (e.g. VPT's prompt lengths); the config itself otherwise."""
        for_task = getattr(config, "for_task", None)
        return for_task(task) if for_task is not None else config


METHODS: Registry[MethodSpec] = Registry("method", param("method"), group="alore_bench.methods",
                                          adapt=entries_of(MethodSpec))


# The torch helpers of `methods.modules`, importable from here as they always were.
_MODULE_HELPERS = ("eval_except", "freeze", "train_head", "head_parameter_count", "trainable_parameter_count",
                   "total_parameter_count", "replace_submodule", "copy_linear", "fold_input_affine",
                   "trainable_state", "save_adapter", "load_adapter", "merge_modules")


def __getattr__(name: str) -> Any:
    if name in _MODULE_HELPERS:
        from . import modules

        return getattr(modules, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
