"""Heatmap of Best-of-N win rates in the style of the paper's Figure 2.

Rows are comparisons ("rm vs greedy", "rm_a vs rm_b"), columns are dataset x N, and each
cell shows the first side's win rate (ties = 0.5) with a diverging colour scale centred on
0.5, so blue means the first selector won more often and red means it lost.

matplotlib is imported inside the function (extra ``plots``) with the non-interactive Agg
backend; this module does not compute win rates.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from music_aug.errors import MissingDependencyError, UserInputError

__all__ = ["heatmap_matrix", "plot_win_rate_heatmap", "pyplot", "save_figure"]


def _dicts(cells: Sequence[Any]) -> list[dict[str, Any]]:
    return [cell if isinstance(cell, dict) else cell.to_dict() for cell in cells]


def _counts(cells: Sequence[Any]) -> dict[tuple[str, str], str]:
    """``"W/L/T"`` per (row, column label) for cells that carry the counts."""
    return {
        (
            str(d["comparison"]),
            f"{d['dataset']}\nN={d['n']}",
        ): f"{d['wins']}/{d['losses']}/{d['ties']}"
        for d in _dicts(cells)
        if {"wins", "losses", "ties"} <= set(d)
    }


def heatmap_matrix(
    cells: Sequence[Any],
) -> tuple[list[str], list[str], list[list[float | None]]]:
    """Arrange cells (objects or dicts with dataset, n, comparison, win_rate) into a grid.

    Returns row labels, column labels (``"dataset\\nN=n"``) and values (``None`` = missing).
    """
    rows: list[str] = []
    columns: list[tuple[str, int]] = []
    values: dict[tuple[str, tuple[str, int]], float] = {}
    for data in _dicts(cells):
        row, column = str(data["comparison"]), (str(data["dataset"]), int(data["n"]))
        if row not in rows:
            rows.append(row)
        if column not in columns:
            columns.append(column)
        values[(row, column)] = float(data["win_rate"])
    columns.sort(key=lambda c: (c[0], c[1]))
    grid = [[values.get((row, column)) for column in columns] for row in rows]
    return rows, [f"{dataset}\nN={n}" for dataset, n in columns], grid


def plot_win_rate_heatmap(
    cells: Sequence[Any],
    path: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """Draw the win-rate heatmap and save it (PNG, or any format matplotlib infers).

    Args:
        cells: ``BonCell`` objects or ``results.json`` cell dicts.
        path: output file; parent folders are created.
        title: optional figure title.
    """
    if not cells:
        raise UserInputError("no win-rate cells to plot; run the BoN experiment first")
    plt = pyplot("drawing the win-rate heatmap")
    rows, columns, grid = heatmap_matrix(cells)
    masked = [[float("nan") if v is None else v for v in row] for row in grid]
    width = max(5.0, 1.5 * len(columns) + 3.0)
    height = max(2.0, 0.7 * len(rows) + 1.6)
    figure, axes = plt.subplots(figsize=(width, height))
    image = axes.imshow(masked, cmap="RdBu", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(len(columns)), labels=columns)
    axes.set_yticks(range(len(rows)), labels=rows)
    counts = _counts(cells)
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            text = "–" if value is None else f"{value:.2f}"
            if (rows[i], columns[j]) in counts:
                text += f"\nW/L/T {counts[(rows[i], columns[j])]}"
            dark = value is not None and abs(value - 0.5) > 0.3
            axes.text(j, i, text, ha="center", va="center", color="white" if dark else "black")
    colorbar = figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    colorbar.set_label("win rate (ties = 0.5)")
    if title:
        axes.set_title(title, fontsize=10)
    return save_figure(figure, path, dpi=150)


def pyplot(purpose: str) -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend, or ``MissingDependencyError``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise MissingDependencyError("matplotlib", "plots", purpose) from error
    return plt


def save_figure(figure: Any, path: str | Path, *, dpi: int) -> Path:
    """Lay out, save (parent folders created) and close a figure; returns the path."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=dpi)
    plt.close(figure)
    return out
