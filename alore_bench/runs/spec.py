"""The run specification: everything that decides what a run computes and where its data and
records live, built by one builder (`build_spec`) for the command line, the Python API and study
expansion alike. A spec is frozen and round-trips through JSON, so workers, Ray tasks and other
machines receive it as data. A job is a spec plus one (task, seed)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ..config import MAX_EPOCHS, TrainConfig, config_from_dict, config_to_dict, make_train_config
from ..errors import UserError, param, unknown_name_error
from ..paths import PathLike, as_path, default_data_dir
from ..io import check_folder_path
from ..tuning import Grid, split_point

# Named seed sets: VPT's five final-run seeds (KMnP/vpt tune_vtab.py) and their first three.
SEED_SETS = {"vpt5": (42, 44, 82, 100, 800), "vpt3": (42, 44, 82)}
# Images per evaluation batch unless given (an execution setting: see RunSpec.eval_batch_size).
EVAL_BATCH_SIZE = 256
# Larger evaluation batches than this are a typo: 65,536 ViT-B/16 inputs alone are 39 GB in fp32.
MAX_EVAL_BATCH = 8192
# Extra logs of training curves; the record's history is always kept.
LOGS = ("tensorboard",)
# Seeds as callers give them: "42,44", a named set ("vpt5"), one integer or a list.
Seeds = Union[str, int, Iterable[int]]


@dataclass(frozen=True)
class RunSpec:
    method: str
    backbone: str
    suite: str
    tasks: Tuple[str, ...]
    seeds: Tuple[int, ...]
    method_config: Any  # the method's frozen config dataclass
    train: TrainConfig  # the run's recipe: the suite's for the method, then the caller's values
    data_dir: Path
    results_dir: Path
    device: str = "cpu"
    weights: Optional[str] = None
    preset: Optional[str] = None
    # A tuning run: the grid and this run's point in it (recorded as `tuning`).
    grid: Optional[Grid] = None
    grid_index: Optional[int] = None
    # Final runs: use the hyper-parameters selected from tuning records of the same configuration.
    use_tuned: bool = True
    # Keys the caller fixed (recipe values given, method option names): never replaced by tuned values.
    explicit: FrozenSet[str] = frozenset()
    # The study variant this spec runs (recorded; not part of the configuration's identity).
    variant: Optional[str] = None
    force: bool = False
    save_adapters: bool = False
    log: Tuple[str, ...] = ()
    # Mid-run checkpoints every this many epochs (0: none); they never change what a run computes.
    checkpoint_every: int = 10
    # Images per evaluation batch: independent of the training batch and left out of the identity
    # (evaluation learns nothing; the record keeps the value in `timing`).
    eval_batch_size: int = EVAL_BATCH_SIZE
    # A diagnostic, off at 0: the test split evaluated every this many epochs of a final run, stored
    # as the record's `diagnostics.test_curve`; outside the identity (it changes nothing a run
    # computes) and read by nothing but `report --diagnostic best-of-test`.
    test_every: int = 0
    # How `train.protocol` was chosen when the recipe said `auto` ("auto -> noah"); None otherwise.
    protocol_choice: Optional[str] = None
    # Where the caller's settings differ from the preset's published ones: (setting, published, used).
    preset_differences: Tuple[Tuple[str, str, Optional[str]], ...] = ()

    # The registry entries the names stand for (looked up once per spec).
    @cached_property
    def method_spec(self):
        from ..methods import METHODS

        return METHODS.get(self.method)

    @cached_property
    def backbone_spec(self):
        from ..backbones import BACKBONES

        return BACKBONES.get(self.backbone)

    @cached_property
    def suite_spec(self):
        from ..data.suites import SUITES

        return SUITES.get(self.suite)

    @cached_property
    def preset_spec(self):
        from ..presets import PRESETS

        return PRESETS.get(self.preset) if self.preset else None

    @property
    def task_specs(self):
        return self.suite_spec.select(list(self.tasks))

    @property
    def stage(self) -> str:
        return self.train.stage

    @property
    def point(self) -> Optional[Dict[str, Any]]:
        """This tuning run's grid point, or None."""
        return self.grid.points()[self.grid_index] if self.grid is not None else None

    def jobs(self) -> List["Job"]:
        """Task by task, seed by seed (the order `run` has always used)."""
        return [Job(self, task, seed) for task in self.tasks for seed in self.seeds]

    def replace(self, **changes: Any) -> "RunSpec":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> Dict[str, Any]:
        return {"method": self.method, "backbone": self.backbone, "suite": self.suite, "tasks": list(self.tasks),
                "seeds": list(self.seeds), "method_config": config_to_dict(self.method_config),
                "train": config_to_dict(self.train), "data_dir": str(self.data_dir),
                "results_dir": str(self.results_dir), "device": self.device, "weights": self.weights,
                "preset": self.preset, "grid": self.grid.describe() if self.grid is not None else None,
                "grid_index": self.grid_index, "use_tuned": self.use_tuned, "explicit": sorted(self.explicit),
                "variant": self.variant, "force": self.force, "save_adapters": self.save_adapters,
                "log": list(self.log), "checkpoint_every": self.checkpoint_every,
                "eval_batch_size": self.eval_batch_size, "test_every": self.test_every,
                "protocol_choice": self.protocol_choice,
                "preset_differences": [list(d) for d in self.preset_differences]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunSpec":
        from ..methods import METHODS

        data = dict(data)
        grid = data.pop("grid")
        return cls(**{**data, "tasks": tuple(data["tasks"]), "seeds": tuple(data["seeds"]),
                      "method_config": METHODS.get(data["method"]).config_from_dict(data["method_config"]),
                      "train": config_from_dict(TrainConfig, data["train"], "spec train"),
                      "data_dir": Path(data["data_dir"]), "results_dir": Path(data["results_dir"]),
                      "grid": Grid(tuple((k, tuple(v)) for k, v in grid.items())) if grid is not None else None,
                      "explicit": frozenset(data["explicit"]), "log": tuple(data["log"]),
                      "preset_differences": tuple(tuple(d) for d in data.get("preset_differences", ()))})


@dataclass(frozen=True)
class Job:
    """One (task, seed) of a spec: running it writes exactly one record. While another process
    holds its claim, `wait` False skips it and True waits for it to finish (and runs it if its
    owner died without a record)."""

    spec: RunSpec
    task: str
    seed: int
    wait: bool = False

    def describe(self) -> str:
        return f"{self.spec.variant or self.spec.method} {self.spec.stage} {self.task} seed {self.seed}"

    def replace(self, **changes: Any) -> "Job":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> Dict[str, Any]:
        return {"spec": self.spec.to_dict(), "task": self.task, "seed": self.seed, "wait": self.wait}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Job":
        return cls(RunSpec.from_dict(data["spec"]), data["task"], data["seed"], data.get("wait", False))


def parse_seeds(value: Seeds) -> Tuple[int, ...]:
    """`42,44,82`, a named set (vpt5, vpt3), one integer or a list of integers: checked, in order,
    without repeats."""
    if isinstance(value, str):
        text = value.strip()
        if text in SEED_SETS:
            return SEED_SETS[text]
        try:
            seeds = [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise UserError(f"{param('seeds', value)}: expected comma-separated integers (e.g. 42,44,82) or a "
                            f"named set ({', '.join(SEED_SETS)})") from None
    elif isinstance(value, int) and not isinstance(value, bool):
        seeds = [value]
    else:
        seeds = list(value)
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise UserError(f"{param('seeds')}: expected integers, got {seeds!r}")
    if not seeds:
        raise UserError(f"{param('seeds')}: give at least one seed, e.g. 42")
    wrong = [s for s in seeds if not 0 <= s < 2**32]
    if wrong:
        raise UserError(f"{param('seeds', value)}: seeds must lie in [0, 2^32) (numpy and torch seeds), got {wrong[0]}")
    return tuple(dict.fromkeys(seeds))


def parse_names(value: Union[None, str, Sequence[str]], name: str) -> Optional[List[str]]:
    """`a,b` or a list, without repeats; None when absent; an empty list is a mistake (an empty
    `tasks` must not silently mean every task)."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    names = list(dict.fromkeys(str(v).strip() for v in items if str(v).strip()))
    if not names:
        raise UserError(f"{param(name, value if isinstance(value, str) else '')}: give at least one name, e.g. a,b "
                        f"(leave it out for all)")
    return names


def _method_config(method_spec, options: Any, extra: Mapping[str, Any]) -> Any:
    """The method's config from a dict, `key=value` strings or a config object, with `extra`
    (a grid point's method values) on top."""
    if options is None:
        config = method_spec.default_config()
    elif isinstance(options, method_spec.config_cls):
        config = options
    elif isinstance(options, Mapping):
        config = method_spec.config_from_dict(dict(options))
    elif isinstance(options, str):
        raise UserError(f"{param('options')}: give a dict or key=value strings, e.g. ['rank=8'], not {options!r}")
    else:
        config = method_spec.config_from_opts(list(options))
    if extra:
        config = method_spec.config_from_dict({**config_to_dict(config), **extra})
    return config


def _option_names(options: Any) -> List[str]:
    if options is None or dataclasses.is_dataclass(options):
        return []
    if isinstance(options, Mapping):
        return list(options)
    return [str(item).partition("=")[0].strip() for item in options]


def _weights(weights: Optional[str], weights_dir: Optional[PathLike], backbone) -> Optional[str]:
    """`weights` wins; `weights_dir` is a folder in which the backbone's published file (or the
    file of the release `weights` names) is found by name."""
    release = backbone.named_release(weights)
    if (weights is not None and release is None) or weights_dir is None:
        return None if weights is None else str(weights)
    folder = as_path(weights_dir)
    if not folder.is_dir():
        raise UserError(f"{param('weights_dir', folder)}: no such folder")
    return str(folder.resolve() / release.file) if release is not None else str(folder.resolve())


def _log(log: Union[None, str, Iterable[str]]) -> Tuple[str, ...]:
    import importlib.util

    values = [log] if isinstance(log, str) else list(log or ())
    for value in values:
        if value not in LOGS:
            raise unknown_name_error("log", value, LOGS, param("log"))
    if "tensorboard" in values and importlib.util.find_spec("tensorboard") is None:
        raise UserError(f"{param('log', 'tensorboard')} needs TensorBoard: pip install 'alore-bench[tensorboard]'")
    return tuple(dict.fromkeys(values))


def build_spec(method: str, backbone: str, suite: str = "vtab1k", *, tasks: Union[None, str, Sequence[str]] = None,
               seeds: Seeds = (42,), options: Any = None, recipe: Optional[Mapping[str, Any]] = None,
               weights: Optional[str] = None, weights_dir: Optional[PathLike] = None, preset: Optional[str] = None,
               data_dir: Optional[PathLike] = None, results_dir: PathLike = "results", device: str = "auto",
               use_tuned: bool = True, grid: Optional[Grid] = None, grid_index: Optional[int] = None,
               variant: Optional[str] = None, force: bool = False, save_adapters: bool = False,
               log: Union[None, str, Iterable[str]] = (), checkpoint_every: int = 10,
               eval_batch_size: int = EVAL_BATCH_SIZE, test_every: int = 0) -> RunSpec:
    """The one builder of run specs. `options` are the method's (a dict, `key=value` strings or a
    config object); `recipe` holds TrainConfig fields (None values mean "the suite's"). A tuning
    spec names its `grid` and `grid_index`: the point's values join the recipe and the options and
    the stage is `tune`. Every input is checked here, before any data or weights are looked at."""
    from ..data.suites import SUITES
    from ..devices import device_name
    from ..methods import METHODS
    from ..presets import PRESETS, published_choice

    method_spec, suite_spec = METHODS.get(method), SUITES.get(suite)
    from ..backbones import BACKBONES

    backbone_name = BACKBONES.canonical(backbone)
    given = {k: v for k, v in dict(recipe or {}).items() if v is not None}
    # The preset's published protocol, normalisation and weights, where the caller gave none.
    published = published_choice(PRESETS.get(preset) if preset else None, BACKBONES.get(backbone_name), given, weights)
    suite_recipe = {**suite_spec.recipe_for(method_spec.name), **published.recipe}
    weights = weights if weights is not None else published.weights
    point_train, point_method = {}, {}
    if grid is not None:
        if grid_index is None or not 0 <= grid_index < len(grid.points()):
            raise UserError(f"{param('grid_index', grid_index)}: not a point of the grid ({len(grid.points())} points)")
        if given.get("stage", "tune") != "tune":
            raise UserError(f"{param('stage', given['stage'])}: a tuning grid runs on the tune stage")
        point_train, point_method = split_point(grid.points()[grid_index])
        fixed = sorted(set(grid.keys) & (set(_option_names(options)) | set(given)))
        if fixed:
            raise UserError(f"{', '.join(fixed)} is given both as a fixed value and in {param('grid')}: "
                            "give it in one place")
        given = {**given, **point_train, "stage": "tune"}
    if grid is None:
        train = make_train_config(suite_recipe, given)
        method_config = _method_config(method_spec, options, point_method)
    else:
        # The fixed values first, so that a mistake in them is not blamed on the grid point.
        make_train_config(suite_recipe, {k: v for k, v in given.items()
                                                                      if k not in point_train})
        _method_config(method_spec, options, {})
        try:
            train = make_train_config(suite_recipe, given)
            method_config = _method_config(method_spec, options, point_method)
        except UserError as error:
            point = ", ".join(f"{k}={v}" for k, v in grid.points()[grid_index].items())
            raise UserError(f"{param('grid')} point {point}: {error.template}") from None
    explicit = frozenset((set(given) - set(point_train) - {"stage"} if grid is not None else set(given))
                         | set(_option_names(options)))
    if not 0 <= checkpoint_every <= MAX_EPOCHS:
        raise UserError(f"{param('checkpoint_every', checkpoint_every)}: give a number of epochs up to {MAX_EPOCHS}, "
                        "or 0 for no checkpoints")
    if not 1 <= eval_batch_size <= MAX_EVAL_BATCH:
        raise UserError(f"{param('eval_batch_size', eval_batch_size)}: give a number of images in "
                        f"[1, {MAX_EVAL_BATCH}]")
    _check_test_every(test_every, method_spec, train)
    check_folder_path(default_data_dir(data_dir), "data_dir")
    check_folder_path(as_path(results_dir), "results_dir")
    spec = RunSpec(
        method=method_spec.name, backbone=backbone_name, suite=suite_spec.name,
        tasks=tuple(t.name for t in suite_spec.select(parse_names(tasks, "tasks"))), seeds=parse_seeds(seeds),
        method_config=method_config, train=train, data_dir=default_data_dir(data_dir),
        results_dir=as_path(results_dir), device=device_name(device),
        weights=_weights(weights, weights_dir, BACKBONES.get(backbone_name)),
        preset=PRESETS.get(preset).name if preset else None, grid=grid, grid_index=grid_index,
        use_tuned=use_tuned and grid is None, explicit=explicit, variant=variant, force=force,
        save_adapters=save_adapters, log=_log(log), checkpoint_every=checkpoint_every,
        eval_batch_size=eval_batch_size, test_every=test_every, preset_differences=published.differences)
    check_spec(spec)
    return spec


def _check_test_every(test_every: int, method_spec, train: TrainConfig) -> None:
    if not 0 <= test_every <= MAX_EPOCHS:
        raise UserError(f"{param('test_every', test_every)}: give a number of epochs up to {MAX_EPOCHS}, or 0 for "
                        "no test curve")
    if test_every and train.stage != "final":
        raise UserError(f"{param('test_every', test_every)} evaluates the test split, which a {train.stage} run must "
                        "not see: use it on final runs only")
    if test_every and method_spec.feature_probe:
        raise UserError(f"{param('test_every', test_every)}: {method_spec.name} fits its head in one solve, it has "
                        "no epochs to evaluate after")


def preset_difference_lines(spec: RunSpec) -> Tuple[str, ...]:
    """One line per setting in which the run differs from what its preset was published with."""
    from ..presets import PublishedChoice

    return PublishedChoice({}, None, spec.preset_differences).lines(spec.preset, spec.backbone) if spec.preset else ()


def resolve_protocol(spec: RunSpec, kinds: Mapping[str, str]) -> RunSpec:
    """The spec with protocol `auto` replaced by the one its tasks' prepared data imply (`kinds`:
    task -> data source kind, for the tasks at hand: all of them in preflight), saying so in `protocol_choice`; any other spec as it is. Identities
    hold the concrete protocol, so `auto` on TFDS data files records where `vpt` always did."""
    from ..protocols import AUTO, resolve_auto

    if spec.train.protocol != AUTO:
        return spec
    chosen = resolve_auto(dict(kinds))
    return spec.replace(train=dataclasses.replace(spec.train, protocol=chosen), protocol_choice=f"{AUTO} -> {chosen}")


def check_spec(spec: RunSpec) -> None:
    """What can be wrong with a spec before the world is looked at: per-task options naming other
    tasks, a preset for another method or suite or clashing with fixed values, flips on cached
    features."""
    from .hparams import train_config_for

    lengths = getattr(spec.method_config, "lengths", None)
    unknown = sorted(set(lengths()) - set(spec.suite_spec.task_names)) if lengths else []
    if unknown:
        raise UserError(f"{param('options')} task_lengths names {', '.join(unknown)}, not tasks of suite "
                        f"{spec.suite} ({', '.join(spec.suite_spec.task_names)})")
    preset = spec.preset_spec
    if preset is not None:
        preset.check(spec.method, spec.suite, spec.suite_spec.task_names)
        clash = sorted(spec.explicit & preset.recipe_keys())
        if clash:
            raise UserError(f"{param('preset', preset.name)} sets {', '.join(clash)} per task; drop "
                            f"{', '.join(param(k) for k in clash)} or the preset")
        searched = sorted(set(spec.grid.keys if spec.grid is not None else ()) & preset.recipe_keys())
        if searched:  # every grid point would train with the preset's value: a search that searches nothing
            raise UserError(f"{param('preset', preset.name)} sets {', '.join(searched)} per task, so the tuning "
                            f"grid cannot search it: pass a {param('grid')} with other keys, or drop the preset")
    for task in spec.tasks if spec.method_spec.feature_probe else ():  # what a probe on cached features cannot do
        config = train_config_for(spec, task)
        unused = [k for k, on in (("flip", config.flip), ("train_crop", config.train_crop != "protocol"),
                                  ("ema_decay", config.ema_decay > 0)) if on]
        if unused:
            raise UserError(f"{spec.method} trains its head on cached features, which cannot be flipped, cropped "
                            f"or averaged: drop {', '.join(unused)} from the recipe")
