"""The built-in methods' options and registry entries, importable without torch or peft: commands
that train nothing (`study plan`, `validate study`, every check before training) use them as `run`
does. Each module mirrors an implementation module of `alore_bench.methods`."""

from . import adapters, alore, arc, basic, fact, kadaptation, lora, peft_types, repadapter, rlrr, ssf, vpt  # noqa: F401
