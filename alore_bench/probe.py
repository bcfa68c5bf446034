"""Linear probing on cached features: the frozen backbone (eval mode) embeds each split once, the
features are cached on disk, and only the head is trained on them.

Two solvers (`linear --opt solver=...`):
- `lbfgs` (default; the name predates Newton): full-batch multinomial logistic regression with an
  L2 penalty on the weights, solved to convergence (`logistic.py`: Newton's method for a head of at
  most 2,048 parameters, L-BFGS above; the record names which); the penalty is chosen from a grid by training
  on the suite's tuning split and scoring on its validation split (VTAB-1k: train800 -> val200),
  then the head is refitted on the run's training split. Never selected on test. Deterministic:
  the head depends on the features only, so it is solved once and every seed's record uses it.
- `adamw`: the suite's AdamW recipe (same optimiser, schedule, batch order and head init as
  training through the backbone), on the cached features; equal to training the head through the
  frozen eval-mode backbone up to floating-point rounding, and much faster.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import TrainConfig, stable_hash
from .data.cache import SplitData
from .data.loader import DeviceBatcher, batch_indices, iterate, num_batches
from .engine import clipped_step, optimizer_and_schedule
from .logistic import HeadStore, solve_head

FEATURE_BATCH = 256


@torch.no_grad()
def extract_features(model: nn.Module, data: SplitData, batcher: DeviceBatcher, progress=None,
                     label: str = "features") -> Tuple[torch.Tensor, torch.Tensor]:
    """Pre-logit features of a split through the frozen backbone in eval mode (centre crops for
    ragged splits), as float32 on the batcher's device, with the labels; `progress` follows the
    batches (the engine's protocol)."""
    from .progress import SilentProgress

    progress = progress or SilentProgress()
    bar = progress.add_task(label, total=-(-len(data) // FEATURE_BATCH))
    model.eval()
    features, labels = [], []
    for images, targets in iterate(data, batcher, FEATURE_BATCH, shuffle=False):
        features.append(model.forward_head(model.forward_features(images), pre_logits=True).float())
        labels.append(targets)
        progress.advance(bar)
    progress.remove_task(bar)
    return torch.cat(features), torch.cat(labels)


class FeatureCache:
    """Features on disk under <data dir>/features/<suite>/<task>/<key>/<split>.npy, keyed by what
    makes them differ: backbone, weights, normalisation, resize, input size and the split's data."""

    def __init__(self, data_dir: Path, suite: str, task: str, identity: Mapping[str, Any]):
        self.folder = Path(data_dir) / "features" / suite / task / stable_hash(dict(identity), 16)
        self.identity = dict(identity)

    def path(self, split: str) -> Path:
        return self.folder / f"{split}.npy"

    def load_or_compute(self, split: str, data: SplitData, compute) -> Tuple[torch.Tensor, bool]:
        """(features, whether they came from the cache); a fresh computation is written atomically."""
        path = self.path(split)
        fingerprint = data.manifest["splits"][split]["images_sha256"] if split in data.manifest.get("splits", {}) else None
        meta = self.folder / f"{split}.json"
        if path.is_file() and meta.is_file():
            try:
                saved = json.loads(meta.read_text(encoding="utf-8"))
                if saved.get("images_sha256") == fingerprint and saved.get("count") == len(data):
                    cached = np.load(path, allow_pickle=False)
                    # A file that does not hold one finite feature row per image is not trusted.
                    if cached.ndim == 2 and cached.shape[0] == len(data) and np.isfinite(cached).all():
                        return torch.from_numpy(cached), True
            except (OSError, ValueError):
                pass  # unreadable cache entries are recomputed
        features = compute()
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with open(tmp, "wb") as handle:
            np.save(handle, features.cpu().numpy())
        os.replace(tmp, path)
        meta_tmp = meta.with_name(f".{meta.name}.tmp-{os.getpid()}")
        meta_tmp.write_text(json.dumps({"images_sha256": fingerprint, "count": len(data), **self.identity}), encoding="utf-8")
        os.replace(meta_tmp, meta)
        return features, False


def train_head_adamw(head: nn.Linear, features: torch.Tensor, labels: torch.Tensor, config: TrainConfig,
                     seed: int) -> Dict[str, Any]:
    """The engine's recipe on features: same optimiser, schedule and (seed, epoch) batch order."""
    optimizer, scheduler = optimizer_and_schedule(head, config, num_batches(len(labels), config.batch_size))
    head.train()
    step, epoch_loss, history, start = 0, float("nan"), [], time.perf_counter()
    for epoch in range(config.epochs):
        loss_sum = 0.0
        for idx in batch_indices(len(labels), config.batch_size, True, seed, epoch):
            idx_t = torch.from_numpy(idx).to(features.device)
            loss = F.cross_entropy(head(features[idx_t]), labels[idx_t])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            clipped_step(optimizer, head.parameters(), config.grad_clip)
            step += 1
            scheduler.step_update(step)
            loss_sum += loss.item() * len(idx)
        epoch_loss = loss_sum / len(labels)
        history.append({"epoch": epoch + 1, "train_loss": epoch_loss, "lr": optimizer.param_groups[0]["lr"],
                        "seconds": time.perf_counter() - start})
    return {"final_train_loss": epoch_loss, "steps": step, "history": history}


def run_probe(model: nn.Module, solver: str, config: TrainConfig, seed: int, classes: int,
              splits: Mapping[str, Tuple[str, SplitData]], cache: FeatureCache,
              batcher: DeviceBatcher, progress=None, label: str = "probe") -> Dict[str, Any]:
    """Train `model`'s head on cached features and evaluate it. `splits` maps the roles "train" and
    "eval" (and, for lbfgs, "tune_train" and "tune_eval") to (split name, data). Returns the head's
    results: top1 (fraction), eval examples, loss, steps, timings and the penalty selection."""
    start = time.perf_counter()
    features: Dict[str, Tuple[torch.Tensor, torch.Tensor]] = {}
    cached = []
    by_split: Dict[str, Tuple[torch.Tensor, torch.Tensor]] = {}  # a split serving two roles is read once
    for role, (name, data) in splits.items():
        if name not in by_split:
            feats, hit = cache.load_or_compute(name, data, lambda data=data, name=name: extract_features(
                model, data, batcher, progress, f"{label} features {name}")[0])
            labels = torch.from_numpy(np.ascontiguousarray(data.labels)).to(batcher.device)
            by_split[name] = (feats.to(batcher.device), labels)
            cached.append(hit)
        features[role] = by_split[name]
    feature_seconds = time.perf_counter() - start
    head = model.get_classifier()
    start = time.perf_counter()
    if solver == "adamw":
        trained = train_head_adamw(head, *features["train"], config, seed)
        selection = None
    else:
        names = {role: splits[role][0] for role in ("tune_train", "tune_eval", "train")}
        weight, bias, selection = solve_head(features, classes, names, HeadStore(cache.folder), progress, label)
        with torch.no_grad():
            head.weight.copy_(weight.to(head.weight.dtype))
            head.bias.copy_(bias.to(head.bias.dtype))
        # one full-batch solve: no epochs
        trained = {"final_train_loss": selection["final_loss"], "steps": None, "history": []}
    train_seconds = time.perf_counter() - start
    head.eval()
    with torch.no_grad():
        eval_feats, eval_labels = features["eval"]
        correct = int((head(eval_feats).argmax(dim=-1) == eval_labels).sum())
    return {"top1": correct / len(eval_labels), "eval_examples": len(eval_labels),
            "final_train_loss": trained["final_train_loss"], "steps": trained["steps"], "history": trained["history"],
            "feature_seconds": feature_seconds, "train_seconds": train_seconds,
            "features_from_cache": all(cached), "selection": selection}
