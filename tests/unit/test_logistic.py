"""The probe's solver: Newton and L-BFGS both converged to scikit-learn's minimiser, insensitive to
the rounding that differs between machines, solved once per problem and reused by every seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alore_bench.logistic import (C_GRID, CONVERGED_GRADIENT, NEWTON_MAX_PARAMETERS, SOLVER_THREADS, HeadStore,
                                  fit_logistic, pick_algorithm, select_c, solve_head)


def _problem(seed: int = 0, count: int = 300, dim: int = 12, classes: int = 4, offset: float = 6.0):
    """Linearly informative but noisy labels on features far from the origin (as a backbone's are)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, dim)) + offset
    truth = rng.normal(size=(dim, classes))
    y = ((x - offset) @ truth + rng.normal(scale=2.0, size=(count, classes))).argmax(axis=1)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


@pytest.mark.parametrize("algorithm", ["newton", "lbfgs"])
@pytest.mark.parametrize("c", [0.01, 1.0, 1000.0])
def test_a_fit_converges_to_scikit_learns_minimiser(c, algorithm):
    from sklearn.linear_model import LogisticRegression

    x, y = _problem()
    fit = fit_logistic(x, y, 4, c, algorithm=algorithm)
    assert fit.converged and fit.gradient <= CONVERGED_GRADIENT and fit.iterations > 0
    assert fit.algorithm == algorithm
    reference = LogisticRegression(C=c, tol=1e-12, max_iter=100_000).fit(x.double().numpy(), y.numpy())
    probabilities = torch.softmax(x.double() @ fit.weight.T + fit.bias, dim=-1).numpy()
    assert np.abs(probabilities - reference.predict_proba(x.double().numpy())).max() < 1e-4


def test_newton_takes_the_small_heads_and_few_steps_where_l_bfgs_takes_thousands():
    # demo_vit's 64 features (NEWTON_MAX_PARAMETERS covers its 10 classes); ViT-B/16's 768 with 2 classes
    # still fit, with 3 they do not.
    assert pick_algorithm(10, 64) == "newton" and pick_algorithm(2, 768) == "newton"
    assert pick_algorithm(3, 768) == "lbfgs" and 3 * 769 > NEWTON_MAX_PARAMETERS
    assert pick_algorithm(3, 768, "newton") == "newton"
    # Nearly separable, weakly penalised: the case that took L-BFGS thousands of iterations on demo textures.
    x, y = _problem(offset=10.0)
    x = x + 3.0 * torch.nn.functional.one_hot(y, 12)[:, :12].float()
    newton, lbfgs = (fit_logistic(x, y, 4, 1000.0, algorithm=a) for a in ("newton", "lbfgs"))
    assert newton.converged and lbfgs.converged
    assert newton.iterations <= 30 < lbfgs.iterations
    assert newton.gradient < 1e-9
    logits = [x.double() @ f.weight.T + f.bias for f in (newton, lbfgs)]
    assert torch.equal(logits[0].argmax(1), logits[1].argmax(1))


def test_rounding_differences_of_another_machine_do_not_move_the_head():
    # Another CPU's kernels round differently; a relative change of 1e-7 in the features stands for that.
    # Stopped after a fixed number of iterations this moved the selected C on demo digits (1000 -> 100).
    x, y = _problem(offset=10.0)
    tune, val = (x[:240], y[:240]), (x[240:], y[240:])
    first = select_c(tune, val, 4)
    second = select_c((tune[0] * (1 + 1e-7), tune[1]), (val[0] * (1 + 1e-7), val[1]), 4)
    assert first[0] == second[0] and first[1] == second[1]
    a, b = first[2][repr(first[0])], second[2][repr(first[0])]
    assert torch.allclose(a.weight, b.weight, rtol=0, atol=1e-4) and torch.allclose(a.bias, b.bias, rtol=0, atol=1e-3)


class Recorder:
    def __init__(self):
        self.totals, self.advances = [], 0

    def add_task(self, description, total):
        self.totals.append((description, total))
        return 0

    def advance(self, task_id, amount=1):
        self.advances += amount

    def update(self, task_id, **kwargs):
        pass

    def remove_task(self, task_id):
        pass


def _roles(labels_shift: int = 0):
    x, y = _problem()
    y = (y + labels_shift) % 4
    return {"tune_train": (x[:240], y[:240]), "tune_eval": (x[240:], y[240:]), "train": (x, y)}


NAMES = {"tune_train": "train800", "tune_eval": "val200", "train": "train800val200"}


def test_a_head_is_solved_once_and_every_later_seed_reuses_it(tmp_path):
    store, progress = HeadStore(tmp_path), Recorder()
    threads = torch.get_num_threads()
    weight, bias, account = solve_head(_roles(), 4, NAMES, store, progress, "digits s42")
    assert torch.get_num_threads() == threads  # the solver's thread count is put back
    assert account["reused"] is False and account["converged"] is True and account["algorithm"] == "newton"
    assert account["threads"] == (SOLVER_THREADS["newton"] or threads)
    assert account["on"] == "train800 -> val200" and account["grid"] == list(C_GRID)
    assert set(account["iterations"]) == {repr(c) for c in C_GRID} | {"final"}
    assert progress.totals == [("digits s42 C grid", len(C_GRID) + 1)] and progress.advances == len(C_GRID) + 1

    later = Recorder()
    again_weight, again_bias, again = solve_head(_roles(), 4, NAMES, store, later, "digits s43")
    assert again["reused"] is True and later.totals == [] and again["key"] == account["key"]
    assert torch.equal(again_weight, weight) and torch.equal(again_bias, bias)
    assert {k: v for k, v in again.items() if k != "reused"} == {k: v for k, v in account.items() if k != "reused"}


@pytest.mark.parametrize("change", ["other labels", "garbage file", "wrong shape", "non-finite"])
def test_a_saved_head_is_solved_again_when_the_problem_or_the_file_changed(tmp_path, change):
    store = HeadStore(tmp_path)
    _, _, account = solve_head(_roles(), 4, NAMES, store)
    path = store.folder / f"{account['key']}.npz"
    roles = _roles()
    if change == "other labels":  # same features, other labels (a re-prepared label rule): another problem
        roles = _roles(labels_shift=1)
    elif change == "garbage file":
        path.write_bytes(b"not a numpy archive")
    elif change == "wrong shape":
        store.save(account["key"], torch.zeros(3, 12), torch.zeros(3), account)
    else:
        store.save(account["key"], torch.full((4, 12), float("nan")), torch.zeros(4), account)
    weight, _, again = solve_head(roles, 4, NAMES, store)
    assert again["reused"] is False and weight.shape == (4, 12) and torch.isfinite(weight).all()
    assert not list(store.folder.glob(".*tmp*"))  # nothing half-written left


@pytest.mark.parametrize("algorithm", ["newton", "lbfgs"])
def test_a_class_missing_from_the_training_labels_gives_a_finite_converged_head(algorithm):
    # A few examples per class (VTAB-1k's 800 for up to 397 classes) can leave a class out of a split: its
    # unpenalised bias has no finite optimum, only an ever smaller gradient.
    x, y = _problem()
    y = y.clamp(max=2)
    fit = fit_logistic(x, y, 4, 1.0, algorithm=algorithm)
    assert fit.converged and torch.isfinite(fit.weight).all() and torch.isfinite(fit.bias).all()
    assert fit.iterations < (30 if algorithm == "newton" else 10_000)
    assert not ((x.double() @ fit.weight.T + fit.bias).argmax(1) == 3).any()
