"""VPT-Shallow and VPT-Deep: options and registry entries; the modules are in `methods.vpt`."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ...config import doc
from ...errors import UserError
from ..base import METHODS, Lazy, MethodSpec


@dataclass(frozen=True)
class VPTConfig:
    length: int = doc("number of prompt tokens", default=10)
    dropout: float = doc("dropout on the prompt tokens during training (official: 0.0)", default=0.0)
    task_lengths: str = doc("per-task prompt lengths overriding `length`, as VPT tunes them, e.g. "
                            "'cifar100:100,dtd:1'", default="")

    def validate(self) -> None:
        if self.length < 1:
            raise UserError(f"VPT length must be at least 1, got {self.length}")
        self.lengths()

    def lengths(self) -> dict:
        out = {}
        for item in filter(None, (part.strip() for part in self.task_lengths.split(","))):
            task, sep, value = item.partition(":")
            if not sep or not value.strip().isdigit() or int(value) < 1:
                raise UserError(f"VPT task_lengths {item!r}: expected task:length with a positive length")
            out[task.strip()] = int(value)
        return out

    def for_task(self, task: str) -> "VPTConfig":
        """The config a run on `task` uses: its own prompt length when one is given."""
        return replace(self, length=self.lengths().get(task, self.length))

METHODS.register("vpt_shallow", MethodSpec(
    name="vpt_shallow", display="VPT-Shallow", config_cls=VPTConfig, apply=Lazy("alore_bench.methods.vpt:apply_vpt_shallow"), identity_at_init=False,
    train_mode=Lazy("alore_bench.methods.vpt:train_prompts_only"),
    paper="Jia et al. 2022, Visual Prompt Tuning (ECCV)", summary="prompt tokens at the input of the first block"))

METHODS.register("vpt_deep", MethodSpec(
    name="vpt_deep", display="VPT-Deep", config_cls=VPTConfig, apply=Lazy("alore_bench.methods.vpt:apply_vpt_deep"), identity_at_init=False,
    train_mode=Lazy("alore_bench.methods.vpt:train_prompts_only"),
    paper="Jia et al. 2022, Visual Prompt Tuning (ECCV)", summary="new prompt tokens before every block"))
