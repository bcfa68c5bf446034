"""The GPU check's synthetic VTAB-shaped suites, as a local plugin (`--plugins` or
$ALORE_BENCH_PLUGINS): one task of random images and labels, prepared through the real `prepare`
path and trained through the real `run` path. Its numbers are timings only (random labels teach
nothing).

- `gpu_check`: 1,000 training (train800val200) and 10,000 test images at 224 px, 100 classes.
- `gpu_check_smoke`: 100 training and 200 test images at 32 px, for `gpu_check.sh --smoke` on CPU.
- `overhead224`: 16 training and 16 test images at 224 px, for benchmarks/job_overhead.py.
"""

from __future__ import annotations

import numpy as np

from alore_bench.data.demo import GENERATORS
from alore_bench.data.suites import SUITES, Suite, Task

SIZES = {"gpu_check": (224, 800, 200, 10_000), "gpu_check_smoke": (32, 80, 20, 200), "overhead224": (224, 8, 8, 16)}
CLASSES = 100


def random_splits(task: Task):
    """Uniform random uint8 images and labels for each VTAB split (train800val200 = train800 + val200)."""
    size = SIZES[task.suite][0]
    rng = np.random.default_rng(0)

    def draw(count: int):
        return (rng.integers(0, 256, size=(count, size, size, 3), dtype=np.uint8),
                rng.integers(0, task.classes, size=count).astype(np.int64))

    train800, val200, test = draw(task.splits["train800"]), draw(task.splits["val200"]), draw(task.splits["test"])
    both = (np.concatenate([train800[0], val200[0]]), np.concatenate([train800[1], val200[1]]))
    return {"train800": train800, "val200": val200, "train800val200": both, "test": test}


def _suite(name: str) -> Suite:
    size, train, val, test = SIZES[name]
    task = Task(name="random", suite=name, group="Natural", classes=CLASSES, display="Random",
                generator="gpu_check_random", description=f"uniform random {size}-px images and labels (timing only)",
                splits={"train800": train, "val200": val, "train800val200": train + val, "test": test})
    return Suite(name=name, description=f"GPU check: one VTAB-shaped task of random {size}-px images",
                 groups=("Natural",), source="generated", sources=("generated",), tasks=(task,),
                 recipe={"protocol": "auto", "epochs": 2, "warmup_epochs": 0, "batch_size": 64, "lr": 1e-3})


GENERATORS["gpu_check_random"] = random_splits
for _name in SIZES:
    SUITES.register(_name, _suite(_name))

