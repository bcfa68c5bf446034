"""Figures: accuracy versus parameters (error bars, published rows hollow, labels kept apart, a
symlog axis that puts a 0-parameter linear probe at 0, not at a made-up value, with ticks that
read small budgets; a legend of what is drawn) and per-group bars of each row's difference to a
chosen baseline."""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from ..errors import UserError, param
from .render import Names
from .tables import SuiteTable, overall_column

# Below this many million parameters the axis is linear, so 0 (linear probing) is drawn at 0.
LINEAR_BELOW_M = 0.01


def _labels(table: SuiteTable, names: Names) -> List[str]:
    """One label per row; rows of one method are told apart by their settings."""
    labels = [names.method(r.key[1]) + ("" if len({x.key[0] for x in table.rows}) == 1 else f" ({r.key[0]})")
              for r in table.rows]
    for i, row in enumerate(table.rows):
        if labels.count(labels[i]) > 1:
            labels[i] += f" [{table.settings_text(row) if table.varying_for(row) else row.key[2]}]"
    return labels


def _spread(points: List[Tuple[float, float]], height: float) -> List[float]:
    """Label heights (display units) at least `height` apart, each as near its point as possible."""
    order = sorted(range(len(points)), key=lambda i: points[i][1])
    placed: List[float] = [0.0] * len(points)
    last = None
    for i in order:
        y = points[i][1]
        if last is not None and y < last + height:
            y = last + height
        placed[i] = last = y
    return placed


def _setup():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# Parameter-axis ticks (millions): the linear part below LINEAR_BELOW_M has its own, so small
# budgets (0.004M, 0.008M) can be read; above it, 1-3-10 steps.
PARAM_TICKS = (0.0, 0.004, 0.008, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
MINOR_TICKS = (0.002, 0.006, 0.01, 0.02, 0.05, 0.2, 0.5, 2.0, 5.0, 20.0, 50.0, 200.0, 500.0)


def _param_axis(ax, right: float) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    ax.set_xscale("symlog", linthresh=LINEAR_BELOW_M)
    ax.set_xlim(left=-0.1 * LINEAR_BELOW_M, right=right)
    ax.xaxis.set_major_locator(FixedLocator([t for t in PARAM_TICKS if t <= right]))
    ax.xaxis.set_minor_locator(FixedLocator([t for t in MINOR_TICKS if t <= right]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def accuracy_figure(tables: Sequence[SuiteTable], names: Optional[Names] = None):
    """The accuracy-versus-parameters figure (one panel per table), not yet saved."""
    from matplotlib.lines import Line2D

    plt = _setup()
    names = names or Names()
    fig, axes = plt.subplots(1, len(tables), figsize=(7.0 * len(tables), 5.2), squeeze=False)
    for ax, table in zip(axes[0], tables):
        column = overall_column(table.suite)
        points, texts, drawn = [], [], {"ours": False, "published": False}
        for row, label in zip(table.rows, _labels(table, names)):
            cell = row.cells.get(column)
            if cell is None or row.params_m is None:
                continue
            ax.errorbar([row.params_m], [cell.mean], yerr=[cell.std or 0.0], fmt="o", ms=6, capsize=3)
            drawn["ours"] = True
            points.append((row.params_m, cell.mean))
            texts.append(label)
        for ref in table.reference:
            cell = ref["cells"].get(column)
            if cell is None:
                continue
            ax.scatter([ref["params_m"]], [cell.mean], s=40, facecolors="none", edgecolors="black")
            drawn["published"] = True
            points.append((ref["params_m"], cell.mean))
            texts.append(f"{ref['label']} (published)")
        # Room for a marker at 0 and for the labels right of the widest point.
        _param_axis(ax, max(max((x for x, _y in points), default=0.0) * 6, LINEAR_BELOW_M * 3))
        fig.canvas.draw()
        if points:
            transform = ax.transData
            shown = [transform.transform(p) for p in points]
            heights = _spread([tuple(p) for p in shown], height=11.0)
            inverse = transform.inverted()
            for (x, y), (sx, _sy), label, target in zip(points, shown, texts, heights):
                tx, ty = inverse.transform((sx + 6, target))
                ax.annotate(label, (x, y), xytext=(tx, ty), fontsize=8, va="center",
                            arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "0.5"})
        ax.set_xlabel(f"trainable parameters without head (M; linear below {LINEAR_BELOW_M}, log above)")
        ax.set_ylabel(f"{column}, top-1 (%)" + ("; bars: std over seeds" if drawn["ours"] else ""))
        backbones = sorted({names.backbone(r.key[0]) for r in table.rows})
        ax.set_title(f"{table.suite.name}" + (f", {', '.join(backbones)}" if backbones else "")
                     + ": accuracy vs trainable parameters")
        ax.grid(True, which="both", alpha=0.3)
        # A legend only where two kinds of marker are drawn, and only for those.
        if drawn["ours"] and drawn["published"]:
            ax.legend(handles=[Line2D([], [], marker="o", ls="none", color="0.3", label="ours"),
                               Line2D([], [], marker="o", ls="none", mfc="none", mec="black", label="published")],
                      fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def plot_accuracy_vs_params(tables: Sequence[SuiteTable], path, names: Optional[Names] = None) -> None:
    plt = _setup()
    fig = accuracy_figure(tables, names)
    fig.savefig(path, bbox_inches="tight")  # nothing drawn (a long title, a label) is cut at the edge
    plt.close(fig)


def plot_delta(tables: Sequence[SuiteTable], baseline: str, path, names: Optional[Names] = None) -> None:
    """Per group (and overall), each row's mean minus the baseline method's row, as bars."""
    plt = _setup()
    names = names or Names()
    fig, axes = plt.subplots(1, len(tables), figsize=(7.0 * len(tables), 4.8), squeeze=False)
    for ax, table in zip(axes[0], tables):
        bases = [r for r in table.rows if r.key[1] == baseline]
        if len(bases) != 1:
            raise UserError(f"{param('plot_delta', baseline)}: suite {table.suite.name} has {len(bases)} rows of method "
                            f"{baseline}; it needs exactly one (filter with {param('filters', 'config=...')})")
        base = bases[0]
        groups = [f"{g} mean" for g in table.suite.groups] if len(table.suite.groups) > 1 else []
        columns = groups + [overall_column(table.suite)]
        others = [(r, l) for r, l in zip(table.rows, _labels(table, names)) if r is not base]
        width = 0.8 / max(len(others), 1)
        for i, (row, label) in enumerate(others):
            values = [(row.cells[c].mean - base.cells[c].mean) if c in row.cells and c in base.cells else 0.0
                      for c in columns]
            ax.bar([j + i * width for j in range(len(columns))], values, width=width, label=label)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks([j + width * (len(others) - 1) / 2 for j in range(len(columns))])
        ax.set_xticklabels([c.replace(" mean", "") for c in columns], rotation=20)
        ax.set_ylabel(f"top-1 minus {names.method(baseline)} (points)")
        ax.set_title(f"{table.suite.name}: difference to {names.method(baseline)}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
