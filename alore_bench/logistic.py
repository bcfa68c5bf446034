"""The linear probe's solver: multinomial logistic regression with an L2 penalty, its strength
chosen on the tuning split, solved to convergence once per (features, labels, grid) and kept on
disk, so that every seed's record of a task comes from one solve.

The head is a deterministic function of the features (no seed enters it), so a second seed that
solved again would only repeat the first one's work: the issue measured 107 s to reproduce seed
42's number. Each fit is run until the gradient vanishes, not for a fixed number of iterations: a
fit stopped early lands wherever its path happened to be, and the path depends on the machine's
floating-point kernels (two CI machines disagreed on one digits test image that way).

Two algorithms reach the same minimiser. A head of at most NEWTON_MAX_PARAMETERS parameters
(demo_vit's 64 features; ViT-B/16's 768 with two classes) is solved by Newton's method on the exact
Hessian, which converges in 5 to 20 steps where L-BFGS needed up to 8,600 iterations on demo
textures at C = 1000 (its curvature vanishes along confidently classified points). Larger heads,
whose Hessian would not fit, use L-BFGS in preconditioned coordinates. The record names the one used.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .progress import Progress, SilentProgress

# Inverse L2 strengths searched, in scikit-learn's convention (loss summed over examples +
# ||W||^2 / (2 C)); 1.0 is LogisticRegression's default.
C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
# Part of a saved head's key: a change to how heads are solved must not reuse old ones.
SOLVER_VERSION = "newton-or-lbfgs-converged-2"
MAX_ITERATIONS = 10_000
# Newton's method for heads up to this many parameters (classes x (features + 1)): its Hessian is
# this size squared (32 MB in float64) and costs examples x this squared to form per step.
NEWTON_MAX_PARAMETERS = 2048
NEWTON_MAX_STEPS = 100
# Newton stops when the largest gradient entry is below this, or when no step lowers the loss any
# more (the float64 floor: quadratic convergence makes that one or two steps after the mark).
NEWTON_TOLERANCE = 1e-10
# A fit whose largest gradient entry (of the loss divided by N) is above this did not converge;
# the record says so. The weakest penalty (C = 1000) on the demo features ends near 3e-7.
CONVERGED_GRADIENT = 1e-5
# Torch threads for a CPU solve, by algorithm (None: torch's own count), as benchmarks/linear_probe.py
# measured them on the 2-core VM (docs/benchmarks.md): L-BFGS's many tiny steps ran faster at one
# thread (threads only add synchronisation there), Newton's few large products at torch's two.
SOLVER_THREADS = {"lbfgs": 1, "newton": None}


@dataclass(frozen=True)
class LogisticFit:
    weight: torch.Tensor  # (classes, features), float64
    bias: torch.Tensor  # (classes,), float64
    loss: float  # mean cross-entropy on the fitted examples (no penalty)
    iterations: int
    gradient: float  # largest absolute entry of the final gradient
    converged: bool
    algorithm: str  # "newton" or "lbfgs"


@contextmanager
def solver_threads(device: torch.device, algorithm: str) -> Iterator[Optional[int]]:
    """Run a solve at the algorithm's thread count; yields the count used (None off the CPU)."""
    wanted = SOLVER_THREADS[algorithm]
    if device.type != "cpu":
        yield None
        return
    before = torch.get_num_threads()
    torch.set_num_threads(wanted or before)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def centred_spectrum(features: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean, eigenvalues, eigenvectors) of the features' covariance, in float64."""
    x = features.double()
    mean = x.mean(dim=0)
    centred = x - mean
    values, vectors = torch.linalg.eigh(centred.T @ centred / len(x))
    return mean, values.clamp_min(0.0), vectors


def pick_algorithm(classes: int, dimension: int, algorithm: str = "auto") -> str:
    """"newton" for a head of at most NEWTON_MAX_PARAMETERS parameters, else "lbfgs"; a named one
    as given (benchmarks compare them)."""
    if algorithm != "auto":
        return algorithm
    return "newton" if classes * (dimension + 1) <= NEWTON_MAX_PARAMETERS else "lbfgs"


def fit_logistic(features: torch.Tensor, labels: torch.Tensor, classes: int, c: float,
                 max_iter: int = MAX_ITERATIONS, spectrum=None, algorithm: str = "auto") -> LogisticFit:
    """Sum of losses + ||W||^2 / (2 C) (bias not penalised), in float64 from zero: Newton's method for
    a small head, else L-BFGS (module docstring)."""
    if pick_algorithm(classes, features.shape[1], algorithm) == "newton":
        return fit_logistic_newton(features, labels, classes, c)
    return fit_logistic_lbfgs(features, labels, classes, c, max_iter, spectrum)


def _objective(logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, c: float) -> torch.Tensor:
    # Scaled by 1 / N for conditioning; the minimiser is scikit-learn's.
    return (F.cross_entropy(logits, labels, reduction="sum") + (weight ** 2).sum() / (2 * c)) / len(labels)


def _account(weight: torch.Tensor, centred_bias: torch.Tensor, x: torch.Tensor, y: torch.Tensor, c: float,
             mean: torch.Tensor, iterations: int, algorithm: str) -> LogisticFit:
    """The fit for the centred problem's solution, convergence judged in the problem's own coordinates."""
    weight = weight.detach().clone().requires_grad_(True)
    centred_bias = centred_bias.detach().clone().requires_grad_(True)
    _objective(x @ weight.T + centred_bias, y, weight, c).backward()
    gradient = float(torch.cat([weight.grad.flatten(), centred_bias.grad]).abs().max())
    with torch.no_grad():
        loss = float(F.cross_entropy(x @ weight.T + centred_bias, y))
        fitted_bias = centred_bias - weight @ mean
    return LogisticFit(weight.detach(), fitted_bias.detach(), loss, iterations, gradient,
                       gradient <= CONVERGED_GRADIENT, algorithm)


def fit_logistic_newton(features: torch.Tensor, labels: torch.Tensor, classes: int, c: float) -> LogisticFit:
    """Newton's method with a backtracking (Armijo) line search on the centred problem. Newton is
    invariant to linear changes of variables, so no preconditioning is needed. The Hessian of the
    mean cross-entropy in theta = [W b] (classes x (d + 1)) is sum_n (diag p_n - p_n p_n^T) kron
    z_n z_n^T / N for z_n = [x_n, 1]; adding the same number to every class's bias changes nothing,
    so that direction is singular and is given unit curvature (the gradient has no part along it)."""
    x = features.double()
    mean = x.mean(dim=0)
    x = x - mean
    y = labels.long()
    count, dim = x.shape
    z = torch.cat([x, torch.ones(count, 1, dtype=x.dtype, device=x.device)], dim=1)
    width = dim + 1
    targets = F.one_hot(y, classes).to(x.dtype)
    penalised = torch.ones(classes, width, dtype=x.dtype, device=x.device)
    penalised[:, -1] = 0.0  # the bias is not penalised
    shift = torch.zeros(classes, width, dtype=x.dtype, device=x.device)
    shift[:, -1] = classes ** -0.5

    def value(theta: torch.Tensor) -> float:
        logits = z @ theta.T
        return float((torch.logsumexp(logits, 1).sum() - (logits * targets).sum()
                      + (theta * theta * penalised).sum() / (2 * c)) / count)

    theta = torch.zeros(classes, width, dtype=x.dtype, device=x.device)
    loss, steps, previous = value(theta), 0, float("inf")
    while steps < NEWTON_MAX_STEPS:
        p = torch.softmax(z @ theta.T, dim=1)
        gradient = ((p - targets).T @ z + theta * penalised / c) / count
        largest = float(gradient.abs().max())
        # Converged; or converged in the record's sense with no step gaining any more (the float64
        # floor; earlier on, Newton's gradient may grow for a step while the loss falls).
        if largest <= NEWTON_TOLERANCE or (largest <= CONVERGED_GRADIENT and largest >= previous):
            break
        previous = largest
        outer = (p[:, :, None] * z[:, None, :]).reshape(count, classes * width)
        hessian = -(outer.T @ outer).view(classes, width, classes, width)
        own = torch.einsum("na,ni,nj->aij", p, z, z)
        for a in range(classes):
            hessian[a, :, a, :] += own[a]
        hessian = hessian.reshape(classes * width, classes * width) / count
        hessian += torch.diag((penalised / (c * count)).flatten()) + torch.outer(shift.flatten(), shift.flatten())
        step = torch.linalg.solve(hessian, -gradient.flatten()).view(classes, width)
        slope = float((gradient * step).sum())
        size, moved = 1.0, False
        for _halving in range(40):
            candidate = value(theta + size * step)
            # Armijo, with room for the loss's rounding: near the minimiser the predicted decrease
            # is below what float64 resolves, and the full step is the right one.
            if candidate <= loss + 1e-4 * size * slope + 1e-13 * abs(loss):
                theta, loss, moved = theta + size * step, candidate, True
                break
            size /= 2
        steps += 1
        if not moved:  # no representable decrease is left: this is the float64 minimiser
            break
    return _account(theta[:, :dim], theta[:, -1], x, y, c, mean, steps, "newton")


def fit_logistic_lbfgs(features: torch.Tensor, labels: torch.Tensor, classes: int, c: float,
                       max_iter: int = MAX_ITERATIONS, spectrum=None) -> LogisticFit:
    """Full-batch L-BFGS in float64 from zero.

    Solved in better-conditioned coordinates, each an exact change of variables (the minimiser is
    the same): the features are centred (the unpenalised bias absorbs the shift), and W = V Q with
    Q = (S / 4 + I / (C N))^(-1/2) for the features' covariance S, about the inverse square root of
    the loss's Hessian; on demo digits this cut the iterations at C = 1000 from 2,436 to 125. The
    returned head takes the original features. `spectrum`: `centred_spectrum(features)`, when known."""
    mean, values, vectors = spectrum if spectrum is not None else centred_spectrum(features)
    x = features.double() - mean
    y = labels.long()
    count = len(y)
    q = vectors @ torch.diag((values / 4 + 1.0 / (c * count)).rsqrt()) @ vectors.T
    xq = x @ q
    v = torch.zeros(classes, x.shape[1], dtype=torch.float64, device=x.device, requires_grad=True)
    bias = torch.zeros(classes, dtype=torch.float64, device=x.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([v, bias], lr=1.0, max_iter=max_iter, max_eval=2 * max_iter,
                                  tolerance_grad=1e-9, tolerance_change=1e-12, history_size=20,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = _objective(xq @ v.T + bias, y, v @ q, c)
        loss.backward()
        return loss

    optimizer.step(closure)
    return _account(v @ q, bias, x, y, c, mean, int(optimizer.state[v]["n_iter"]), "lbfgs")


def accuracy(weight: torch.Tensor, bias: torch.Tensor, features: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        logits = features.to(weight.dtype) @ weight.T + bias
        return float((logits.argmax(dim=-1) == labels).double().mean())


def select_c(tune_train: Tuple[torch.Tensor, torch.Tensor], tune_val: Tuple[torch.Tensor, torch.Tensor],
             classes: int, grid: Sequence[float] = C_GRID, on_fit=lambda c, fit: None,
             algorithm: str = "auto") -> Tuple[float, Dict[str, float], Dict[str, LogisticFit]]:
    """The C with the best validation accuracy (ties: the stronger penalty, i.e. the smaller C),
    the scores and the fits; `on_fit(c, fit)` is called after each fit."""
    scores, fits = {}, {}
    algorithm = pick_algorithm(classes, tune_train[0].shape[1], algorithm)
    # Only L-BFGS preconditions with the covariance's spectrum (the same for every C).
    spectrum = centred_spectrum(tune_train[0]) if algorithm == "lbfgs" else None
    for c in grid:
        fits[repr(c)] = fit = fit_logistic(*tune_train, classes, c, spectrum=spectrum, algorithm=algorithm)
        scores[repr(c)] = accuracy(fit.weight, fit.bias, *tune_val)
        on_fit(c, fit)
    best = max(grid, key=lambda c: (scores[repr(c)], -c))
    return best, scores, fits


def solve_key(features: Mapping[str, Tuple[torch.Tensor, torch.Tensor]], classes: int,
              grid: Sequence[float]) -> str:
    """What a solved head depends on: the exact features and labels of each role, the classes, the
    grid and the solver; nothing else (no seed)."""
    digest = hashlib.sha256(json.dumps({"solver": SOLVER_VERSION, "grid": [repr(c) for c in grid],
                                        "classes": classes, "max_iter": MAX_ITERATIONS}).encode())
    for role in ("tune_train", "tune_eval", "train"):
        feats, labels = features[role]
        digest.update(role.encode())
        digest.update(np.ascontiguousarray(feats.detach().cpu().numpy(), dtype=np.float32).tobytes())
        digest.update(np.ascontiguousarray(labels.detach().cpu().numpy(), dtype=np.int64).tobytes())
    return digest.hexdigest()[:24]


class HeadStore:
    """Solved heads under <features folder>/heads/<key>.npz (weight, bias and the solve's account as
    JSON), written atomically; a file that does not load, or holds a head of the wrong shape or
    non-finite values, is solved again."""

    def __init__(self, folder: Path):
        self.folder = Path(folder) / "heads"

    def load(self, key: str, shape: Tuple[int, int]) -> Optional[Tuple[torch.Tensor, torch.Tensor, Dict[str, Any]]]:
        path = self.folder / f"{key}.npz"
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as saved:
                weight, bias, account = saved["weight"], saved["bias"], json.loads(str(saved["account"]))
        except (OSError, ValueError, KeyError):
            return None
        if weight.shape != shape or bias.shape != shape[:1] or not (np.isfinite(weight).all() and np.isfinite(bias).all()):
            return None
        return torch.from_numpy(weight), torch.from_numpy(bias), account

    def save(self, key: str, weight: torch.Tensor, bias: torch.Tensor, account: Mapping[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{key}.npz"
        tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.npz")
        np.savez(tmp, weight=weight.cpu().numpy(), bias=bias.cpu().numpy(), account=np.array(json.dumps(account)))
        os.replace(tmp, path)


def solve_head(features: Mapping[str, Tuple[torch.Tensor, torch.Tensor]], classes: int, names: Mapping[str, str],
               store: HeadStore, progress: Optional[Progress] = None, label: str = "probe",
               grid: Sequence[float] = C_GRID) -> Tuple[torch.Tensor, torch.Tensor, Dict[str, Any]]:
    """The head for `features` (roles tune_train, tune_eval, train -> (features, labels)): C chosen
    on tune_train -> tune_eval, then refitted on train. Loaded from `store` when this exact problem
    was solved before (by another seed), else solved and saved. Returns (weight, bias, account)."""
    device = features["train"][0].device
    key = solve_key(features, classes, grid)
    shape = (classes, features["train"][0].shape[1])
    saved = store.load(key, shape)
    if saved is not None:
        weight, bias, account = saved
        return weight.to(device), bias.to(device), {**account, "reused": True}
    progress = progress or SilentProgress()
    bar = progress.add_task(f"{label} C grid", total=len(grid) + 1)
    start = time.perf_counter()
    algorithm = pick_algorithm(classes, shape[1])
    with solver_threads(device, algorithm) as threads:
        best, scores, fits = select_c(features["tune_train"], features["tune_eval"], classes, grid,
                                      on_fit=lambda c, fit: progress.advance(bar))
        final = fit_logistic(*features["train"], classes, best)
    progress.advance(bar)
    progress.remove_task(bar)
    fits["final"] = final
    account = {
        "parameter": "C (inverse L2 strength, scikit-learn convention)", "grid": list(grid), "selected": best,
        "scores": scores, "on": f"{names['tune_train']} -> {names['tune_eval']}", "final_loss": final.loss,
        "iterations": {name: fit.iterations for name, fit in fits.items()},
        "max_gradient": max(fit.gradient for fit in fits.values()),
        "converged": all(fit.converged for fit in fits.values()),
        "solver": SOLVER_VERSION, "algorithm": final.algorithm, "threads": threads,
        "solve_seconds": time.perf_counter() - start, "key": key,
        "shared_by_seeds": "the head depends on the features only, so every seed's record of this task "
                           "is written from this one solve (kept under the features' heads/ folder)",
    }
    store.save(key, final.weight, final.bias, account)
    return final.weight, final.bias, {**account, "reused": False}
