"""Prepare the five FGVC tasks from the files their authors distribute (`prepare --suite fgvc
--source archive DIR`), found in DIR by their published names, as archives or extracted folders:

    CUB-200-2011    CUB_200_2011.tgz  (CUB_200_2011/images.txt, image_class_labels.txt, train_test_split.txt)
    NABirds         nabirds.tar.gz    (nabirds/images.txt, image_class_labels.txt, train_test_split.txt, classes.txt)
    Oxford Flowers  102flowers.tgz (jpg/), imagelabels.mat, setid.mat (official train / val / test)
    Stanford Dogs   images.tar (Images/), lists.tar (train_list.mat, test_list.mat)
    Stanford Cars   cars_train/, cars_test/ (or cars_train.tgz, cars_test.tgz; mirrors nest them one
                    level deeper), cars_train_annos.mat, cars_test_annos_withlabels.mat

Official train and test come from each dataset's own lists; validation is the official one where
the dataset has it (Flowers), else a seeded ceil(10%) of the official train split (the TFDS
route's rule), so the sizes equal VPT's; VPT's exact validation membership exists only in its JSONs.
Archives are extracted member by member (streamed, never whole into memory) into a temporary
folder beside the task, with no path leaving the root, no links or devices, and a size cap.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import UserError, param
from .cache import TaskWriter
from .fgvc_source import FGVC_VAL_SEED, TRANSFORM_NOTE, FgvcWriter, hold_out
from .folder_source import MAX_FILE_BYTES, TreeReader
from .images import decode_rgb
from .suites import Task

MAX_ARCHIVE_BYTES = 64 * 2**30  # all members of one archive together (NABirds, the largest, is ~9 GB)
MAX_MEMBERS = 1_000_000  # members of one archive (NABirds, the most, has ~50k): past it, a bomb of tiny files
Items = List[Tuple[str, int]]  # (path relative to the dataset root, label 0..C-1)


class ArchiveMissing(Exception):
    """A dataset's published files are not in DIR (the task is skipped, the others go on)."""


@dataclass
class Lists:
    root: Path  # the folder the relative paths start from
    train: Items
    test: Items
    val: Optional[Items] = None  # the dataset's official validation split, where it has one
    files: List[str] = field(default_factory=list)
    label_rule: str = ""


# ---- finding and extracting ---------------------------------------------------------------------

def find(directory: Path, name: str, kind: str = "any") -> Optional[Path]:
    """DIR/name, or one or two levels below (mirrors nest the published folders)."""
    for pattern in (name, f"*/{name}", f"*/*/{name}"):
        for path in sorted(directory.glob(pattern)):
            if (kind == "dir" and path.is_dir()) or (kind == "file" and path.is_file()) or kind == "any":
                return path
    return None


def decompressed(archive: Path):
    """The archive as a stream of tar bytes: gzip, bzip2 and xz through their modules, which check
    the compressed stream's end (tarfile's own stream mode stops quietly at a truncated one)."""
    import bz2
    import gzip
    import lzma

    with open(archive, "rb") as handle:
        magic = handle.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.open(archive, "rb")
    if magic.startswith(b"BZh"):
        return bz2.open(archive, "rb")
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.open(archive, "rb")
    return open(archive, "rb")


def extract(archive: Path, destination: Path) -> None:
    """Stream the archive's regular files into `destination`: each member read in chunks as the
    archive is decompressed (tarfile's stream mode), paths that leave the root, links and devices
    refused, a cap per member, in all and on the number of members; a truncated archive is refused
    (its compressed stream is read to its checked end)."""
    total = members = 0
    try:
        with decompressed(archive) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                members += 1
                if members > MAX_MEMBERS:
                    raise UserError(f"{archive}: more than {MAX_MEMBERS} members, far more than any FGVC dataset has; "
                                    "refusing the archive")
                name = member.name
                normal = posixpath.normpath(name)
                if name.startswith("/") or normal == ".." or normal.startswith("../") or "\\" in name:
                    raise UserError(f"{archive}: member {name!r} escapes the archive root; refusing the archive")
                if member.isdir():
                    continue
                if not member.isfile():  # symlinks, hard links, devices, FIFOs
                    raise UserError(f"{archive}: member {name!r} is a link or special file; refusing the archive")
                if member.size > MAX_FILE_BYTES or total + member.size > MAX_ARCHIVE_BYTES:
                    raise UserError(f"{archive}: member {name!r} ({member.size} bytes) is over the limits "
                                    f"({MAX_FILE_BYTES} per file, {MAX_ARCHIVE_BYTES} in all); refusing the archive")
                total += member.size
                target = destination / normal
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                with open(target, "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
            while stream.read(1 << 20):  # to the end: gzip, bz2 and xz check it there
                pass
    except (tarfile.TarError, EOFError, OSError, ValueError) as error:
        raise UserError(f"{archive}: not a readable tar archive ({type(error).__name__}: {error})") from None


class Staging:
    """Where archives are extracted for one task: `.<task>-archives.tmp-PID` beside the task (a
    killed process's leftover is cleaned at the next start), removed when done."""

    def __init__(self, data_dir: Path, task: Task):
        self.path = data_dir / task.suite / f".{task.name}-archives.tmp-{os.getpid()}"

    def __enter__(self) -> "Staging":
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def tree(self, directory: Path, folder: str, archive: str, expected: Sequence[str]) -> Path:
        """The published folder, extracted already in DIR or extracted here from its archive."""
        found = find(directory, folder, "dir")
        if found is not None:
            return found
        packed = find(directory, archive, "file")
        if packed is None:
            raise ArchiveMissing(f"{archive} (or its extracted folder {folder}/)")
        extract(packed, self.path)
        found = find(self.path, folder, "dir")
        if found is None:
            raise UserError(f"{packed}: holds no {folder}/ folder ({', '.join(expected)} expected inside)")
        return found


def need_file(directory: Path, name: str, inside: Optional[Path] = None) -> Path:
    found = find(directory, name, "file") or (find(inside, name, "file") if inside is not None else None)
    if found is None:
        raise ArchiveMissing(name)
    return found


# ---- list formats ---------------------------------------------------------------------------------

def read_pairs(path: Path) -> Tuple[List[str], Dict[str, Tuple[str, int]]]:
    """`<id> <value>` lines (CUB's and NABirds' text files): ids in file order, id -> (value, line)."""
    order, pairs = [], {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read the list ({error})") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise UserError(f"{path} line {number}: expected '<id> <value>', got {line.strip()!r}")
        if parts[0] in pairs:
            raise UserError(f"{path} line {number}: image id {parts[0]} appears twice")
        order.append(parts[0])
        pairs[parts[0]] = (parts[1].strip(), number)
    return order, pairs


def as_int(value: str, path: Path, line: int, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise UserError(f"{path} line {line}: {what} {value!r} is not an integer") from None


def birds_lists(root: Path, task: Task, classes_file: bool) -> Lists:
    """CUB-200-2011 and NABirds: images.txt, image_class_labels.txt, train_test_split.txt (and
    NABirds' classes.txt, whose hierarchy has more ids than the 555 classes in use)."""
    images_path, labels_path, split_path = (root / n for n in ("images.txt", "image_class_labels.txt",
                                                               "train_test_split.txt"))
    for path in (images_path, labels_path, split_path):
        if not path.is_file():
            raise UserError(f"{path}: missing from {root} (the dataset's own lists are needed)")
    order, images = read_pairs(images_path)
    _, labels = read_pairs(labels_path)
    _, split = read_pairs(split_path)
    for path, table in ((labels_path, labels), (split_path, split)):
        for image_id, (_value, line) in table.items():
            if image_id not in images:
                raise UserError(f"{path} line {line}: image id {image_id} is not in {images_path.name}")
    for image_id in order:
        for path, table in ((labels_path, labels), (split_path, split)):
            if image_id not in table:
                raise UserError(f"{path}: no line for image id {image_id} ({images_path.name} line {images[image_id][1]})")
    raw = {i: as_int(labels[i][0], labels_path, labels[i][1], "class id") for i in order}
    if classes_file:
        classes_path = root / "classes.txt"
        if not classes_path.is_file():
            raise UserError(f"{classes_path}: missing from {root}")
        _, known = read_pairs(classes_path)
        known_ids = {as_int(k, classes_path, line, "class id") for k, (_v, line) in known.items()}
        for i in order:
            if raw[i] not in known_ids:
                raise UserError(f"{labels_path} line {labels[i][1]}: class id {raw[i]} is not in classes.txt")
        used = sorted(set(raw.values()))
        if len(used) != task.classes:
            raise UserError(f"{labels_path}: {len(used)} classes in use, {task.name} has {task.classes}")
        remap, rule = {c: n for n, c in enumerate(used)}, "the class ids in use, sorted, mapped to 0..C-1"
    else:
        for i in order:
            if not 1 <= raw[i] <= task.classes:
                raise UserError(f"{labels_path} line {labels[i][1]}: class id {raw[i]} out of range 1..{task.classes}")
        remap, rule = {c: c - 1 for c in range(1, task.classes + 1)}, "class id - 1"
    is_train = {}
    for i in order:
        flag = as_int(split[i][0], split_path, split[i][1], "train flag")
        if flag not in (0, 1):
            raise UserError(f"{split_path} line {split[i][1]}: train flag {flag} is not 0 or 1")
        is_train[i] = flag == 1
    pick = lambda train: [(f"images/{images[i][0]}", remap[raw[i]]) for i in order if is_train[i] == train]  # noqa: E731
    return Lists(root, pick(True), pick(False), files=[images_path.name, labels_path.name, split_path.name],
                 label_rule=rule)


def load_mat(path: Path) -> dict:
    from scipy.io import loadmat

    try:
        return loadmat(str(path))
    except Exception as error:  # scipy raises several kinds for a damaged .mat
        raise UserError(f"{path}: not a readable .mat file ({type(error).__name__}: {error})") from None


def mat_array(data: dict, key: str, path: Path) -> np.ndarray:
    if key not in data:
        raise UserError(f"{path}: no variable {key!r} in it")
    return np.asarray(data[key])


def check_label(value: int, classes: int, path: Path, entry: int) -> int:
    if not 1 <= value <= classes:
        raise UserError(f"{path} entry {entry}: label {value} out of range 1..{classes}")
    return value - 1


def flowers_lists(directory: Path, staging: Staging, task: Task) -> Lists:
    labels_path, setid_path = need_file(directory, "imagelabels.mat"), need_file(directory, "setid.mat")
    root = staging.tree(directory, "jpg", "102flowers.tgz", ["jpg/image_00001.jpg"]).parent
    labels = mat_array(load_mat(labels_path), "labels", labels_path).ravel()
    sets = load_mat(setid_path)

    def items(key: str) -> Items:
        out = []
        for entry, image_id in enumerate(mat_array(sets, key, setid_path).ravel(), 1):
            image_id = int(image_id)
            if not 1 <= image_id <= len(labels):
                raise UserError(f"{setid_path} {key} entry {entry}: image id {image_id} out of range 1..{len(labels)}")
            label = check_label(int(labels[image_id - 1]), task.classes, labels_path, image_id)
            out.append((f"jpg/image_{image_id:05d}.jpg", label))
        return out

    return Lists(root, items("trnid"), items("tstid"), val=items("valid"),
                 files=["102flowers.tgz", labels_path.name, setid_path.name], label_rule="label - 1")


def dogs_lists(directory: Path, staging: Staging, task: Task) -> Lists:
    lists = {}
    for name in ("train_list.mat", "test_list.mat"):
        found = find(directory, name, "file")
        if found is None:
            packed = find(directory, "lists.tar", "file")
            if packed is None:
                raise ArchiveMissing("lists.tar (or train_list.mat and test_list.mat)")
            extract(packed, staging.path / "lists")
            found = need_file(staging.path / "lists", name)
        lists[name] = found
    root = staging.tree(directory, "Images", "images.tar", ["Images/<synset>-<breed>/<image>.jpg"]).parent

    def items(path: Path) -> Items:
        data = load_mat(path)
        files, labels = mat_array(data, "file_list", path).ravel(), mat_array(data, "labels", path).ravel()
        if len(files) != len(labels):
            raise UserError(f"{path}: {len(files)} files but {len(labels)} labels")
        out = []
        for entry, (name, label) in enumerate(zip(files, labels), 1):
            rel = str(np.asarray(name).ravel()[0])
            normal = posixpath.normpath(rel)
            if rel.startswith("/") or normal.startswith(".."):
                raise UserError(f"{path} entry {entry}: image path {rel!r} escapes the image folder")
            out.append((f"Images/{normal}", check_label(int(label), task.classes, path, entry)))
        return out

    return Lists(root, items(lists["train_list.mat"]), items(lists["test_list.mat"]),
                 files=["images.tar", "train_list.mat", "test_list.mat"], label_rule="label - 1")


def cars_lists(directory: Path, staging: Staging, task: Task) -> Lists:
    annotations = {split: need_file(directory, name) for split, name in
                   (("train", "cars_train_annos.mat"), ("test", "cars_test_annos_withlabels.mat"))}
    folders = {}
    for split in ("train", "test"):
        folder = staging.tree(directory, f"cars_{split}", f"cars_{split}.tgz", [f"cars_{split}/00001.jpg"])
        # The common mirrors nest the images one level deeper (cars_train/cars_train/00001.jpg).
        inner = folder / f"cars_{split}"
        folders[split] = inner if inner.is_dir() else folder

    def items(split: str) -> Items:
        path = annotations[split]
        table = mat_array(load_mat(path), "annotations", path).ravel()
        out = []
        for entry, record in enumerate(table, 1):
            names = record.dtype.names or ()
            if "class" not in names or "fname" not in names:
                raise UserError(f"{path}: annotations lack 'class' or 'fname' (test labels are in "
                                "cars_test_annos_withlabels.mat, not cars_test_annos.mat)")
            name = str(np.asarray(record["fname"]).ravel()[0])
            if "/" in name or "\\" in name or name.startswith(".."):
                raise UserError(f"{path} entry {entry}: file name {name!r} is not a plain file name")
            label = check_label(int(np.asarray(record["class"]).ravel()[0]), task.classes, path, entry)
            out.append((os.path.relpath(folders[split] / name, root), label))
        return out

    root = Path(os.path.commonpath([folders["train"], folders["test"]]))
    return Lists(root, items("train"), items("test"),
                 files=["cars_train/", "cars_test/", "cars_train_annos.mat", "cars_test_annos_withlabels.mat"],
                 label_rule="class - 1")


def bird_reader(folder: str, archive: str, classes_file: bool):
    def read(directory: Path, staging: Staging, task: Task) -> Lists:
        files = ["images.txt", "image_class_labels.txt", "train_test_split.txt"] + (["classes.txt"] if classes_file else [])
        root = staging.tree(directory, folder, archive, files)
        return birds_lists(root, task, classes_file)

    return read


READERS: Dict[str, Tuple[Callable[[Path, Staging, Task], Lists], str]] = {
    "cub200": (bird_reader("CUB_200_2011", "CUB_200_2011.tgz", False), "CUB_200_2011.tgz"),
    "nabirds": (bird_reader("nabirds", "nabirds.tar.gz", True), "nabirds.tar.gz"),
    "oxford_flowers": (flowers_lists, "102flowers.tgz, imagelabels.mat, setid.mat"),
    "stanford_dogs": (dogs_lists, "images.tar, lists.tar"),
    "stanford_cars": (cars_lists, "cars_train/ and cars_test/ (or cars_train.tgz, cars_test.tgz), "
                                  "cars_train_annos.mat, cars_test_annos_withlabels.mat"),
}


def prepare_archive_task(task: Task, data_dir: Path, directory: Path, allow_mismatch: bool, progress,
                         say: Callable[[str], None]) -> Dict:
    from .tfds_source import TaskUnavailable

    if not directory.is_dir():
        raise UserError(f"{param('source', 'archive')} {directory}: no such folder; give the folder holding the datasets' files")
    read, published = READERS[task.name]
    with Staging(data_dir, task) as staging:
        try:
            lists = read(directory, staging, task)
        except ArchiveMissing as missing:
            raise TaskUnavailable(f"{missing} not found in {directory} (expected: {published}, as "
                                  "published, or extracted)") from None
        splits = {"train": lists.train, "test": lists.test}
        if lists.val is not None:
            val_rule = "the dataset's official validation split"
            splits["val"] = lists.val
        else:
            train_idx, val_idx = hold_out(len(lists.train))
            splits["train"] = [lists.train[i] for i in train_idx]
            splits["val"] = [lists.train[i] for i in val_idx]
            val_rule = f"seeded (seed {FGVC_VAL_SEED}) ceil(10%) of the official train split; not VPT's exact membership"
        reader = TreeReader(lists.root)
        with TaskWriter(data_dir, task, allow_mismatch) as writer:
            fgvc = FgvcWriter(writer, progress)
            for split in ("train", "val", "test"):
                items = splits[split]
                where = f"{task.name} {split}"
                images = (decode_rgb(lambda rel=rel: reader.read_bytes(rel), rel, f"{where} ({lists.root / rel})")
                          for rel, _label in items)
                fgvc.split(split, len(items), images, np.array([label for _rel, label in items], np.int64))
            return writer.commit({"kind": "archive", "path": str(directory.resolve()), "files": lists.files,
                                  "class_ids": lists.label_rule, "val": val_rule, "transforms": TRANSFORM_NOTE,
                                  "val_size_rule": "ceil(10%) of the official train split" if lists.val is None
                                  else "official"})

