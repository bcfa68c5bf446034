"""The training engine: AdamW, linear warmup then cosine, seeded data order, evaluation of the
final model only (never best-of-test), timings and peak memory."""

from __future__ import annotations

import contextlib
import os
import math
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import torch
import torch.nn.functional as F
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from torch import nn

from .config import TrainConfig
from .data.cache import SplitData
from .data.loader import DeviceBatcher, iterate, num_batches
from .errors import param
from .progress import Progress, SilentProgress  # noqa: F401  (importable from here too)


class TrainingDiverged(RuntimeError):
    pass


@dataclass
class EvalOutcome:
    top1: float
    examples: int
    seconds: float


def precision(device: torch.device) -> str:
    """The arithmetic a run uses on `device` (part of what defines a result)."""
    return "bf16-autocast" if device.type == "cuda" else "fp32"


def autocast(device: torch.device):
    """bf16 autocast on CUDA, plain fp32 on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compiled(model: nn.Module, enabled: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model's forward, through torch.compile when enabled (same parameters and modes)."""
    return torch.compile(model) if enabled else model


def optimizer_and_schedule(model: nn.Module, config: TrainConfig, steps_per_epoch: int):
    """AdamW, or SGD with momentum (timm's "momentum": no Nesterov, as VPT's torch.optim.SGD), with no
    decay on biases, norms and position embeddings; linear warm-up then cosine decay, counted in
    iterations or in epochs (`lr_step`), the warm-up before the cosine or inside it (`warmup_inside`,
    timm's warmup_prefix=False), and min_lr after the cosine's end (the cool-down epochs)."""
    per_epoch = config.lr_step != "iteration"
    unit = 1 if per_epoch else steps_per_epoch
    total_steps, warmup_steps = unit * config.epochs, unit * config.warmup_epochs
    if config.optimizer == "sgd":
        optimizer = create_optimizer_v2(model, opt="momentum", lr=config.lr, weight_decay=config.weight_decay,
                                        momentum=config.momentum)
    else:
        optimizer = create_optimizer_v2(model, opt="adamw", lr=config.lr, weight_decay=config.weight_decay)
    cosine_steps = total_steps if config.warmup_inside else max(total_steps - warmup_steps, 1)
    scheduler = CosineLRScheduler(optimizer, t_initial=cosine_steps, lr_min=config.min_lr,
                                  warmup_t=warmup_steps, warmup_lr_init=config.warmup_lr,
                                  warmup_prefix=not config.warmup_inside, t_in_epochs=per_epoch)
    return optimizer, scheduler


def step_epoch_schedule(scheduler, config: TrainConfig, epoch: int) -> None:
    """After epoch `epoch` (0-based) of a per-epoch schedule: the next epoch trains at point
    epoch + 1 (`epoch`: VPT's LambdaLR.step() after each epoch, src/engine/trainer.py line 221;
    timm's train.py step(epoch + 1)), or at point `epoch` (`epoch_behind`: NOAH
    supernet_train_prompt.py line 414, FacT/RepAdapter train.py `scheduler.step(ep)`, RLRR
    train_vtab.py line 172, so their first two epochs both train at the warm-up's start)."""
    if config.lr_step == "epoch":
        scheduler.step(epoch + 1)
    elif config.lr_step == "epoch_behind":
        scheduler.step(epoch)


@dataclass
class TrainCheckpoint:
    """Mid-run checkpoints of one training run: the trainable parameters, optimizer, scheduler and
    RNG states at the end of every `every`-th epoch, written atomically to `path`, so a killed run
    resumes where it stopped with the uninterrupted run's numbers. `identity` (the configuration
    and seed) must match for a checkpoint to be used; anything else is ignored and overwritten."""

    path: Path
    every: int
    identity: str
    warn: Callable[[str], None] = lambda line: None  # hears why a checkpoint found is not used

    def due(self, epochs_done: int, epochs: int) -> bool:
        return self.every > 0 and epochs_done % self.every == 0 and epochs_done < epochs

    def save(self, model: nn.Module, optimizer, scheduler, epochs_done: int, step: int, history: list,
             seconds: float, device: torch.device, ema=None) -> None:
        state = {
            "identity": self.identity, "epoch": epochs_done, "step": step, "history": history, "seconds": seconds,
            "params": {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad},
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        }
        if ema is not None:  # what the average moves: the trainable parameters and the buffers
            state["ema"] = {n: v.detach().cpu() for n, v in _ema_state(ema.module, model).items()}
        temporary = self.path.with_name(f".{self.path.name.lstrip('.')}.tmp-{os.getpid()}")
        torch.save(state, temporary)
        os.replace(temporary, self.path)

    def load(self, model: nn.Module, optimizer, scheduler, device: torch.device, ema=None) -> Optional[Dict[str, Any]]:
        """Restore a matching checkpoint into the model, optimizer, scheduler (and model EMA); None when
        there is none."""
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated, garbage, or not a torch file
            return self._ignore(f"unreadable ({type(exc).__name__})")
        problem = self._problem(state, model) or self._ema_problem(state, model, ema)
        if problem is not None:
            return self._ignore(problem)
        # Optimizer and scheduler first, restored if either refuses: nothing is half-loaded.
        before = (optimizer.state_dict(), scheduler.state_dict())
        try:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
        except Exception as exc:
            optimizer.load_state_dict(before[0])
            scheduler.load_state_dict(before[1])
            return self._ignore(f"its optimizer or scheduler state does not fit ({type(exc).__name__})")
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in state["params"].items():
                params[name].copy_(value)
            if ema is not None:
                averaged = _ema_state(ema.module, model)
                for name, value in state["ema"].items():
                    averaged[name].copy_(value)
        torch.set_rng_state(state["rng_cpu"])
        if device.type == "cuda" and state.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(state["rng_cuda"], device)
        return state

    def _ignore(self, reason: str) -> None:
        self.warn(f"ignoring the mid-run checkpoint {self.path}: {reason}; training from the first epoch")
        return None

    def _problem(self, state: Any, model: nn.Module) -> Optional[str]:
        """Why `state` cannot resume this run (checked before anything is applied), or None."""
        if not isinstance(state, dict):
            return "not a checkpoint of this harness"
        if state.get("identity") != self.identity:
            return "it belongs to another configuration or seed"
        for key, kind in (("epoch", int), ("step", int), ("history", list), ("seconds", (int, float)),
                          ("params", dict), ("optimizer", dict), ("scheduler", dict), ("rng_cpu", torch.Tensor)):
            if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
                return f"its {key!r} is missing or of the wrong type"
        if state["rng_cpu"].dtype != torch.uint8:
            return "its RNG state is not a byte tensor"
        trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
        if set(state["params"]) != set(trainable):
            return "its parameters are not this model's trainable parameters"
        for name, value in state["params"].items():
            if not isinstance(value, torch.Tensor) or value.shape != trainable[name].shape or \
                    value.dtype != trainable[name].dtype or not torch.isfinite(value).all():
                return f"its parameter {name} has another shape or type, or non-finite values"
        return None

    @staticmethod
    def _ema_problem(state: Dict[str, Any], model: nn.Module, ema) -> Optional[str]:
        if ema is None:
            return None
        saved, expected = state.get("ema"), _ema_state(ema.module, model)
        if not isinstance(saved, dict) or set(saved) != set(expected):
            return "its model EMA is missing or not this model's"
        for name, value in saved.items():
            if not isinstance(value, torch.Tensor) or value.shape != expected[name].shape or \
                    value.dtype != expected[name].dtype:
                return f"its model EMA of {name} has another shape or type"
        return None

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _ema_state(averaged: nn.Module, model: nn.Module) -> Dict[str, torch.Tensor]:
    """The tensors of the EMA copy that can differ from the pretrained state: those of the model's
    trainable parameters and all buffers (the frozen ones stay what they were)."""
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    tensors = {n: p for n, p in averaged.named_parameters() if n in trainable}
    tensors.update(dict(averaged.named_buffers()))
    return tensors


def clipped_step(optimizer: torch.optim.Optimizer, parameters, max_norm: float) -> None:
    """optimizer.step(), after clipping the parameters' total gradient norm to `max_norm` when it
    is positive (as ARC's official training does, vtab_ARC_train.py line 165)."""
    if max_norm > 0:
        torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    optimizer.step()


def epochs_of(config: TrainConfig) -> int:
    """Every epoch a run trains: the schedule's and its cool-down's."""
    return config.epochs + config.cooldown_epochs


def model_ema(model: nn.Module, config: TrainConfig):
    """timm's ModelEmaV3 of the whole state (parameters and buffers) at a fixed decay, updated after
    every optimizer step, as SSF's train.py updates timm's ModelEmaV2 (lines 503 and 781); None when off."""
    if config.ema_decay <= 0:
        return None
    from timm.utils import ModelEmaV3

    return ModelEmaV3(model, decay=config.ema_decay)


def train(model: nn.Module, data: SplitData, batcher: DeviceBatcher, config: TrainConfig, seed: int,
          progress: Progress, label: str = "train",
          train_mode: Optional[Callable[[nn.Module], None]] = None,
          checkpoint: Optional[TrainCheckpoint] = None,
          after_epoch: Optional[Callable[[int, nn.Module], None]] = None) -> Dict[str, Any]:
    """Train the model's trainable parameters in place; returns loss and timing facts and the
    per-epoch history (mean train loss, the learning rate the epoch ended with, seconds so far).
    With model EMA on, the averaged weights are copied into the model at the end: what is merged and
    evaluated. `train_mode` puts the model into training mode (default: model.train()); with
    `checkpoint`, a matching checkpoint is resumed and new ones are written every few epochs.
    `after_epoch(n, model)` runs after epoch n with the model that would be evaluated (the EMA's
    when on): a diagnostic that may evaluate; its time is left out of the training time, and
    training mode is restored after it."""
    device = batcher.device
    steps_per_epoch = num_batches(len(data), config.batch_size)
    optimizer, scheduler = optimizer_and_schedule(model, config, steps_per_epoch)
    epochs = epochs_of(config)
    total_steps = steps_per_epoch * epochs
    bar = progress.add_task(label, total=total_steps)
    ema = model_ema(model, config)
    step, first_epoch, seconds_before = 0, 0, 0.0
    epoch_loss = float("nan")
    history = []
    resumed = checkpoint.load(model, optimizer, scheduler, device, ema) if checkpoint is not None else None
    if resumed is not None:
        first_epoch, step, history, seconds_before = resumed["epoch"], resumed["step"], resumed["history"], resumed["seconds"]
        epoch_loss = history[-1]["train_loss"] if history else epoch_loss
        progress.advance(bar, step)
    start = time.perf_counter() - seconds_before
    (train_mode or nn.Module.train)(model)
    forward = compiled(model, config.compile)
    trainable = [p for p in model.parameters() if p.requires_grad]
    for epoch in range(first_epoch, epochs):
        # The loss is summed on the device (float64, as Python floats would) and read once per
        # epoch: a per-step .item() would make every step wait for the GPU.
        loss_sum, seen = torch.zeros((), dtype=torch.float64, device=device), 0
        for images, labels in iterate(data, batcher, config.batch_size, shuffle=True, seed=seed, epoch=epoch,
                                      flip=config.flip, train_crop=config.train_crop):
            with autocast(device):
                loss = F.cross_entropy(forward(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            clipped_step(optimizer, trainable, config.grad_clip)
            if ema is not None:
                ema.update(model)
            step += 1
            scheduler.step_update(step)
            loss_sum += loss.detach().double() * len(labels)
            seen += len(labels)
            progress.advance(bar)
        epoch_loss = float(loss_sum) / seen
        if not math.isfinite(epoch_loss):
            raise TrainingDiverged(f"training loss became {epoch_loss} in epoch {epoch + 1} (step {step}); "
                                   f"lower {param('lr')} or check the data")
        history.append({"epoch": epoch + 1, "train_loss": epoch_loss, "lr": optimizer.param_groups[0]["lr"],
                        "seconds": time.perf_counter() - start})
        step_epoch_schedule(scheduler, config, epoch)
        progress.update(bar, description=f"{label} loss {epoch_loss:.3f}")
        if checkpoint is not None and checkpoint.due(epoch + 1, epochs):
            checkpoint.save(model, optimizer, scheduler, epoch + 1, step, history, time.perf_counter() - start, device,
                            ema)
        if after_epoch is not None:
            paused = time.perf_counter()
            after_epoch(epoch + 1, model if ema is None else ema.module)
            (train_mode or nn.Module.train)(model)
            start += time.perf_counter() - paused
    if ema is not None:
        with torch.no_grad():
            model.load_state_dict(ema.module.state_dict())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    progress.remove_task(bar)
    return {"final_train_loss": epoch_loss, "steps": step, "train_seconds": seconds, "history": history,
            "resumed_from_epoch": first_epoch if resumed is not None else None}


@torch.no_grad()
def evaluate(model: nn.Module, data: SplitData, batcher: DeviceBatcher, batch_size: int,
             progress: Progress, label: str = "eval", compile_model: bool = False) -> EvalOutcome:
    """Top-1 of the model on `data`, `batch_size` images at a time: each batch is moved, resized
    and normalised on the device, so memory stays bounded by one batch whatever the split's size.
    Hits are counted on the device and read once at the end (no per-batch host synchronisation)."""
    model.eval()
    forward = compiled(model, compile_model)
    bar = progress.add_task(label, total=num_batches(len(data), batch_size))
    start = time.perf_counter()
    correct = torch.zeros((), dtype=torch.int64, device=batcher.device)
    for images, labels in iterate(data, batcher, batch_size, shuffle=False):
        with autocast(batcher.device):
            logits = forward(images)
        correct += (logits.argmax(dim=-1) == labels).sum()
        progress.advance(bar)
    hits = int(correct)  # the one synchronisation: waits for the last batch
    progress.remove_task(bar)
    return EvalOutcome(top1=hits / len(data), examples=len(data), seconds=time.perf_counter() - start)


# Images of the merge check: merged weights are a fixed linear map, so a wrong merge moves every
# image's logits and one shows it; two ViT-B/16 forwards of the 64-image training batch were 20 s of
# a CPU job's fixed cost, of 8 images 4 s, of 2 images 1.3 s (benchmarks/job_overhead.py).
MERGE_CHECK_IMAGES = 1


@torch.no_grad()
def merge_and_check(model: nn.Module, merge: Callable[[nn.Module], nn.Module], data: SplitData,
                    batcher: DeviceBatcher) -> tuple[nn.Module, float]:
    """Merge the method into the backbone; return the merged model and the largest logit change
    on the first MERGE_CHECK_IMAGES evaluation images, which must be rounding-sized."""
    model.eval()
    images, _ = next(iterate(data, batcher, MERGE_CHECK_IMAGES, shuffle=False))
    before = model(images).float()
    merged = merge(model)
    after = merged(images).float()
    return merged, float((before - after).abs().max())


class PeakMemory:
    """Peak memory of one run: CUDA max allocated (reset at the start), or on CPU the process's
    peak resident set since the run started (Linux: the peak is reset through
    /proc/self/clear_refs; elsewhere the process's lifetime peak, an upper bound, says so)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.per_run = False
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        else:
            try:
                Path("/proc/self/clear_refs").write_text("5")  # 5: reset the peak RSS (VmHWM)
                self.per_run = True
            except OSError:
                pass

    def read(self) -> Dict[str, Any]:
        if self.device.type == "cuda":
            return {"peak_bytes": int(torch.cuda.max_memory_allocated(self.device)), "kind": "cuda_max_allocated"}
        if self.per_run:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return {"peak_bytes": int(line.split()[1]) * 1024, "kind": "process_peak_rss_this_run"}
        # ru_maxrss is in KiB on Linux; it is the process's lifetime peak, an upper bound for this run.
        return {"peak_bytes": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024,
                "kind": "process_max_rss"}
