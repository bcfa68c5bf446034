"""The prepared-data cache: per task and split, uint8 images and int labels as .npy files plus a
`manifest.json` with counts, classes, source and checksums. Writes are atomic per task."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from .._version import __version__
from ..errors import UserError
from .suites import Suite, Task

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = 1
def task_dir(data_dir: Path, task: Task) -> Path:
    return data_dir / task.suite / task.name


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).data).hexdigest()


class TaskWriter:
    """Writes a task's splits into a hidden staging folder and moves it into place only when
    everything succeeded (`commit`); on any error the staging folder is removed, so a failed
    preparation never leaves a half-written task behind."""

    def __init__(self, data_dir: Path, task: Task, allow_mismatch: bool = False):
        self.task = task
        self.allow_mismatch = allow_mismatch
        self.final = task_dir(data_dir, task)
        self.staging = self.final.with_name(f".{self.final.name}.tmp-{os.getpid()}")
        self.splits: Dict[str, Dict[str, Any]] = {}

    def __enter__(self) -> "TaskWriter":
        self.final.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def image_array(self, split: str, count: int, height: int, width: int) -> np.ndarray:
        """A writable uint8 (count, height, width, 3) array on disk for `split`."""
        return np.lib.format.open_memmap(self.staging / f"{split}.images.npy", mode="w+", dtype=np.uint8,
                                         shape=(count, height, width, 3))

    def finish_split(self, split: str, images: np.ndarray, labels: np.ndarray, **facts: Any) -> None:
        labels = np.ascontiguousarray(labels, dtype=np.int64)
        expected = None if self.allow_mismatch else self.task.splits[split]
        check_arrays(self.task, split, images, labels, expected)
        if isinstance(images, np.memmap):
            images.flush()
        else:
            np.save(self.staging / f"{split}.images.npy", np.ascontiguousarray(images, dtype=np.uint8))
        np.save(self.staging / f"{split}.labels.npy", labels)
        self.splits[split] = {
            "count": int(len(labels)),
            "expected_count": self.task.splits.get(split),
            "image_shape": list(images.shape[1:]),
            "images_sha256": _sha256(images),
            "labels_sha256": _sha256(labels),
            "classes_present": int(len(np.unique(labels))),
            **facts,
        }

    def ragged(self, split: str) -> "RaggedImages":
        """An append-only store for images of varying size (FGVC training images)."""
        return RaggedImages(self.staging, split)

    def finish_ragged_split(self, split: str, store: "RaggedImages", labels: np.ndarray, **facts: Any) -> None:
        labels = np.ascontiguousarray(labels, dtype=np.int64)
        flat, shapes = store.close()
        where = f"task {self.task.suite}/{self.task.name} split {split}"
        if len(shapes) != len(labels):
            raise UserError(f"{where}: {len(shapes)} images but {len(labels)} labels")
        expected = None if self.allow_mismatch else self.task.splits[split]
        if expected is not None and len(labels) != expected:
            raise UserError(f"{where}: expected {expected} examples, found {len(labels)}")
        if len(labels) and (labels.min() < 0 or labels.max() >= self.task.classes):
            raise UserError(f"{where}: labels must lie in [0, {self.task.classes}), found [{labels.min()}, {labels.max()}]")
        np.save(self.staging / f"{split}.labels.npy", labels)
        self.splits[split] = {
            "count": int(len(labels)),
            "expected_count": self.task.splits.get(split),
            "image_shape": "varying",
            "min_side": int(shapes[:, :2].min()) if len(shapes) else None,
            "images_sha256": _sha256(flat),
            "shapes_sha256": _sha256(shapes),
            "labels_sha256": _sha256(labels),
            "classes_present": int(len(np.unique(labels))),
            **facts,
        }

    def commit(self, source: Mapping[str, Any]) -> Dict[str, Any]:
        manifest = {
            "schema": MANIFEST_SCHEMA,
            "suite": self.task.suite,
            "task": self.task.name,
            "group": self.task.group,
            "classes": self.task.classes,
            "source": dict(source),
            "allow_mismatch": self.allow_mismatch,
            "splits": self.splits,
            "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "alore_bench": __version__,
        }
        (self.staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if self.final.exists():
            old = self.final.with_name(f".{self.final.name}.old-{os.getpid()}")
            os.replace(self.final, old)
            os.replace(self.staging, self.final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.staging, self.final)
        return manifest


class RaggedImages:
    """Images of varying (H, W, 3) appended to one flat uint8 array plus an (N, 3) shape table.
    Bytes stream to disk as they come; `close` wraps them as `<split>.images.npy` (1-D)."""

    def __init__(self, folder: Path, split: str):
        self.folder, self.split = folder, split
        self.raw_path = folder / f"{split}.images.raw"
        self.raw = open(self.raw_path, "wb")
        self.shapes: list = []

    def append(self, image: np.ndarray) -> None:
        image = np.ascontiguousarray(image, dtype=np.uint8)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) image, got {image.shape}")
        self.raw.write(image.tobytes())
        self.shapes.append(image.shape)

    def close(self) -> Tuple[np.ndarray, np.ndarray]:
        self.raw.close()
        shapes = np.array(self.shapes, dtype=np.int64).reshape(-1, 3)
        total = int(np.prod(shapes, axis=1).sum())
        flat = np.lib.format.open_memmap(self.folder / f"{self.split}.images.npy", mode="w+", dtype=np.uint8,
                                         shape=(total,))
        with open(self.raw_path, "rb") as raw:
            position = 0
            while chunk := raw.read(1 << 24):
                flat[position:position + len(chunk)] = np.frombuffer(chunk, np.uint8)
                position += len(chunk)
        flat.flush()
        self.raw_path.unlink()
        np.save(self.folder / f"{self.split}.shapes.npy", shapes)
        return flat, shapes


def write_task(data_dir: Path, task: Task, splits: Mapping[str, Tuple[np.ndarray, np.ndarray]],
               source: Mapping[str, Any]) -> Dict[str, Any]:
    """Write in-memory splits of a task atomically."""
    with TaskWriter(data_dir, task) as writer:
        for name, (images, labels) in splits.items():
            writer.finish_split(name, np.ascontiguousarray(images, dtype=np.uint8), labels)
        return writer.commit(source)


def check_arrays(task: Task, split: str, images: np.ndarray, labels: np.ndarray, expected: Optional[int]) -> None:
    where = f"task {task.suite}/{task.name} split {split}"
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise UserError(f"{where}: images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    if len(images) != len(labels):
        raise UserError(f"{where}: {len(images)} images but {len(labels)} labels")
    if expected is not None and len(labels) != expected:
        raise UserError(f"{where}: expected {expected} examples, found {len(labels)}")
    if len(labels) and (labels.min() < 0 or labels.max() >= task.classes):
        raise UserError(f"{where}: labels must lie in [0, {task.classes}), found [{labels.min()}, {labels.max()}]")


def is_prepared(data_dir: Path, task: Task) -> bool:
    return (task_dir(data_dir, task) / MANIFEST).is_file()


def missing_tasks(data_dir: Path, suite: Suite, tasks) -> list:
    return [t.name for t in tasks if not is_prepared(data_dir, t)]


@dataclass(frozen=True)
class SplitData:
    task: Task
    split: str
    images: np.ndarray  # uint8 (N, H, W, 3), or flat uint8 (total,) when `shapes` is set; memory-mapped
    labels: np.ndarray  # int64 (N,)
    manifest: Mapping[str, Any]
    shapes: Optional[np.ndarray] = None  # (N, 3) for images of varying size

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def ragged(self) -> bool:
        return self.shapes is not None

    def image(self, index: int) -> np.ndarray:
        """One (H, W, 3) image of a ragged split (a view into the memory map)."""
        start = int(self.offsets[index])
        return self.images[start:start + int(np.prod(self.shapes[index]))].reshape(self.shapes[index])

    @property
    def offsets(self) -> np.ndarray:
        cached = self.__dict__.get("_offsets")
        if cached is None:
            cached = np.concatenate([[0], np.cumsum(np.prod(self.shapes, axis=1))])
            object.__setattr__(self, "_offsets", cached)
        return cached


def read_manifest(data_dir: Path, task: Task) -> Dict[str, Any]:
    path = task_dir(data_dir, task) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"task {task.suite}/{task.name} is not prepared in {data_dir}: "
                        f"run `alore-bench prepare --suite {task.suite}`") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: corrupt manifest ({exc}); rerun `alore-bench prepare --suite {task.suite} --force`") from None


def load_split(data_dir: Path, task: Task, split: str) -> SplitData:
    """Read one split from the cache and verify counts, labels and checksums against the manifest."""
    manifest = read_manifest(data_dir, task)
    folder = task_dir(data_dir, task)
    info = manifest["splits"].get(split)
    fix = f"rerun `alore-bench prepare --suite {task.suite} --tasks {task.name} --force`"
    if info is None:
        raise UserError(f"task {task.suite}/{task.name}: split {split} missing from {folder / MANIFEST}; {fix}")
    shapes = None
    try:
        images = np.load(folder / f"{split}.images.npy", mmap_mode="r")
        labels = np.load(folder / f"{split}.labels.npy")
        if "shapes_sha256" in info:
            shapes = np.load(folder / f"{split}.shapes.npy")
    except (OSError, ValueError) as exc:
        raise UserError(f"task {task.suite}/{task.name} split {split}: unreadable cache file ({exc}); {fix}") from None
    expected = None if manifest.get("allow_mismatch") else task.splits[split]
    if shapes is None:
        check_arrays(task, split, images, labels, expected)
    elif len(shapes) != len(labels) or (expected is not None and len(labels) != expected) \
            or int(np.prod(shapes, axis=1).sum()) != images.size:
        raise UserError(f"task {task.suite}/{task.name} split {split}: image table does not match {folder}; {fix}")
    checks = [(images, "images_sha256"), (labels, "labels_sha256")] + ([(shapes, "shapes_sha256")] if shapes is not None else [])
    if any(_sha256(array) != info[key] for array, key in checks):
        raise UserError(f"task {task.suite}/{task.name} split {split}: checksum mismatch in {folder}; {fix}")
    return SplitData(task, split, images, labels, manifest, shapes)
