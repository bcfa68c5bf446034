"""Pretrained-weight files with random values, in the published layouts the backbones read, for
benchmarks that must run the real loading and conversion without downloading anything."""

from __future__ import annotations

import sys
from pathlib import Path


def write_random_vit_b16(data: Path) -> None:
    """ViT-B/16 with random weights in the layout of Google's published ViT-B_16.npz (21,843-way
    head included), where the backbone looks for it: the real loading and conversion run."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: tests.support
    from tests.support.families import write_google_vit_npz
    from alore_bench.backbones import BACKBONES
    from alore_bench.paths import weights_folder

    import torch

    torch.manual_seed(0)
    folder = weights_folder(data)
    folder.mkdir(parents=True, exist_ok=True)
    write_google_vit_npz(BACKBONES.get("vit_b16").create(num_classes=0), folder / "ViT-B_16.npz")
