"""One trial: a freshly seeded model of (spec, task, seed) built from the pretrained state, adapted
by the method, trained (or probed), merged where the method merges, evaluated, and described as a
record with every protocol choice that changes numbers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import torch

from ..backbones.base import load_state_dict_checked
from ..config import config_to_dict
from ..data.cache import SplitData, load_split
from ..data.loader import DeviceBatcher, resolve_normalisation
from ..engine import (EvalOutcome, PeakMemory, Progress, TrainCheckpoint, TrainingDiverged, evaluate, merge_and_check,
                      precision, train)
from ..env import seed_everything
from ..methods.base import head_parameter_count, save_adapter, total_parameter_count, trainable_parameter_count
from ..probe import FeatureCache, run_probe
from ..protocols import PROTOCOLS
from . import artifacts
from .phases import PhaseClock
from .hparams import Hparams, method_config_for, train_config_for
from .record import RECORD_SCHEMA, now_iso
from .spec import RunSpec


@dataclass(frozen=True)
class TrialInputs:
    """Everything a trial reads besides the spec: resolved once per job by the runner."""

    spec: RunSpec
    task: Any  # data.suites.Task
    seed: int
    hparams: Hparams
    config_hash: str
    pretrained: Mapping[str, torch.Tensor]
    weights: Any  # backbones.WeightSource
    fingerprint: Mapping[str, Any]
    splits: Tuple[SplitData, SplitData]
    env: Mapping[str, Any]
    clock: PhaseClock = field(default_factory=PhaseClock)  # the job's phases, marked as the trial goes


def augment_of(suite_augment: Optional[str], flip: bool, train_crop: str = "protocol") -> Optional[str]:
    """What a record says of training-time augmentation: the suite's, or the recipe's crops or flips."""
    if train_crop == "random_resized":
        return "random_resized_crop_flip"
    if flip and suite_augment is None:
        return "horizontal_flip"
    return suite_augment


def plugin_provenance(spec: RunSpec) -> Dict[str, Any]:
    """The plugins a run used (method, backbone, suite): distribution and version, or file and sha256."""
    from ..backbones import BACKBONES
    from ..data.suites import SUITES
    from ..methods import METHODS

    found = {"method": METHODS.provenance(spec.method), "backbone": BACKBONES.provenance(spec.backbone),
             "suite": SUITES.provenance(spec.suite)}
    return {kind: where for kind, where in found.items() if where}


def build_adapted_model(spec: RunSpec, task, pretrained: Mapping[str, torch.Tensor], method_config: Any,
                        drop_path: float, head_init: str = "timm", dropout: float = 0.0) -> tuple:
    model = artifacts.seeded_backbone(spec.backbone_spec, task.classes, drop_path, pretrained,
                                      lambda built, state: load_state_dict_checked(built, state, spec.backbone))
    backbone_total = total_parameter_count(model) - head_parameter_count(model)
    dropout_layers = set_backbone_dropout(model, dropout)
    model = spec.method_spec.apply(model, method_config)
    initialise_head(model, head_init)
    return model, backbone_total, dropout_layers


# The dropout layers of timm's transformer blocks and embeddings that its pos_drop_rate and
# proj_drop_rate set: where VPT's fine-tuned ViT drops (src/configs/vit_configs.py dropout_rate 0.1 on
# the embeddings, the attention output and both MLP layers; its attention dropout is 0).
DROPOUT_SITES = ("pos_drop", "attn.proj_drop", "mlp.drop1", "mlp.drop2")


def set_backbone_dropout(model, p: float) -> int:
    """Set the backbone's dropout rate (a built timm model has its layers at 0); the number of layers
    set, which the record keeps (a convolutional backbone has none: its run trains without dropout)."""
    if p <= 0:
        return 0
    found = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Dropout) and (name == "pos_drop" or name.endswith(DROPOUT_SITES[1:])):
            module.p = p
            found += 1
    return found


@torch.no_grad()
def initialise_head(model, kind: str) -> None:
    """The classifier head's start, after the method is applied (so `timm` draws nothing more):
    zero as ARC (vtab_ARC_train.py / FGVC_ARC_train.py setup(): zero_head=True, Model/ARC_ViT.py
    load_from zeroes head weight and bias), or VPT's MLP head (src/models/mlp.py lines 52-57:
    kaiming_normal_(a=0, mode='fan_out') and, with special_bias=True from vit_models.py setup_head,
    the bias -log((1 - 0.01) / 0.01))."""
    if kind == "timm":
        return
    head = model.get_classifier()
    if kind == "zero":
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)
    elif kind == "vpt":
        torch.nn.init.kaiming_normal_(head.weight, a=0, mode="fan_out")
        torch.nn.init.constant_(head.bias, -math.log((1 - 0.01) / 0.01))
    else:
        raise ValueError(f"unknown head_init {kind!r}")


def probe_task(inputs: TrialInputs, model, method_config: Any, config, batcher: DeviceBatcher,
               progress=None) -> Dict[str, Any]:
    """A linear probe of one (task, seed): features cached per backbone, weights, input pipeline and split."""
    spec, task = inputs.spec, inputs.task
    train_split, eval_split = spec.suite_spec.stage_splits(spec.stage)
    roles = {"train": (train_split, inputs.splits[0]), "eval": (eval_split, inputs.splits[1])}
    if method_config.solver == "lbfgs":  # the L2 strength is chosen on the suite's tuning stage, never on test
        tune_train, tune_eval = spec.suite_spec.stage_splits("tune")
        for role, name in (("tune_train", tune_train), ("tune_eval", tune_eval)):
            known = {n: d for n, d in roles.values()}
            roles[role] = (name, known[name] if name in known else load_split(spec.data_dir, task, name))
    identity = {"backbone": spec.backbone, "weights": inputs.weights.sha256 or inputs.weights.location,
                "normalisation": [batcher.scale.tolist(), batcher.shift.tolist()],
                "interpolation": batcher.interpolation, "antialias": batcher.antialias, "input_size": batcher.input_size}
    cache = FeatureCache(spec.data_dir, spec.suite, task.name, identity)
    return run_probe(model, method_config.solver, config, inputs.seed, task.classes, roles, cache, batcher, progress,
                     f"{task.name} s{inputs.seed}")


def preset_of(spec) -> Optional[Dict[str, Any]]:
    """The preset as recorded: name, source, hash, what it was published with, and where this run
    differs from that (absent when it does not)."""
    if spec.preset_spec is None:
        return None
    described = spec.preset_spec.describe()
    if spec.preset_differences:
        # run None: the backbone has no such release, so its default weights were used.
        described["differences"] = {key: {"published": published, "run": used if used is not None else "default"}
                                    for key, published, used in spec.preset_differences}
    return described


def base_record(inputs: TrialInputs, config, method_config) -> Dict[str, Any]:
    """The record before the trial: what runs, on what, under which protocol."""
    spec, task, backbone = inputs.spec, inputs.task, inputs.spec.backbone_spec
    train_split, eval_split = spec.suite_spec.stage_splits(config.stage)
    protocol = PROTOCOLS.get(config.protocol)
    norm = resolve_normalisation(protocol.normalisation if config.normalisation == "protocol" else config.normalisation,
                                 backbone.mean, backbone.std)
    device = torch.device(spec.device)
    return {
        "schema": RECORD_SCHEMA, "status": "running", "error": None, "created": now_iso(),
        "suite": spec.suite, "task": task.name, "group": task.group, "backbone": spec.backbone,
        "method": spec.method, "variant": spec.variant, "seed": inputs.seed, "config_hash": inputs.config_hash,
        "config": {"method": config_to_dict(spec.method_config), "train": config_to_dict(config),
                   "method_for_task": config_to_dict(method_config),
                   "preset": preset_of(spec),
                   "hparams": dict(inputs.hparams.describe)},
        "protocol": {
            "train_split": train_split, "eval_split": eval_split, "selection": "last_epoch",
            "augment": augment_of(spec.suite_spec.augment, config.flip, config.train_crop), "preset": protocol.describe(),
            "protocol_choice": spec.protocol_choice or config.protocol,
            "normalisation": norm.describe(), "input_size": backbone.input_size,
            "interpolation": protocol.interpolation or backbone.interpolation, "antialias": protocol.antialias,
            "device_type": device.type, "precision": precision(device), "weights": inputs.weights.describe(),
            "data_source": None, "data_fingerprint": dict(inputs.fingerprint), "classes": task.classes,
        },
        "env": dict(inputs.env),
        "plugins": plugin_provenance(spec),
    }, norm


class TestCurve:
    """The best-of-test diagnostic: top-1 of the model as it trains, on the final run's test split,
    after every `every`-th epoch. Nothing selects on it: only `report --diagnostic best-of-test`
    reads `diagnostics.test_curve` (tests/unit/reporting/test_diagnostics.py guards that)."""

    def __init__(self, every: int, model, data, batcher, batch_size: int, progress: Progress, label: str):
        self.every, self.model, self.data, self.batcher = every, model, data, batcher
        self.batch_size, self.progress, self.label = batch_size, progress, label
        self.points: list = []

    def __call__(self, epoch: int, model=None) -> None:
        if epoch % self.every == 0:
            outcome = evaluate(model if model is not None else self.model, self.data, self.batcher, self.batch_size,
                               self.progress, self.label)
            self.points.append({"epoch": epoch, "top1": 100.0 * outcome.top1})

    def describe(self, split: str, ema: bool = False) -> dict:
        # With model EMA, the curve is of the averaged weights: what the run evaluates (and SSF selected on).
        return {"test_curve": self.points, "test_every": self.every, "split": split,
                "model": "ema" if ema else "as_training",
                "note": "test-selected numbers are not valid for claims; no selection or table reads this"}


def run_trial(inputs: TrialInputs, progress: Progress, adapter_path: Optional[Path] = None,
              checkpoint: Optional[TrainCheckpoint] = None) -> Dict[str, Any]:
    spec, task, seed = inputs.spec, inputs.task, inputs.seed
    config = train_config_for(spec, task.name, inputs.hparams.point)
    method_config = method_config_for(spec, task.name, inputs.hparams.point)
    method, backbone = spec.method_spec, spec.backbone_spec
    train_data, eval_data = inputs.splits
    record, norm = base_record(inputs, config, method_config)
    protocol = PROTOCOLS.get(config.protocol)
    device = torch.device(spec.device)
    try:
        record["protocol"]["data_source"] = train_data.manifest["source"]
        record["protocol"]["data_allow_mismatch"] = bool(train_data.manifest.get("allow_mismatch", False))
        seed_everything(seed)
        model, backbone_total, dropout_layers = build_adapted_model(spec, task, inputs.pretrained, method_config, config.drop_path,
                                                    config.head_init, config.dropout)
        channels_last = device.type == "cuda" and backbone.channels_last
        model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
        head = head_parameter_count(model)
        trainable = trainable_parameter_count(model)
        memory = PeakMemory(device)
        batcher = DeviceBatcher(backbone.input_size, norm, device, record["protocol"]["interpolation"],
                                protocol.antialias, channels_last)
        record["protocol"]["channels_last"] = channels_last
        if config.dropout > 0:
            record["protocol"]["dropout"] = {"p": config.dropout, "layers": dropout_layers}
        record["protocol"]["backbone_mode_in_training"] = "eval" if method.train_mode else "train"
        merge_diff = None
        inputs.clock.mark("build")
        if method.feature_probe:
            probe = probe_task(inputs, model, method_config, config, batcher, progress)
            trained = {k: probe[k] for k in ("final_train_loss", "steps", "train_seconds", "history")}
            outcome = EvalOutcome(probe["top1"], probe["eval_examples"], 0.0)
            record["protocol"]["head_training"] = {
                "on": "cached features", "solver": method_config.solver, "feature_seconds": probe["feature_seconds"],
                "features_from_cache": probe["features_from_cache"], "selection": probe["selection"],
                "augment": None if spec.suite_spec.augment is None else "none (features of centre crops)"}
        else:
            curve = TestCurve(spec.test_every, model, eval_data, batcher, spec.eval_batch_size, progress,
                              f"{task.name} s{seed} test curve") if spec.test_every else None
            trained = train(model, train_data, batcher, config, seed, progress, f"{task.name} s{seed} train",
                            train_mode=method.set_train_mode, checkpoint=checkpoint, after_epoch=curve)
            if curve is not None:
                # A run resumed from a mid-run checkpoint has the points from its resumed epoch on.
                record["diagnostics"] = {**curve.describe(record["protocol"]["eval_split"], config.ema_decay > 0),
                                         "resumed_from_epoch": trained.get("resumed_from_epoch")}
        inputs.clock.mark("train")
        if adapter_path is not None:  # what the method trained, before any merge, with its config
            save_adapter(model, adapter_path, method.name, method_config)
            record["adapter_file"] = adapter_path.name
        if method.mergeable:
            model, merge_diff = merge_and_check(model, method.merge, eval_data, batcher)
        inputs.clock.mark("merge")
        if not method.feature_probe:
            outcome = evaluate(model, eval_data, batcher, spec.eval_batch_size, progress, f"{task.name} s{seed} eval",
                               compile_model=config.compile)
        inputs.clock.mark("evaluate")
        record["protocol"]["eval_model"] = "merged" if method.mergeable else "as_trained"
        if config.ema_decay > 0:  # what was merged and evaluated: the averaged weights
            record["protocol"]["evaluated_weights"] = f"ema (decay {config.ema_decay})"
        record["metrics"] = {"top1": 100.0 * outcome.top1, "final_train_loss": trained["final_train_loss"],
                             "eval_examples": outcome.examples, "merge_max_abs_logit_diff": merge_diff}
        record["params"] = {"trainable": trainable, "trainable_without_head": trainable - head, "head": head,
                            "backbone_total": backbone_total, "inference_total": total_parameter_count(model)}
        record["timing"] = {"train_seconds": trained["train_seconds"], "eval_seconds": outcome.seconds,
                            "steps": trained["steps"], "resumed_from_epoch": trained.get("resumed_from_epoch"),
                            "eval_batch_size": None if method.feature_probe else spec.eval_batch_size}
        record["history"] = trained["history"]
        record["memory"] = memory.read()
        # Seconds per phase of this job until now (the record's own writing comes after).
        record["timing"]["phases"] = dict(inputs.clock.seconds)
        record["status"] = "ok"
    except (TrainingDiverged, torch.cuda.OutOfMemoryError) as exc:
        record["status"] = "failed"
        record["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    record["finished"] = now_iso()
    return record

