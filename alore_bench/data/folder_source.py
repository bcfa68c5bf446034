"""Import the widely shared pre-made VTAB-1k folders (NOAH's get_vtab1k.py layout), from a
folder or a .zip of it:

    <root>/<task>/{train800,val200,train800val200,test}.txt   lines "<relative path> <label>"
    <root>/<task>/images/<split>/000000.jpg ...
"""

from __future__ import annotations

import os
import posixpath
import stat
import zipfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from ..errors import UserError, param
from .cache import TaskWriter
from .images import RESIZE_NOTE, decode_rgb, fit, opened_image, storage_size
from .suites import VTAB_SPLITS, Task

# One image (or list file) of a benchmark task is far below these; a larger one is an attack or an
# accident, not data.
MAX_FILE_BYTES = 64 * 2**20
MAX_RATIO = 200  # zip: uncompressed / compressed size

FORMAT_NOTE = "NOAH/FacT pre-made vtab-1k folder: PIL JPEG re-encodings (quality 75) at native size"


class TreeReader:
    """Read-only access to a folder or a zip archive by POSIX relative paths."""

    def __init__(self, path: Path):
        self.path = path
        self.root = path.resolve()
        self.zip: Optional[zipfile.ZipFile] = None
        if path.is_file():
            try:
                self.zip = zipfile.ZipFile(path)
            except zipfile.BadZipFile:
                raise UserError(f"{param('source', 'folder')} {path}: not a folder or a readable .zip archive") from None
            for name in self.zip.namelist():
                if name.startswith("/") or ".." in name.split("/") or "\\" in name:
                    raise UserError(f"{path}: archive entry {name!r} escapes the archive root; refusing to read it")
            self.names = set(self.zip.namelist())
        elif not path.is_dir():
            raise UserError(f"{param('source', 'folder')} {path}: no such folder or .zip file")

    def exists(self, rel: str) -> bool:
        return rel in self.names if self.zip else (self.path / rel).is_file()

    def read_bytes(self, rel: str) -> bytes:
        """The entry's bytes, read defensively: no more than MAX_FILE_BYTES (streamed, whatever an
        archive header claims), no zip bomb, only regular files inside the root (a symlink leading
        out of it, a FIFO or a device is refused: a FIFO would block forever)."""
        if self.zip:
            info = self.zip.getinfo(rel)
            if info.file_size > MAX_FILE_BYTES or info.file_size > MAX_RATIO * max(info.compress_size, 1):
                raise UserError(f"{self.describe(rel)}: archive entry expands to {info.file_size} bytes from "
                                f"{info.compress_size}; refusing it (limits: {MAX_FILE_BYTES} bytes, ratio {MAX_RATIO})")
            with self.zip.open(info) as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                raise UserError(f"{self.describe(rel)}: archive entry larger than {MAX_FILE_BYTES} bytes; refusing it")
            return data
        path = self.path / rel
        resolved = path.resolve()
        if not resolved.is_relative_to(self.root):
            raise UserError(f"{path}: a symlink leading outside {self.path} (to {resolved}); refusing to read it")
        mode = os.stat(resolved).st_mode
        if not stat.S_ISREG(mode):
            raise UserError(f"{path}: not a regular file (a FIFO, device or folder); refusing to read it")
        if os.stat(resolved).st_size > MAX_FILE_BYTES:
            raise UserError(f"{path}: larger than {MAX_FILE_BYTES} bytes; not an image of a benchmark task")
        return resolved.read_bytes()

    def top_folders(self) -> List[str]:
        if self.zip:
            return sorted({n.split("/")[0] for n in self.names if "/" in n})
        return sorted(p.name for p in self.path.iterdir() if p.is_dir())

    def describe(self, rel: str) -> str:
        return f"{self.path}!{rel}" if self.zip else str(self.path / rel)


def find_task_folder(reader: TreeReader, task: Task) -> Optional[str]:
    """The relative folder of `task` (under its name or an alias), at the top or one level down."""
    for prefix in [""] + [f"{top}/" for top in reader.top_folders()]:
        for name in (task.name, *task.aliases):
            if reader.exists(f"{prefix}{name}/train800.txt"):
                return f"{prefix}{name}"
    return None


def parse_list(reader: TreeReader, list_path: str, task: Task) -> List[Tuple[str, int, int]]:
    """(image path relative to the reader, label, line number) for every line of a split list."""
    try:
        text = reader.read_bytes(list_path).decode("utf-8")
    except (KeyError, FileNotFoundError):
        raise UserError(f"{reader.describe(list_path)}: split list missing; a pre-made task folder needs "
                        f"{', '.join(s + '.txt' for s in VTAB_SPLITS)}") from None
    folder = posixpath.dirname(list_path)
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.strip().rsplit(None, 1)
        where = f"{reader.describe(list_path)}:{number}"
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise UserError(f"{where}: expected '<relative image path> <integer label>', got {line.strip()!r}")
        rel, label = parts[0], int(parts[1])
        normal = posixpath.normpath(rel)
        if posixpath.isabs(rel) or normal == ".." or normal.startswith("../") or "\\" in rel:
            raise UserError(f"{where}: image path {rel!r} escapes the task folder; paths must stay inside it")
        if not 0 <= label < task.classes:
            raise UserError(f"{where}: label {label} outside [0, {task.classes}) for {task.name}")
        entries.append((posixpath.join(folder, normal), label, number))
    return entries


def prepare_folder_task(task: Task, data_dir: Path, source: Path, allow_mismatch: bool, progress,
                        say: Callable[[str], None]) -> Dict:
    reader = TreeReader(source)
    folder = find_task_folder(reader, task)
    if folder is None:
        names = " or ".join((task.name, *task.aliases))
        raise UserError(f"{param('source', 'folder')} {source}: no task folder {names} with a train800.txt inside")
    with TaskWriter(data_dir, task, allow_mismatch) as writer:
        for split in VTAB_SPLITS:
            entries = parse_list(reader, f"{folder}/{split}.txt", task)
            list_name = reader.describe(f"{folder}/{split}.txt")
            bar = progress.add_task(f"{task.name} {split}", total=2 * len(entries))
            sizes = set()
            for rel, _label, number in entries:  # headers only: is the split of one size?
                with opened_image(lambda: reader.read_bytes(rel), reader.describe(rel), f"{list_name}:{number}") as image:
                    sizes.add((image.height, image.width))
                progress.advance(bar)
            size = storage_size(next(iter(sizes)) if len(sizes) == 1 else None)
            images = writer.image_array(split, len(entries), *size)
            for i, (rel, _label, number) in enumerate(entries):
                images[i] = fit(decode_rgb(lambda: reader.read_bytes(rel), reader.describe(rel), f"{list_name}:{number}"), size)
                progress.advance(bar)
            progress.remove_task(bar)
            writer.finish_split(split, images, np.array([label for _, label, _ in entries], np.int64),
                                list_file=f"{folder}/{split}.txt")
        return writer.commit({"kind": "folder", "path": str(source.resolve()), "archive": reader.zip is not None,
                              "task_folder": folder, "format": FORMAT_NOTE, "resize": RESIZE_NOTE})
