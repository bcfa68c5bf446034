"""`alore-bench bench`: what each method costs on a backbone, measured, with random weights (no
download): trainable parameters, forward GFLOPs (torch's FlopCounterMode), the median training step
and its peak memory, and inference latency unmerged and merged, each as a ratio to a reference
measured in the same run:

- `backbone`: the frozen backbone's forward, the reference for inference latency;
- `floor`: the cheapest possible PETL step: backbone frozen, only the head and the positional
  embedding (or, without one, the patch embedding's bias) trainable, so the backward still crosses
  the whole network; the reference for step time and training memory.

Every method runs in a fresh worker process, so one method's peak memory cannot leak into the
next; timings are torch.utils.benchmark medians.
"""

from __future__ import annotations

import math
import multiprocessing
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

REFERENCE_ROWS = ("backbone", "floor")


@dataclass
class BenchSettings:
    backbone: str
    device: str = "cpu"
    batch_size: int = 8
    steps: int = 5
    classes: int = 100
    threads: int = 0  # 0: torch's default
    seed: int = 0


@dataclass
class BenchRow:
    method: str
    trainable: int = 0
    gflops: Optional[float] = None  # forward, per image
    step_ms: Optional[float] = None
    peak_bytes: Optional[int] = None
    peak_kind: str = ""
    saved_bytes: Optional[int] = None  # activations autograd keeps for the backward of one step
    infer_ms: Optional[float] = None  # unmerged (the adapted model as trained)
    merged_ms: Optional[float] = None  # after merge (mergeable methods)
    error: str = ""
    ratios: Dict[str, Optional[float]] = field(default_factory=dict)


def _floor(model: nn.Module) -> nn.Module:
    """Backbone frozen; the head and the positional embedding (else the patch embedding's bias) trained."""
    model.requires_grad_(False)
    model.get_classifier().requires_grad_(True)
    pos = getattr(model, "pos_embed", None)
    if isinstance(pos, nn.Parameter):
        pos.requires_grad_(True)
    else:
        first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        (first_conv.bias if first_conv.bias is not None else first_conv.weight).requires_grad_(True)
    return model


def _build(settings: BenchSettings, method: str) -> tuple:
    from .backbones import BACKBONES
    from .methods import METHODS

    backbone = BACKBONES.get(settings.backbone)
    torch.manual_seed(settings.seed)
    device = torch.device(settings.device)
    model = backbone.create(num_classes=settings.classes, device=device)
    spec = None
    if method == "floor":
        model = _floor(model)
    elif method == "backbone":
        model.requires_grad_(False)
    else:
        spec = METHODS.get(method)
        model = spec.apply(model, spec.default_config())
    return model.to(device), spec, backbone


def _time(fn, device: torch.device, steps: int, quick: float = 0.05, budget: float = 1.0,
          tick: Callable[[int], None] = lambda n: None) -> float:
    """Median seconds of fn() after one warm-up (torch.utils.benchmark): over `steps` single runs,
    or, for calls under `quick` seconds, over blocks filling `budget` seconds (many more samples,
    so short calls are not at the mercy of one slow run). `tick(n)`: n of the `steps` units done."""
    from torch.utils import benchmark

    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn})
    first = timer.timeit(1).median
    tick(1)
    if first < quick:
        median = timer.blocked_autorange(min_run_time=budget).median
        tick(steps - 1)
        return median
    times = [first]
    for _ in range(steps - 1):
        times.append(timer.timeit(1).median)
        tick(1)
    return statistics.median(times)


def units_per_method(steps: int) -> int:
    """Progress units of one method's measurement: build, FLOPs, the saved-activation count, and
    `steps` for each of inference, training and merged inference (skipped ones count as done)."""
    return 3 + 3 * steps


def saved_activation_bytes(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> int:
    """The bytes autograd saves for the backward of one training step, parameters excluded (each
    storage counted once): the deterministic part of training memory, free of allocator noise."""
    from .engine import autocast

    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: Dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), autocast(device):
        loss = F.cross_entropy(model(images), labels)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(saved.values())


def _rss_bytes(field_name: str) -> Optional[int]:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def measure(settings: BenchSettings, method: str, tick: Callable[[int], None] = lambda n: None) -> Dict[str, Any]:
    """One method's row, measured in this process (the worker); `tick(n)` reports progress in
    the units of `units_per_method` (all of them by the time it returns)."""
    done = [0]

    def step(n: int) -> None:
        done[0] += n
        tick(n)

    try:
        return _measure(settings, method, step)
    finally:
        tick(units_per_method(settings.steps) - done[0])  # the phases skipped or cut short


def _measure(settings: BenchSettings, method: str, tick: Callable[[int], None]) -> Dict[str, Any]:
    from .engine import autocast
    from .errors import UserError
    from .methods.base import trainable_parameter_count

    if settings.threads:
        torch.set_num_threads(settings.threads)
    device = torch.device(settings.device)
    row = BenchRow(method)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        try:
            Path("/proc/self/clear_refs").write_text("5")  # the peak RSS starts again from here
        except OSError:
            pass
    baseline = _rss_bytes("VmRSS") if device.type == "cpu" else 0
    try:
        model, spec, backbone = _build(settings, method)
    except UserError as error:
        row.error = str(error)
        return asdict(row)
    tick(1)
    size = backbone.input_size
    images = torch.randn(settings.batch_size, 3, size, size, device=device)
    labels = torch.randint(0, settings.classes, (settings.batch_size,), device=device)
    row.trainable = trainable_parameter_count(model) if method != "backbone" else 0
    model.eval()
    from torch.utils.flop_counter import FlopCounterMode

    # Counted with every parameter frozen for the moment: FlopCounterMode's module tracker cannot
    # hook tensors that require grad under no_grad (VPT's prompts).
    wanted = [p for p in model.parameters() if p.requires_grad]
    model.requires_grad_(False)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(images[:1])
    for p in wanted:
        p.requires_grad_(True)
    row.gflops = counter.get_total_flops() / 1e9
    tick(1)

    def infer() -> None:
        with torch.no_grad(), autocast(device):
            model(images)

    row.infer_ms = _time(infer, device, settings.steps, tick=tick) * 1e3
    if method != "backbone":
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=1e-3)
        train_mode = spec.set_train_mode if spec is not None else nn.Module.train

        def step() -> None:
            train_mode(model)
            with autocast(device):
                loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        row.step_ms = _time(step, device, settings.steps, tick=tick) * 1e3
        train_mode(model)
        row.saved_bytes = saved_activation_bytes(model, images, labels, device)
        tick(1)
        if device.type == "cuda":
            row.peak_bytes, row.peak_kind = int(torch.cuda.max_memory_allocated(device)), "cuda_max_allocated"
        else:
            peak = _rss_bytes("VmHWM")
            row.peak_bytes = peak - baseline if peak is not None and baseline is not None else None
            row.peak_kind = "peak_rss_above_process_start"
        if spec is not None and spec.mergeable:
            model.eval()
            model = spec.merge(model)
            row.merged_ms = _time(infer, device, settings.steps, tick=tick) * 1e3
    return asdict(row)


def _worker(settings_dict: Dict[str, Any], method: str, queue) -> None:
    tick = lambda n: queue.put(("tick", n)) if n else None  # noqa: E731
    try:
        queue.put(measure(BenchSettings(**settings_dict), method, tick))
    except Exception as error:  # reported in the table, the other methods still run
        queue.put(asdict(BenchRow(method, error=f"{type(error).__name__}: {error}")))


def run_bench(settings: BenchSettings, methods: List[str], progress=None) -> Dict[str, Any]:
    """The reference rows and every method, each in a fresh spawned process; ratios filled in.
    `progress` (rich's Progress or the engine's protocol) gets one bar over all of it, advanced
    as each process measures."""
    from .progress import SilentProgress

    context = multiprocessing.get_context("spawn")
    progress = progress or SilentProgress()
    names = list(REFERENCE_ROWS) + [m for m in methods if m not in REFERENCE_ROWS]
    bar = progress.add_task(f"bench {settings.backbone}", total=len(names) * units_per_method(settings.steps))
    rows: List[Dict[str, Any]] = []
    for index, name in enumerate(names):
        progress.update(bar, description=f"bench {settings.backbone}: {name} ({index + 1} of {len(names)})")
        queue = context.Queue()
        process = context.Process(target=_worker, args=(asdict(settings), name, queue))
        process.start()
        while True:
            message = queue.get()
            if isinstance(message, tuple):
                progress.advance(bar, message[1])
                continue
            break
        process.join()
        rows.append(message)
    progress.remove_task(bar)
    by_name = {row["method"]: row for row in rows}

    def ratio(value, reference) -> Optional[float]:
        return value / reference if value is not None and reference not in (None, 0) else None

    for row in rows:
        row["ratios"] = {
            "step_vs_floor": ratio(row["step_ms"], by_name["floor"]["step_ms"]),
            "memory_vs_floor": ratio(row["peak_bytes"], by_name["floor"]["peak_bytes"]),
            "saved_vs_floor": ratio(row["saved_bytes"], by_name["floor"]["saved_bytes"]),
            "infer_vs_backbone": ratio(row["infer_ms"], by_name["backbone"]["infer_ms"]),
            "merged_vs_backbone": ratio(row["merged_ms"], by_name["backbone"]["infer_ms"]),
        }
    from ._version import __version__

    return {"settings": asdict(settings), "rows": rows, "machine": machine_description(settings.device),
            "versions": {"alore_bench": __version__, "torch": torch.__version__}, "created": time.strftime("%Y-%m-%d %H:%M:%S")}


def machine_description(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {torch.get_num_threads()} torch threads"


def fmt(value: Optional[float], spec: str = ".1f", suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:{spec}}{suffix}"
