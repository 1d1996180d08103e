"""Show a ``QualityReport``: a terminal summary and a two-panel histogram.

matplotlib is imported inside ``plot_report`` (extra ``plots``) with the Agg backend. This
module does not measure pairs (``music_aug.quality.measure``).
"""

from __future__ import annotations

from pathlib import Path

from music_aug.errors import UserInputError
from music_aug.evaluation.plots import pyplot, save_figure
from music_aug.quality.models import LengthStats, QualityReport

__all__ = ["format_report", "plot_report"]


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _histogram(counts: dict[int, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items()) or "none"


def _length_lines(title: str, stats: LengthStats | None) -> list[str]:
    if stats is None:
        return [f"{title}: no pairs"]
    corr = (
        "n/a (no length differences)" if stats.correlation is None else f"{stats.correlation:+.3f}"
    )
    return [
        f"{title}:",
        f"  mean tokens chosen {stats.mean_chosen:.1f}, rejected {stats.mean_rejected:.1f}; "
        f"diff chosen - rejected mean {stats.mean_diff:+.1f}, median {stats.median_diff:+.1f}",
        f"  chosen longer {_pct(stats.chosen_longer)}, shorter {_pct(stats.rejected_longer)}, "
        f"same length {_pct(stats.ties)}; correlation with the label {corr}",
        f"  length-only baseline: longer wins {_pct(stats.longer_wins)}, shorter wins "
        f"{_pct(stats.shorter_wins)} (ties count 0.5)",
    ]


def format_report(report: QualityReport, *, name: str | None = None) -> str:
    """Human-readable summary of a report (aggregates only; ``--json`` has every pair)."""
    lines = [f"== {name} ==" if name else "== pair quality =="]
    failures = ", ".join(f"{k}={v}" for k, v in report.failures_by_reason.items()) or "none"
    lines.append(
        f"rows {report.rows}: {report.pairs} pairs, {report.failed_rows} failed rows "
        f"({failures}); tokens counted by {report.token_count}"
    )
    lines += _length_lines("answers at the differing turns", report.answers)
    lines += _length_lines("whole conversations", report.conversations)
    truncation = report.truncation
    if truncation.status == "unknown":
        lines.append("truncation: unknown (no music_metadata.answer_finish_reasons)")
    else:
        parts = []
        for side, stats in (("chosen", truncation.chosen), ("rejected", truncation.rejected)):
            if stats is not None:
                parts.append(
                    f"{side} {stats.truncated}/{stats.answers} answers ({_pct(stats.rate)}), "
                    f"{stats.pairs_truncated} pairs"
                )
        lines.append(
            f"truncation (finish_reason 'length', {truncation.status}, "
            f"{truncation.pairs_with_reasons} pairs): " + "; ".join(parts)
        )
        lines.append(
            f"  truncation-only baseline: more truncated wins "
            f"{_pct(truncation.more_truncated_wins)} (ties count 0.5)"
        )
    if report.similarity is None:
        lines.append("contrast instructions: none in the metadata")
    else:
        s = report.similarity
        lines.append(
            f"contrast instructions u'_t vs u_t: {int(s['instructions'])}, token Jaccard mean "
            f"{s['mean_jaccard']:.2f} (median {s['median_jaccard']:.2f}), near copies "
            f"(Jaccard >= 0.8) {int(s['near_copies'])}, same token set {int(s['same_tokens'])}"
        )
    if report.refusals is not None:
        r = report.refusals
        refused = ", ".join(f"{k}={v}" for k, v in r.invalid_by_reason.items()) or "none"
        lines.append(
            f"refused contrast instructions (run summary): {refused}; valid "
            f"{r.perturbation_valid}/{r.perturbation_attempts}"
        )
    lines += [
        f"differing turns per pair: {_histogram(report.differing_turns)}",
        f"branch turns: {_histogram(report.branch_turns)}",
        f"user turns: {_histogram(report.user_turns)}",
        f"duplicates: {report.duplicate_pairs} repeated pairs, {report.duplicate_sources} rows "
        "from an already seen source",
    ]
    return "\n".join(lines)


def plot_report(report: QualityReport, path: str | Path, *, title: str | None = None) -> Path:
    """Histograms of the answer-length differences and of the differing-turn counts.

    Raises:
        UserInputError: the report has no pairs.
        MissingDependencyError: matplotlib is not installed (extra ``plots``).
    """
    if not report.pairs:
        raise UserInputError("the report has no pairs to plot; inspect a file with ok pairs")
    plt = pyplot("plotting the pair report")
    diffs = [p.length_diff for p in report.per_pair]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.hist(diffs, bins=min(40, max(5, len(set(diffs)))), color="#4477aa")
    left.axvline(0, color="black", linewidth=0.8)
    left.set_xlabel("tokens chosen - rejected (differing answers)")
    left.set_ylabel("pairs")
    turns = sorted(report.differing_turns)
    right.bar([str(t) for t in turns], [report.differing_turns[t] for t in turns], color="#aa7744")
    right.set_xlabel("differing assistant turns")
    right.set_ylabel("pairs")
    for axes in (left, right):
        axes.yaxis.get_major_locator().set_params(integer=True)  # pair counts
    if title:
        figure.suptitle(title, fontsize=10)
    return save_figure(figure, path, dpi=120)
