"""Training curves beyond the record's own history: TensorBoard events (`log = ("tensorboard",)`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping


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
