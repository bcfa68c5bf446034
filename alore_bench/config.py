"""Config dataclasses: JSON round trips, `--opt key=value` parsing and the training recipe."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Literal, Mapping, Type, TypeVar

from .errors import UserError, param, unknown_name_error

C = TypeVar("C")


def doc(help_text: str, added_later: bool = False, **kwargs: Any) -> Any:
    """A dataclass field with help text (shown by `alore-bench list methods --options`).
    `added_later`: a recipe field added after records existed, whose default is the behaviour
    those records had; at its default it stays out of the configuration's identity, so adding it
    keeps every earlier record's hash."""
    return field(metadata={"help": help_text, "added_later": added_later}, **kwargs)


def config_to_dict(config: Any) -> Dict[str, Any]:
    return dataclasses.asdict(config)


def allowed_values(annotation: Any) -> str:
    """What a field accepts, as `list methods --options` shows it: the choices of a Literal, else
    the type (with 'or none' for Optional)."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " | ".join(map(str, typing.get_args(annotation)))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return f"{allowed_values(args[0])} | none"
    names = {bool: "true | false", int: "integer", float: "number", str: "text"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check and convert one value to a field's annotated type (str, int, float, bool, Literal)."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        choices = typing.get_args(annotation)
        for choice in choices:
            if value == choice or (isinstance(value, str) and str(choice) == value):
                return choice
        raise UserError(f"{where}: {value!r} is not one of {', '.join(map(repr, choices))}")
    if origin in (typing.Union, types.UnionType):  # Optional[X], X | None
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None or value == "none":
            return None
        return _coerce(value, args[0], where)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        raise UserError(f"{where}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise UserError(f"{where}: expected an integer, got {value!r}")
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise UserError(f"{where}: expected an integer, got {value!r}") from None
        if not as_float.is_integer():
            raise UserError(f"{where}: expected an integer, got {value!r}")
        if abs(as_float) >= 2**31:  # past what torch and numpy take as a size or a count
            raise UserError(f"{where}: {value!r} is too large; give an integer below 2^31")
        return int(as_float)
    if annotation is float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise UserError(f"{where}: expected a number, got {value!r}") from None
        if not math.isfinite(number):  # nan / inf would train to a failed run, or worse, not fail
            raise UserError(f"{where}: expected a finite number, got {value!r}")
        return number
    if annotation is str:
        return str(value)
    raise TypeError(f"unsupported config field type {annotation!r}")


def config_from_dict(cls: Type[C], data: Mapping[str, Any], where: str = "config", options: bool = False) -> C:
    """Build a config dataclass from a mapping, rejecting unknown keys and wrong types (with
    `options`, messages name each key as a field, which the command line shows as its flag)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    values = {}
    for key, value in data.items():
        if key not in fields:
            raise unknown_name_error("option", key, fields, where)
        label = f"{where} {param(key) if options else key}"
        values[key] = _coerce(value, hints[key], label)
    try:
        config = cls(**values)
        validate = getattr(config, "validate", None)
        if validate is not None:
            validate()
    except UserError as error:  # a method's check: say where its values came from (`--opt (method lora)`)
        if options or error.template.startswith(where):  # the recipe's messages name their fields already
            raise
        raise UserError(f"{where}: {error.template}") from None
    return config


def parse_opts(cls: Type[C], opts: Iterable[str], where: str = param("options")) -> C:
    """Parse repeated `key=value` strings into a validated config of type `cls`."""
    data: Dict[str, str] = {}
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{where} {opt!r}: expected key=value, e.g. rank=4")
        data[key.strip()] = value.strip()
    return config_from_dict(cls, data, where)


def field_help(cls: type) -> Dict[str, str]:
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def stable_hash(data: Any, length: int = 10) -> str:
    """A short content hash of JSON-able data, independent of key order."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


MAX_EPOCHS = 10000  # see TrainConfig.validate


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation recipe. Defaults follow the VTAB-1k PETL literature (see README)."""

    epochs: int = doc("training epochs", default=100)
    batch_size: int = doc("batch size", default=64)
    lr: float = doc("peak learning rate", default=1e-3)
    weight_decay: float = doc("weight decay (not applied to biases, norms and position embeddings)", default=1e-4)
    optimizer: Literal["adamw", "sgd"] = doc("adamw, or sgd with momentum (VPT's)", added_later=True, default="adamw")
    momentum: float = doc("momentum of sgd", added_later=True, default=0.9)
    warmup_epochs: int = doc("linear warmup epochs, from warmup_lr", default=10)
    warmup_lr: float = doc("learning rate at the start of warmup", default=1e-6)
    min_lr: float = doc("learning rate at the end of the cosine decay", default=1e-5)
    lr_step: Literal["iteration", "epoch", "epoch_behind"] = doc(
        "when the learning rate changes: every iteration, once per epoch (epoch k at the schedule's "
        "point k: VPT, timm's train.py), or once per epoch a step behind (epoch k at point k-1, the first "
        "two at the warm-up's start: NOAH, FacT, RepAdapter, RLRR call scheduler.step(epoch) after epoch "
        "`epoch`)", added_later=True, default="iteration")
    warmup_inside: bool = doc(
        "the warm-up replaces the first epochs of a cosine over all `epochs` (timm's warmup_prefix=False: "
        "NOAH, FacT, RepAdapter, SSF, RLRR) instead of preceding a cosine over the rest",
        added_later=True, default=False)
    cooldown_epochs: int = doc("epochs at min_lr after the schedule's `epochs` (timm's --cooldown-epochs)",
                               added_later=True, default=0)
    drop_path: float = doc("stochastic depth rate on the backbone", default=0.1)
    dropout: float = doc("dropout on the backbone's embeddings, attention projections and MLPs (timm's "
                         "pos_drop, attn.proj_drop, mlp.drop1/drop2; VPT's fine-tuned ViT: 0.1)",
                         added_later=True, default=0.0)
    ema_decay: float = doc("model EMA (timm's ModelEmaV3) of the weights after every step, evaluated instead "
                           "of the trained weights (SSF's --model-ema); 0: off", added_later=True, default=0.0)
    train_crop: Literal["protocol", "random_resized"] = doc(
        "training crops: the suite's (FGVC: random 224 crop of the 256-px image and flip; VTAB-1k: none), or "
        "random resized crops (scale 0.08-1, aspect 3/4-4/3) resized to the input size, with flips "
        "(SSF's --simple-aug)", added_later=True, default="protocol")
    flip: bool = doc("random horizontal flip of fixed-size training images (RLRR's simple_aug); FGVC's "
                     "random crops already flip", added_later=True, default=False)
    grad_clip: float = doc("clip the total gradient norm to this value before each step (0: no clipping)",
                           added_later=True, default=0.0)
    head_init: Literal["timm", "zero", "vpt"] = doc(
        "the new classifier head's start: timm (the architecture's own init), zero (weights and bias 0, "
        "as ARC), vpt (kaiming-normal fan-out weights and bias -log(99), VPT's MLP head)",
        added_later=True, default="timm")
    stage: Literal["final", "tune"] = doc(
        "final: train on the suite's final training split, evaluate on test (VTAB-1k: train800val200 -> "
        "test); tune: evaluate on the validation split instead (VTAB-1k: train800 -> val200)",
        default="final",
    )
    protocol: Literal["auto", "vpt", "noah", "native"] = doc(
        "input-pipeline preset (normalisation, resize, expected data source): auto (the one the prepared "
        "data's source implies, resolved before a run and recorded), vpt (TFDS, ImageNet mean/std, bilinear), "
        "noah (pre-made folders, ImageNet mean/std, bicubic) or native (the backbone's own)",
        default="native")
    normalisation: Literal["protocol", "backbone", "imagenet", "half"] = doc(
        "input normalisation: the protocol's, the backbone's own mean/std, ImageNet's, or 0.5/0.5",
        default="protocol")
    compile: bool = doc("torch.compile the model for training and evaluation (worth it on GPUs for long runs)",
                        default=False)

    def validate(self) -> None:
        # The upper limits are far past any published recipe (VTAB-1k: 100 epochs, batch 64-384, VPT's
        # largest scaled lr 50): a value beyond them is a typo that would run for days or diverge.
        for name, most in (("epochs", MAX_EPOCHS), ("batch_size", 65536)):
            if not 1 <= getattr(self, name) <= most:
                raise UserError(f"{param(name)} must lie in [1, {most}], got {getattr(self, name)}")
        if not 0 < self.lr <= 1000:
            raise UserError(f"{param('lr')} must lie in (0, 1000], got {self.lr}")
        if not 0 <= self.weight_decay <= 10:
            raise UserError(f"{param('weight_decay')} must lie in [0, 10], got {self.weight_decay}")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise UserError(f"warmup_epochs must lie in [0, epochs], got {self.warmup_epochs}")
        if not 0 <= self.drop_path < 1:
            raise UserError(f"drop_path must lie in [0, 1), got {self.drop_path}")
        if not 0 <= self.dropout < 1:
            raise UserError(f"dropout must lie in [0, 1), got {self.dropout}")
        if not 0 <= self.ema_decay < 1:
            raise UserError(f"ema_decay must lie in [0, 1) (0: off), got {self.ema_decay}")
        if not 0 <= self.cooldown_epochs <= MAX_EPOCHS:
            raise UserError(f"cooldown_epochs must lie in [0, {MAX_EPOCHS}], got {self.cooldown_epochs}")
        if not 0 <= self.momentum < 1:
            raise UserError(f"momentum must lie in [0, 1), got {self.momentum}")
        if self.grad_clip < 0:
            raise UserError(f"grad_clip must be 0 (off) or positive, got {self.grad_clip}")


def make_train_config(*layers: Mapping[str, Any]) -> TrainConfig:
    """Merge recipe layers (later wins; None values are ignored) into a validated TrainConfig."""
    merged: Dict[str, Any] = {}
    set_in: Dict[str, int] = {}  # the last layer that set each key
    recipe_epochs = None  # the first layer's epochs: the length the recipe's warm-up was made for
    for index, layer in enumerate(layers):
        given = {k: v for k, v in layer.items() if v is not None}
        merged.update(given)
        set_in.update({k: index for k in given})
        if recipe_epochs is None and "epochs" in given:
            recipe_epochs = given["epochs"]
    if "epochs" in merged:
        warmup = merged.get("warmup_epochs", TrainConfig.warmup_epochs)
        shortened = recipe_epochs is not None and merged["epochs"] < recipe_epochs
        if shortened and set_in.get("warmup_epochs", -1) < set_in["epochs"]:
            # A shorter run than the recipe's (e.g. --epochs 5 on 100 epochs with 10 of warm-up)
            # keeps the warm-up's share of the run, so the cosine still decays (5 -> 1 epoch, rounded
            # half up); a warm-up given with the shorter length is kept as given.
            warmup = int(warmup * merged["epochs"] / recipe_epochs + 0.5)
        merged["warmup_epochs"] = min(warmup, merged["epochs"])
    return config_from_dict(TrainConfig, merged, "training recipe", options=True)
