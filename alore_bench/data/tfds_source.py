"""Prepare VTAB-1k tasks from tensorflow-datasets builders, read through `data_source`
(ArrayRecord, no TensorFlow needed to read; some builders need TensorFlow to generate)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Optional
from urllib.parse import urlparse

import numpy as np

from ..errors import UserError
from .. import network
from .cache import TaskWriter
from .images import TF_RESIZE_NOTE, fit, storage_size
from .label_rules import LABEL_RULES, LabelRuleError
from .suites import Task

SOURCE_SPLITS = ("train800", "val200", "test")
# Builders whose generation imports TensorFlow (reading the prepared ArrayRecords does not).
NEEDS_TENSORFLOW = ("cifar100", "svhn_cropped", "dsprites", "smallnorb")
TENSORFLOW_HINT = "pip install 'alore-bench[vtab]' (tensorflow-datasets with tensorflow-cpu)"


# What each offline route needs, said where a TFDS preparation cannot go on.
IMPORT_ROUTES = {
    "folder": "import a pre-made copy with --source folder PATH",
    "json": "import the images with VPT's split files with --source json PATH",
    "archive": "import the original archives with --source archive DIR",
}


def offline_routes(task: Task) -> str:
    """The suite's own ways around TFDS ('--source folder' for VTAB-1k; json or archive for FGVC,
    which refuses folder): advice a user can follow as written."""
    from .suites import SUITES

    sources = SUITES.get(task.suite).sources if task.suite in SUITES else ("folder",)
    routes = [IMPORT_ROUTES[kind] for kind in sources if kind in IMPORT_ROUTES]
    return ", or ".join(routes) or "prepare it where the download works"


def tensorflow_missing() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorflow") is None


class TaskUnavailable(Exception):
    """This task cannot be prepared here (manual files or TensorFlow missing); others go on. The
    message does not repeat the task's name: the summary prints it before the message."""


def _tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise UserError("tensorflow-datasets is not installed: pip install 'alore-bench[tfds]'") from None
    tfds.disable_progress_bar()  # TFDS's own bars would interleave with ours: ours show its steps
    return tfds


def check_download_hosts(task: Task, builder) -> None:
    """Fail fast, before TFDS's minutes of retries, when a host the builder downloads from does not
    answer and its file is not already in TFDS's download folder."""
    urls = list(getattr(builder, "url_infos", None) or {})
    root = getattr(builder, "_data_dir_root", None)
    downloads = Path(root, "downloads") if root else None
    have = [f.name for f in downloads.iterdir()] if downloads is not None and downloads.is_dir() else []
    needed = [u for u in urls if not any(Path(urlparse(u).path).stem in name for name in have)]
    silent = network.unreachable_hosts(needed, 5.0)
    if silent:
        raise TaskUnavailable(
            f"cannot reach {', '.join(silent)} to download {task.tfds} (no answer within 5 s); "
            f"offline, {offline_routes(task)}, or prepare it where the host is reachable and pass --tfds-dir to "
            "that copy")


def check_manual_files(task: Task, manual_dir: Path) -> None:
    missing = [name for name in task.manual_files if not (manual_dir / name).exists()]
    if missing:
        raise TaskUnavailable(
            f"needs a manual download: put {', '.join(missing)} into {manual_dir} "
            f"({task.manual_hint}), then rerun `alore-bench prepare --suite {task.suite} --tasks {task.name}`")


def open_builder(task: Task, tfds_dir: Optional[Path], manual_dir: Path, progress=None):
    tfds = _tfds()
    builder = tfds.builder(task.tfds, data_dir=str(tfds_dir) if tfds_dir else None, file_format="array_record")
    prepared = Path(str(builder.data_path), "dataset_info.json").exists()
    if not prepared and task.tfds.split(":")[0].split("/")[0] in NEEDS_TENSORFLOW and tensorflow_missing():
        raise TaskUnavailable(f"TFDS needs TensorFlow to generate {task.tfds}: {TENSORFLOW_HINT}; or "
                              "prepare it where TensorFlow exists and point --tfds-dir at that copy, or "
                              f"{offline_routes(task)}")
    if task.manual and not prepared:
        check_manual_files(task, manual_dir)
    elif not prepared:
        check_download_hosts(task, builder)
    bar = progress.add_task(f"{task.name}: TFDS download and prepare {task.tfds}", total=None) \
        if progress is not None and not prepared else None
    try:
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("tensorflow"):
            raise TaskUnavailable(
                f"TFDS needs TensorFlow to generate {task.tfds} ({TENSORFLOW_HINT}), "
                f"or prepare it where TensorFlow exists and point --tfds-dir at that copy, or {offline_routes(task)}") \
                from None
        raise
    except Exception as exc:  # downloads fail in many ways (network, moved URLs, corrupt archives)
        reason = (str(exc).strip().splitlines() or [""])[0][:300]
        raise TaskUnavailable(f"TFDS could not download or prepare {task.tfds} "
                              f"({type(exc).__name__}: {reason}); fix the download, or "
                              f"{offline_routes(task)}") from None
    finally:
        if bar is not None:
            progress.remove_task(bar)
    return tfds, builder


def prepare_tfds_task(task: Task, data_dir: Path, tfds_dir: Optional[Path], manual_dir: Path,
                      allow_mismatch: bool, progress, say: Callable[[str], None]) -> Dict[str, Any]:
    tfds, builder = open_builder(task, tfds_dir, manual_dir, progress)
    rule = LABEL_RULES[task.label_rule or "plain"]
    image_shape = builder.info.features["image"].shape
    size = storage_size(image_shape)
    with TaskWriter(data_dir, task, allow_mismatch) as writer:
        arrays = {}
        for split in SOURCE_SPLITS:
            source = builder.as_data_source(split=task.slices[split])
            count = len(source)
            images = writer.image_array(split, count, *size)
            labels = np.empty(count, np.int64)
            bar = progress.add_task(f"{task.name} {split}", total=count)
            for i in range(count):
                try:
                    image, label = rule(source[i])
                except LabelRuleError as exc:
                    raise UserError(f"task {task.name} split {split} ({task.slices[split]}) record {i}: {exc}") from None
                images[i] = fit(image, size, "tf_bilinear")
                labels[i] = label
                progress.advance(bar)
            progress.remove_task(bar)
            writer.finish_split(split, images, labels, source_slice=task.slices[split])
            arrays[split] = (images, labels)
        # train800val200 is the two slices joined, train800 first (as the official code does).
        joined = writer.image_array("train800val200", len(arrays["train800"][1]) + len(arrays["val200"][1]), *size)
        joined[:len(arrays["train800"][1])] = arrays["train800"][0]
        joined[len(arrays["train800"][1]):] = arrays["val200"][0]
        writer.finish_split("train800val200", joined,
                            np.concatenate([arrays["train800"][1], arrays["val200"][1]]),
                            source_slice=f"{task.slices['train800']} + {task.slices['val200']}")
        return writer.commit({
            "kind": "tfds",
            "builder": builder.info.full_name,
            "spec": task.tfds,
            "version": str(builder.info.version),
            "tensorflow_datasets": tfds.__version__,
            "label_rule": task.label_rule or "plain",
            "resize": TF_RESIZE_NOTE,
            "notes": task.notes,
        })
