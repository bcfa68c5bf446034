"""A study's expansion into run specs, through the same builder as `run` and `tune`: per suite,
backbone and variant, one tuning spec per grid point (tuning seeds, tune stage), then one final
spec (the study's seeds) that selects from those tuning records. Tuning runs before final."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from ..paths import PathLike
from ..runs.spec import RunSpec, build_spec
from .studyfile import Study

STAGES = ("tune", "final")


def study_specs(study: Study, data_dir: Optional[PathLike] = None, results_dir: PathLike = "results",
                device: str = "auto", force: bool = False, log: Tuple[str, ...] = (),
                eval_batch_size: Optional[int] = None) -> Dict[str, List[RunSpec]]:
    """The study's specs by stage, in a stable order: suite, backbone, variant, grid point.
    `eval_batch_size` overrides the study file's."""
    specs: Dict[str, List[RunSpec]] = {stage: [] for stage in STAGES}
    eval_batch_size = study.eval_batch_size if eval_batch_size is None else eval_batch_size
    for suite in study.suite_names:
        tasks = study.tasks_of(suite)
        for backbone, weights in study.backbones:
            for variant in study.variants:
                if suite not in variant.grids:
                    continue
                common = dict(tasks=tasks, options=dict(variant.options), weights=weights, preset=variant.preset,
                              data_dir=data_dir, results_dir=results_dir, device=device, variant=variant.name,
                              force=force, log=log, eval_batch_size=eval_batch_size)
                recipe = {**study.recipe, **variant.recipe}
                grid = variant.grids[suite]
                # An empty grid (`grid = {}`: settings fixed, e.g. by a preset) has nothing to tune.
                for index in range(len(grid.points()) if grid else 0):
                    specs["tune"].append(build_spec(variant.method, backbone, suite, seeds=study.tuning_seeds,
                                                    recipe={**recipe, "stage": "tune"}, grid=grid, grid_index=index,
                                                    **common))
                specs["final"].append(build_spec(variant.method, backbone, suite, seeds=study.seeds,
                                                 recipe={**recipe, "stage": "final"}, use_tuned=bool(grid), **common))
    return specs


def job_count(specs: Dict[str, List[RunSpec]]) -> int:
    return sum(len(spec.tasks) * len(spec.seeds) for stage in specs.values() for spec in stage)
