"""Prepare FGVC tasks: from VPT-style split JSONs beside the original image folders, or from
TFDS builders. Training images are stored at short side 256 (cropped at random to 224 and
flipped during training); val and test images are stored as VPT evaluates them: resize 256,
centre crop 224."""

from __future__ import annotations

import json
import math
import posixpath
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

from ..errors import UserError, param
from .cache import TaskWriter
from .images import decode_rgb
from .label_rules import to_rgb
from .suites import Task

RESIZE = 256
CROP = 224
FGVC_VAL_SEED = 0  # seeds the 10% hold-out of the official train set for --source tfds
TRANSFORM_NOTE = ("train: PIL bilinear resize of the short side to 256, random 224 crop + horizontal flip at "
                  "training time; val/test: resize 256, centre crop 224 (VPT)")


def resize_short_side(image: np.ndarray, size: int = RESIZE) -> np.ndarray:
    h, w = image.shape[:2]
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_h, new_w = size, int(size * w / h)
    if (new_h, new_w) == (h, w):
        return image
    return np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR), dtype=np.uint8)


def centre_crop(image: np.ndarray, size: int = CROP) -> np.ndarray:
    h, w = image.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return image[top:top + size, left:left + size]


class FgvcWriter:
    """Adds examples split by split in the FGVC storage layout."""

    def __init__(self, writer: TaskWriter, progress):
        self.writer, self.progress = writer, progress

    def split(self, split: str, count: int, images, labels: np.ndarray, **facts) -> None:
        bar = self.progress.add_task(f"{self.writer.task.name} {split}", total=count)
        if split == "train":
            store = self.writer.ragged(split)
            for image in images:
                store.append(resize_short_side(image))
                self.progress.advance(bar)
            self.writer.finish_ragged_split(split, store, labels, **facts)
        else:
            array = self.writer.image_array(split, count, CROP, CROP)
            for i, image in enumerate(images):
                array[i] = centre_crop(resize_short_side(image))
                self.progress.advance(bar)
            self.writer.finish_split(split, array, labels, **facts)
        self.progress.remove_task(bar)


def find_dataset_folder(root: Path, task: Task) -> Path:
    for name in (task.name, *task.aliases):
        if (root / name / "train.json").is_file():
            return root / name
    if (root / "train.json").is_file():
        return root
    raise UserError(f"{param('source', 'json')} {root}: no {' or '.join((task.name, *task.aliases))} folder with "
                    "train.json, val.json and test.json inside")


def read_split_json(path: Path) -> List[Tuple[str, int]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: split file missing; VPT's FGVC splits are train.json, val.json and test.json") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, int) for k, v in data.items()):
        raise UserError(f"{path}: expected a JSON object mapping image paths to integer class ids")
    for rel in data:
        normal = posixpath.normpath(rel)
        if posixpath.isabs(rel) or normal == ".." or normal.startswith("../"):
            raise UserError(f"{path}: image path {rel!r} escapes the dataset's image folder")
    return list(data.items())


def prepare_json_task(task: Task, data_dir: Path, root: Path, allow_mismatch: bool, progress,
                      say: Callable[[str], None]) -> Dict:
    folder = find_dataset_folder(root, task)
    entries = {split: read_split_json(folder / f"{split}.json") for split in ("train", "val", "test")}
    # VPT sorts the class ids and maps them to 0..C-1; we do it over all three files together.
    ids = sorted({label for items in entries.values() for _, label in items})
    if len(ids) != task.classes:
        raise UserError(f"{folder}: the split files hold {len(ids)} classes, {task.name} has {task.classes}")
    remap = {label: i for i, label in enumerate(ids)}
    image_root = folder / (task.image_root or "")
    with TaskWriter(data_dir, task, allow_mismatch) as writer:
        fgvc = FgvcWriter(writer, progress)
        for split, items in entries.items():
            where = str(folder / f"{split}.json")
            images = (decode_rgb(image_root / rel, str(image_root / rel), where) for rel, _ in items)
            labels = np.array([remap[label] for _, label in items], np.int64)
            fgvc.split(split, len(items), images, labels, split_file=f"{split}.json")
        return writer.commit({"kind": "json", "path": str(folder.resolve()), "image_root": str(image_root.resolve()),
                              "class_ids": "sorted and mapped to 0..C-1 over train, val and test",
                              "transforms": TRANSFORM_NOTE})


def hold_out(count: int, fraction: float = 0.1, seed: int = FGVC_VAL_SEED) -> Tuple[np.ndarray, np.ndarray]:
    """(train indices, val indices): a seeded ceil(10%) of the official train set becomes val,
    the sizes VPT's splits have (its exact membership exists only in its JSON files)."""
    order = np.random.default_rng(seed).permutation(count)
    size = math.ceil(count * fraction)
    return np.sort(order[size:]), np.sort(order[:size])


def prepare_tfds_fgvc_task(task: Task, data_dir: Path, tfds_dir: Optional[Path], manual_dir: Path,
                           allow_mismatch: bool, progress, say: Callable[[str], None]) -> Dict:
    from .tfds_source import TaskUnavailable, open_builder

    if not task.tfds:
        raise TaskUnavailable(f"no TFDS builder exists for it; {task.manual_hint}")
    tfds, builder = open_builder(task, tfds_dir, manual_dir, progress)
    official_train = builder.as_data_source(split="train")
    if task.tfds_val:
        sources = {"train": (official_train, np.arange(len(official_train))),
                   "val": (builder.as_data_source(split=task.tfds_val), None)}
        val_rule = f"official {task.tfds_val} split"
    else:
        train_idx, val_idx = hold_out(len(official_train))
        sources = {"train": (official_train, train_idx), "val": (official_train, val_idx)}
        val_rule = f"seeded (seed {FGVC_VAL_SEED}) ceil(10%) of the official train set; not VPT's exact membership"
    sources["test"] = (builder.as_data_source(split="test"), None)
    with TaskWriter(data_dir, task, allow_mismatch) as writer:
        fgvc = FgvcWriter(writer, progress)
        for split, (source, indices) in sources.items():
            indices = np.arange(len(source)) if indices is None else indices
            labels = np.array([int(source[int(i)]["label"]) for i in indices], np.int64)
            images = (to_rgb(source[int(i)]["image"]) for i in indices)
            fgvc.split(split, len(indices), images, labels)
        return writer.commit({"kind": "tfds", "builder": builder.info.full_name, "spec": task.tfds,
                              "version": str(builder.info.version), "tensorflow_datasets": tfds.__version__,
                              "val": val_rule, "transforms": TRANSFORM_NOTE})
