"""One `alore-bench run`: checks, then one training + evaluation per (task, seed), one record each."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

import torch

from .backbones import BackboneSpec, WeightSource
from .backbones.base import load_state_dict_checked
from .claims import Claim
from .config import TrainConfig, config_from_dict, config_to_dict, stable_hash
from .data.cache import SplitData, load_split, missing_tasks, read_manifest
from .data.loader import DeviceBatcher, resolve_normalisation
from .data.suites import Suite, Task
from .engine import (EvalOutcome, PeakMemory, Progress, TrainCheckpoint, TrainingDiverged, evaluate, merge_and_check,
                     precision, train)
from .env import environment, seed_everything
from .errors import UserError
from .files import check_writable_folder
from .methods.base import (MethodSpec, head_parameter_count, save_adapter, total_parameter_count,
                           trainable_parameter_count)
from .presets import Preset
from .protocols import PROTOCOLS
from .probe import FeatureCache, run_probe
from .records import (RECORD_SCHEMA, config_identity, data_fingerprint, load_records, now_iso, previous_outcome,
                      record_path, seeds_from_other_data, write_record)
from .tuning import Grid, base_identity, grid_key, select, split_point, tuning_records


@dataclass
class RunPlan:
    suite: Suite
    tasks: List[Task]
    backbone: BackboneSpec
    method: MethodSpec
    method_config: Any
    train_config: TrainConfig
    seeds: List[int]
    data_dir: Path
    results_dir: Path
    device: torch.device
    weights: Optional[str] = None
    force: bool = False
    save_adapters: bool = False
    preset: Optional[Preset] = None
    # A tuning run: the grid and this run's point in it (index, values); recorded as `tuning`.
    grid: Optional[Grid] = None
    grid_index: Optional[int] = None
    # Final runs: use the hyper-parameters selected from tuning records of the same configuration.
    use_tuned: bool = False
    # Keys the user set explicitly (command line): never replaced by tuned values.
    explicit_keys: frozenset = frozenset()
    # Filled by run_plan: per task, where its hyper-parameters came from.
    hparams: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    # Filled by run_plan for a tuning run: the hash of its configuration without the grid's keys.
    tuning_base: Optional[str] = None
    # The study variant this plan runs (recorded; not part of the configuration's identity).
    variant: Optional[str] = None
    # A job claimed by another process: skip it (False) or wait for it to finish (True).
    wait: bool = False
    # Extra logs of training curves ("tensorboard"); the record's history is always kept.
    log: Tuple[str, ...] = ()
    # Mid-run checkpoints every this many epochs (0: none); they never change what a run computes.
    checkpoint_every: int = 10

    def method_config_for(self, task: Task) -> Any:
        """The method config a run on `task` uses: the preset's per-task options, its tuned options,
        then the method's own per-task settings (e.g. VPT's task_lengths)."""
        config = self.preset.apply(self.method, self.method_config, task.name) if self.preset else self.method_config
        tuned = self.tuned_point(task)
        if tuned:
            config = self.method.config_from_dict({**config_to_dict(config), **split_point(tuned)[1]})
        return self.method.config_for_task(config, task.name)

    def train_config_for(self, task: Task) -> TrainConfig:
        """The recipe a run on `task` uses: the run's, the preset's values for the task (e.g. RLRR's
        per-task learning rates), then its tuned values."""
        layers = [self.preset.recipe_for(task.name)] if self.preset else []
        tuned = self.tuned_point(task)
        if tuned and split_point(tuned)[0]:
            layers.append(split_point(tuned)[0])
        if not any(layers):
            return self.train_config
        merged = config_to_dict(self.train_config)
        for layer in layers:
            merged.update(layer)
        config = config_from_dict(TrainConfig, merged, "tuned recipe" if tuned else f"preset {self.preset.name}")
        config.validate()
        return config

    def tuned_point(self, task: Task) -> Optional[Dict[str, Any]]:
        hparams = self.hparams.get(task.name) or {}
        return hparams.get("point") if hparams.get("source") == "tuned" else None


def explicit_keys(options: Iterable[str] = (), **recipe: Any) -> frozenset:
    """The keys a caller fixed (recipe values given, method option names): never replaced by tuned
    values or a preset's (RunPlan.explicit_keys)."""
    return frozenset({k for k, v in recipe.items() if v is not None} | set(options))


@dataclass
class RunSummary:
    ran: List[Path] = field(default_factory=list)
    skipped: List[Path] = field(default_factory=list)
    failed: List[tuple] = field(default_factory=list)
    busy: List[Path] = field(default_factory=list)  # skipped: another process was running them

    def add(self, other: "RunSummary") -> "RunSummary":
        for name in ("ran", "skipped", "failed", "busy"):
            getattr(self, name).extend(getattr(other, name))
        return self


def check_task_options(plan: RunPlan) -> None:
    lengths = getattr(plan.method_config, "lengths", None)
    unknown = sorted(set(lengths()) - set(plan.suite.task_names)) if lengths else []
    if unknown:
        raise UserError(f"--opt task_lengths names {', '.join(unknown)}, not tasks of suite {plan.suite.name} "
                        f"({', '.join(plan.suite.task_names)})")


def check_data(plan: RunPlan) -> None:
    missing = missing_tasks(plan.data_dir, plan.suite, plan.tasks)
    if missing:
        shown = ", ".join(missing[:4]) + (" ..." if len(missing) > 4 else "")
        raise UserError(f"suite {plan.suite.name} is not prepared in {plan.data_dir} (missing {shown}): "
                        f"run `alore-bench prepare --suite {plan.suite.name}` or pass --data-dir")


# Free space a run needs in the results dir before it starts: records are small, adapters are not.
MIN_FREE_BYTES = 64 * 2**20


def check_results_dir(results_dir: Path, need: int = MIN_FREE_BYTES) -> None:
    """The results dir is a writable folder with room to spare."""
    check_writable_folder(results_dir, "--results-dir", need)


def save_record(path: Path, results_dir: Path, record: Mapping[str, Any], say: Callable[[str], None]) -> Path:
    """Write the record; a failed write (a full disk) is retried, then the result is kept in a
    fallback folder that the message names, so trained work is never lost."""
    for attempt in range(2):
        try:
            write_record(path, record)
            return path
        except OSError as exc:
            error = exc
            if attempt == 0:
                time.sleep(1.0)
    rescue = Path(tempfile.gettempdir()) / "alore-bench-rescued" / path.relative_to(results_dir)
    write_record(rescue, record)
    say(f"could not write {path} ({error.strerror or error}); the result is kept in {rescue}: "
        f"move it to {path} once there is room")
    return rescue


def clean_leftovers(plans: List[RunPlan]) -> List[str]:
    """Leftovers of killed processes in the plans' data and results dirs, cleaned (or, for a task
    a killed `prepare --force` left aside, restored) once per command, before its checks."""
    from .stale import clean_children, clean_tree

    done: List[str] = []
    for folder in dict.fromkeys(p.data_dir / p.suite.name for p in plans):
        done += clean_children(folder)
    for folder in dict.fromkeys(p.results_dir for p in plans):
        done += clean_tree(folder)
    return done


def preflight(plan: RunPlan) -> WeightSource:
    """Every check that can fail before training (options, preset, prepared data, its source,
    results dir, weights), so a mistake is one line before any work, whichever executor runs."""
    check_task_options(plan)
    if plan.preset is not None:
        plan.preset.check(plan.method.name, plan.suite.name, plan.suite.task_names)
        clash = sorted(plan.explicit_keys & plan.preset.recipe_keys())
        if clash:
            options = ", ".join(f"--{k.replace('_', '-')}" for k in clash)
            raise UserError(f"--preset {plan.preset.name} sets {', '.join(clash)} per task; drop {options} "
                            f"or the preset")
        tuned = sorted(set(plan.grid.keys if plan.grid is not None else ()) & plan.preset.recipe_keys())
        if tuned:  # every grid point would train with the preset's value: a search that searches nothing
            raise UserError(f"--preset {plan.preset.name} sets {', '.join(tuned)} per task, so the tuning grid "
                            f"cannot search it: pass --grid with other keys, or drop the preset")
    if plan.method.feature_probe and any(plan.train_config_for(t).flip for t in plan.tasks):
        raise UserError(f"{plan.method.name} trains its head on cached features, which cannot be flipped: "
                        "drop flip from the recipe")
    check_data(plan)  # data before weights: the cheaper fix first
    check_results_dir(plan.results_dir)
    protocol = PROTOCOLS.get(plan.train_config.protocol)
    for task in plan.tasks:
        protocol.check_source(task.name, read_manifest(plan.data_dir, task)["source"]["kind"])
    return plan.backbone.resolve_weights(plan.weights, plan.data_dir)


def run_plan(plan: RunPlan, progress: Progress, say: Callable[[str], None]) -> RunSummary:
    source = preflight(plan)
    train_split, eval_split = plan.suite.stage_splits(plan.train_config.stage)
    identity = config_identity(plan.suite.name, plan.backbone.name, plan.method.name,
                               config_to_dict(plan.method_config), config_to_dict(plan.train_config),
                               source.describe(), preset=plan.preset.describe() if plan.preset else None,
                               compute={"device": plan.device.type, "precision": precision(plan.device)})
    tuning = None
    if plan.grid is not None:  # a tuning run: record where it sits in its grid
        plan.tuning_base = base_identity(identity, plan.grid.keys)
        tuning = {"base": plan.tuning_base, "grid": plan.grid.describe(),
                  "point": plan.grid.points()[plan.grid_index], "index": plan.grid_index}
    elif plan.train_config.stage == "final":
        identity = resolve_hparams(plan, identity, say)
    todo, summary = [], RunSummary()
    protocol = PROTOCOLS.get(plan.train_config.protocol)
    for task in plan.tasks:
        manifest = read_manifest(plan.data_dir, task)
        protocol.check_source(task.name, manifest["source"]["kind"])
        fingerprint = data_fingerprint(manifest, (train_split, eval_split))
        for seed in plan.seeds:
            path = record_path(plan.results_dir, identity, task.name, seed)
            outcome = reusable(plan, task, path, fingerprint)
            if outcome == "same" and not plan.force:
                summary.skipped.append(path)
                say(f"skip {task.name} seed {seed}: identical record exists at {path} (--force reruns)")
            elif outcome == "other-data" and not plan.force:
                raise UserError(f"{path} holds a result made from different prepared data for {task.name}: "
                                "pass --force to replace it, or use another --results-dir")
            elif not plan.force and seeds_from_other_data(path, fingerprint):
                others = ", ".join(map(str, seeds_from_other_data(path, fingerprint)))
                raise UserError(f"{path.parent}: seeds {others} of this configuration were made from different "
                                f"prepared data for {task.name}; seed {seed} would join them in one row: pass "
                                f"--force --seeds {others},{seed} to rerun them all, or use another --results-dir")
            else:
                todo.append((task, seed, path, fingerprint))
    if not todo:
        return summary

    pretrained = load_pretrained_state(plan.backbone, source)
    env = environment(plan.device)
    for task, seed, path, fingerprint in todo:
        claim = Claim.acquire(path, wait=plan.wait, job={
            "suite": plan.suite.name, "backbone": plan.backbone.name, "variant": plan.variant,
            "method": plan.method.name, "stage": plan.train_config.stage, "task": task.name, "seed": seed})
        if claim is None:  # another process or machine runs this job now
            summary.skipped.append(path)
            summary.busy.append(path)
            say(f"skip {task.name} seed {seed}: running in {Claim.owner(path)}")
            continue
        with claim:
            if not plan.force and reusable(plan, task, path, fingerprint) == "same":
                summary.skipped.append(path)  # finished by another process while this one was busy
                say(f"skip {task.name} seed {seed}: finished meanwhile by another process -> {path}")
                continue
            splits = task_splits(plan.data_dir, task, (train_split, eval_split), fingerprint)
            checkpoint = TrainCheckpoint(path.with_name(f".{path.stem}.ckpt"), plan.checkpoint_every,
                                         f"{stable_hash(identity)}/seed{seed}")
            record = run_one(plan, task, seed, pretrained, source, fingerprint, identity, env, progress, splits,
                             adapter_path=path.with_suffix(".safetensors") if plan.save_adapters else None,
                             checkpoint=checkpoint)
            if tuning is not None:
                record["tuning"] = tuning
            if "tensorboard" in plan.log and record["status"] == "ok":
                record["tensorboard"] = write_tensorboard(plan.results_dir, path, record)
            written = save_record(path, plan.results_dir, record, say)
            if written == path:
                checkpoint.remove()  # the record holds the result now
        if written != path:
            summary.failed.append((path, f"not written; kept in {written}"))
            continue
        if record["status"] == "ok":
            summary.ran.append(path)
            say(f"{task.name} seed {seed}: top-1 {record['metrics']['top1']:.2f} "
                f"(train {record['timing']['train_seconds']:.1f}s) -> {path}")
        else:
            summary.failed.append((path, record["error"]))
            say(f"{task.name} seed {seed}: FAILED: {record['error']} -> {path}")
    return summary


_SPLITS: Dict[str, Tuple[SplitData, SplitData]] = {}


def plugin_provenance(plan: RunPlan) -> Dict[str, Any]:
    """The plugins a run used (method, backbone, suite): distribution and version, or file and sha256."""
    from .backbones import BACKBONES
    from .data.suites import SUITES
    from .methods import METHODS

    found = {"method": METHODS.provenance(plan.method.name), "backbone": BACKBONES.provenance(plan.backbone.name),
             "suite": SUITES.provenance(plan.suite.name)}
    return {kind: where for kind, where in found.items() if where}


def task_splits(data_dir: Path, task: Task, names: Tuple[str, str], fingerprint: Mapping[str, Any]):
    """A task's (train, eval) splits, read and verified once per process while their data stay the
    same (the fingerprint holds their checksums): a worker runs the seeds of a task in a row."""
    key = stable_hash({"data": str(data_dir), "suite": task.suite, "task": task.name, "splits": list(names),
                       "fingerprint": dict(fingerprint)})
    if key not in _SPLITS:
        _SPLITS.clear()
        _SPLITS[key] = (load_split(data_dir, task, names[0]), load_split(data_dir, task, names[1]))
    return _SPLITS[key]


LOGS = ("tensorboard",)


def write_tensorboard(results_dir: Path, path: Path, record: Mapping[str, Any]) -> str:
    """The record's per-epoch history (train loss, lr, seconds) and its top-1 as TensorBoard events
    under <results>/tensorboard/, mirroring the record's path; returns that folder (relative)."""
    from torch.utils.tensorboard import SummaryWriter

    folder = Path("tensorboard") / path.relative_to(results_dir).with_suffix("")
    with SummaryWriter(log_dir=str(results_dir / folder)) as writer:
        for entry in record.get("history") or []:
            writer.add_scalar("train/loss", entry["train_loss"], entry["epoch"])
            writer.add_scalar("train/lr", entry["lr"], entry["epoch"])
            writer.add_scalar("train/seconds", entry["seconds"], entry["epoch"])
        stage = record["config"]["train"]["stage"]
        writer.add_scalar(f"{'val' if stage == 'tune' else 'test'}/top1", record["metrics"]["top1"],
                          len(record.get("history") or []))
    return str(folder)


def resolve_hparams(plan: RunPlan, identity: Dict[str, Any], say: Callable[[str], None]) -> Dict[str, Any]:
    """Fill plan.hparams for a final run (tuned, default or command line, per task) and return the
    identity its records are filed under: a tuned run's identity names the tuning it used instead of
    the tuned values, so the tasks of one configuration stay one row whatever each task selected."""
    default = {"source": "default"}
    records = tuning_records(load_records(plan.results_dir)[0], plan.suite.name, plan.backbone.name,
                             plan.method.name) if plan.use_tuned else []
    grids, bases = {}, {}
    for record in records:
        grid = record["tuning"]["grid"]
        key = grid_key(grid)
        if key not in bases:
            bases[key] = base_identity(identity, grid)
        if record["tuning"]["base"] == bases[key]:
            grids[key] = grid
    if not grids:
        plan.hparams = {task.name: default for task in plan.tasks}
        return identity
    if len(grids) > 1:
        raise UserError(f"tuning records of {plan.method.name} in {plan.results_dir} come from {len(grids)} different "
                        f"grids ({'; '.join(grids)}): keep one grid per results dir, or pass --no-tuned")
    grid = next(iter(grids.values()))
    fixed = sorted(set(grid) & set(plan.explicit_keys))
    if fixed:
        say(f"tuned values not used: {', '.join(fixed)} given on the command line (pass --no-tuned to silence this)")
        plan.hparams = {task.name: {"source": "command line", "keys": fixed} for task in plan.tasks}
        return identity
    base = base_identity(identity, grid)
    for task in plan.tasks:
        selection = select(records, task.name, base)
        plan.hparams[task.name] = selection.describe(base, grid) if selection else default
        if selection is None:
            say(f"{task.name}: no tuning records of this configuration; default hyper-parameters")
    tuned = {k: v for k, v in identity.items() if k not in ("train", "method_config")}
    tuned["train"] = {k: v for k, v in identity["train"].items() if k not in grid}
    tuned["method_config"] = {k: v for k, v in identity["method_config"].items() if k not in grid}
    tuned["hparams"] = {"source": "tuned", "base": base, "grid": grid}
    return tuned


def reusable(plan: RunPlan, task: Task, path: Path, fingerprint: Mapping[str, Any]) -> Optional[str]:
    """'same' when the record at `path` is this job's result and can stand, 'other-data' when it was
    made from other prepared data, None when the job has to run."""
    outcome = previous_outcome(path, fingerprint)
    if outcome == "same" and plan.save_adapters and not path.with_suffix(".safetensors").exists():
        return None  # the identical run saved no adapter: run it again to save one
    if outcome == "same" and plan.hparams and stale_hparams(path, plan.hparams.get(task.name)):
        return None  # tuning selected another point since (or finished): run with the new one
    return outcome


def stale_hparams(path: Path, hparams: Optional[Mapping[str, Any]]) -> bool:
    """Whether the record at `path` ran with other hyper-parameters than `hparams` select now."""
    from .records import read_record

    try:
        recorded = (read_record(path).get("config") or {}).get("hparams") or {}
    except (OSError, ValueError):
        return True
    now = hparams or {}
    return (recorded.get("source"), recorded.get("point")) != (now.get("source"), now.get("point"))


_PRETRAINED: Dict[str, Dict[str, torch.Tensor]] = {}


def augment_of(suite_augment: Optional[str], flip: bool) -> Optional[str]:
    """What a record says of training-time augmentation: the suite's, or the recipe's flips."""
    if flip and suite_augment is None:
        return "horizontal_flip"
    return suite_augment


def load_pretrained_state(backbone: BackboneSpec, source: WeightSource) -> Dict[str, torch.Tensor]:
    """Load the pretrained backbone once per process (the last one is kept: a worker runs many
    jobs of one backbone in a row); every run copies it into a freshly seeded model."""
    key = stable_hash({"backbone": backbone.name, "weights": source.describe()})
    if key not in _PRETRAINED:
        model = backbone.create(num_classes=0)
        backbone.load_weights(model, source)
        _PRETRAINED.clear()
        _PRETRAINED[key] = {k: v.clone() for k, v in model.state_dict().items()}
    return _PRETRAINED[key]


def build_adapted_model(plan: RunPlan, task: Task, pretrained: Mapping[str, torch.Tensor], method_config: Any) -> tuple:
    model = plan.backbone.create(num_classes=task.classes, drop_path=plan.train_config_for(task).drop_path)
    load_state_dict_checked(model, pretrained, plan.backbone.name)
    backbone_total = total_parameter_count(model) - head_parameter_count(model)
    model = plan.method.apply(model, method_config)
    return model, backbone_total


def probe_task(plan: RunPlan, task: Task, seed: int, model, method_config: Any,
               splits: Tuple[SplitData, SplitData], batcher: DeviceBatcher, source: WeightSource) -> Dict[str, Any]:
    """A linear probe of one (task, seed): features cached per backbone, weights, input pipeline and split."""
    train_split, eval_split = plan.suite.stage_splits(plan.train_config.stage)
    roles = {"train": (train_split, splits[0]), "eval": (eval_split, splits[1])}
    if method_config.solver == "lbfgs":  # the L2 strength is chosen on the suite's tuning stage, never on test
        tune_train, tune_eval = plan.suite.stage_splits("tune")
        for role, name in (("tune_train", tune_train), ("tune_eval", tune_eval)):
            known = {n: d for n, d in roles.values()}
            roles[role] = (name, known[name] if name in known else load_split(plan.data_dir, task, name))
    identity = {"backbone": plan.backbone.name, "weights": source.sha256 or source.location,
                "normalisation": [batcher.scale.tolist(), batcher.shift.tolist()],
                "interpolation": batcher.interpolation, "antialias": batcher.antialias, "input_size": batcher.input_size}
    cache = FeatureCache(plan.data_dir, plan.suite.name, task.name, identity)
    return run_probe(model, method_config.solver, plan.train_config_for(task), seed, task.classes, roles, cache,
                     batcher)


def run_one(plan: RunPlan, task: Task, seed: int, pretrained: Mapping[str, torch.Tensor], source: WeightSource,
            fingerprint: Mapping[str, Any], identity: Mapping[str, Any], env: Mapping[str, Any],
            progress: Progress, splits: Tuple[SplitData, SplitData],
            adapter_path: Optional[Path] = None, checkpoint: Optional[TrainCheckpoint] = None) -> Dict[str, Any]:
    config = plan.train_config_for(task)
    method_config = plan.method_config_for(task)
    train_data, eval_data = splits
    train_split, eval_split = plan.suite.stage_splits(config.stage)
    protocol = PROTOCOLS.get(config.protocol)
    norm = resolve_normalisation(protocol.normalisation if config.normalisation == "protocol" else config.normalisation,
                                 plan.backbone.mean, plan.backbone.std)
    interpolation = protocol.interpolation or plan.backbone.interpolation
    record: Dict[str, Any] = {
        "schema": RECORD_SCHEMA,
        "status": "running",
        "error": None,
        "created": now_iso(),
        "suite": plan.suite.name,
        "task": task.name,
        "group": task.group,
        "backbone": plan.backbone.name,
        "method": plan.method.name,
        "variant": plan.variant,
        "seed": seed,
        "config_hash": stable_hash(identity),
        "config": {"method": config_to_dict(plan.method_config), "train": config_to_dict(config),
                   "method_for_task": config_to_dict(method_config),
                   "preset": plan.preset.describe() if plan.preset else None,
                   "hparams": plan.hparams.get(task.name) or {"source": "tuning grid" if plan.grid else "default"}},
        "protocol": {
            "train_split": train_split,
            "eval_split": eval_split,
            "selection": "last_epoch",
            "augment": augment_of(plan.suite.augment, config.flip),
            "preset": protocol.describe(),
            "normalisation": norm.describe(),
            "input_size": plan.backbone.input_size,
            "interpolation": interpolation,
            "antialias": protocol.antialias,
            "device_type": plan.device.type,
            "precision": precision(plan.device),
            "weights": source.describe(),
            "data_source": None,
            "data_fingerprint": dict(fingerprint),
            "classes": task.classes,
        },
        "env": dict(env),
        "plugins": plugin_provenance(plan),
    }
    try:
        record["protocol"]["data_source"] = train_data.manifest["source"]
        record["protocol"]["data_allow_mismatch"] = bool(train_data.manifest.get("allow_mismatch", False))
        seed_everything(seed)
        model, backbone_total = build_adapted_model(plan, task, pretrained, method_config)
        channels_last = plan.device.type == "cuda" and plan.backbone.channels_last
        model.to(plan.device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
        head = head_parameter_count(model)
        trainable = trainable_parameter_count(model)
        memory = PeakMemory(plan.device)
        batcher = DeviceBatcher(plan.backbone.input_size, norm, plan.device, interpolation, protocol.antialias,
                                channels_last)
        record["protocol"]["channels_last"] = channels_last
        record["protocol"]["backbone_mode_in_training"] = "eval" if plan.method.train_mode else "train"
        merge_diff = None
        if plan.method.feature_probe:
            probe = probe_task(plan, task, seed, model, method_config, splits, batcher, source)
            trained = {k: probe[k] for k in ("final_train_loss", "steps", "train_seconds", "history")}
            outcome = EvalOutcome(probe["top1"], probe["eval_examples"], 0.0)
            record["protocol"]["head_training"] = {
                "on": "cached features", "solver": method_config.solver, "feature_seconds": probe["feature_seconds"],
                "features_from_cache": probe["features_from_cache"], "selection": probe["selection"],
                "augment": None if plan.suite.augment is None else "none (features of centre crops)"}
        else:
            trained = train(model, train_data, batcher, config, seed, progress, f"{task.name} s{seed} train",
                            train_mode=plan.method.set_train_mode, checkpoint=checkpoint)
        if adapter_path is not None:  # what the method trained, before any merge, with its config
            save_adapter(model, adapter_path, plan.method.name, method_config)
            record["adapter_file"] = adapter_path.name
        if plan.method.mergeable:
            model, merge_diff = merge_and_check(model, plan.method.merge, eval_data, batcher, config.batch_size)
        if not plan.method.feature_probe:
            outcome = evaluate(model, eval_data, batcher, config.batch_size, progress, f"{task.name} s{seed} eval",
                               compile_model=config.compile)
        record["protocol"]["eval_model"] = "merged" if plan.method.mergeable else "as_trained"
        record["metrics"] = {
            "top1": 100.0 * outcome.top1,
            "final_train_loss": trained["final_train_loss"],
            "eval_examples": outcome.examples,
            "merge_max_abs_logit_diff": merge_diff,
        }
        record["params"] = {
            "trainable": trainable,
            "trainable_without_head": trainable - head,
            "head": head,
            "backbone_total": backbone_total,
            "inference_total": total_parameter_count(model),
        }
        record["timing"] = {"train_seconds": trained["train_seconds"], "eval_seconds": outcome.seconds,
                            "steps": trained["steps"], "resumed_from_epoch": trained.get("resumed_from_epoch")}
        record["history"] = trained["history"]
        record["memory"] = memory.read()
        record["status"] = "ok"
    except (TrainingDiverged, torch.cuda.OutOfMemoryError) as exc:
        record["status"] = "failed"
        record["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    record["finished"] = now_iso()
    return record
