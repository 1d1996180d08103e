"""Judge-verified contrast: does the chosen answer really answer u_t better than the rejected one?

MUSIC's rejected answer at a contrast turn was written for u'_t; the pair teaches the
right thing only if it is a worse answer to u_t. ``ContrastVerifier`` asks the
order-swapped pairwise judge of ``music_aug.evaluation.judge`` at each contrast turn (or
the last one): both candidates are shown after the same context, the chosen conversation
up to u_t, once with the chosen answer as A and once as B. A turn is confirmed when the
chosen answer wins in both orders. The pair's verdict is ``"chosen"`` when every judged
turn is confirmed, ``"rejected"`` when the rejected answer wins any turn in both orders,
``"tie"`` otherwise; it goes into ``music_metadata.verification`` with both orders'
verdicts per turn.

All requests of a group of pairs go to the judge backend in ONE ``generate`` call (one
extra wave per verification step); wrap that backend in ``CachedBackend`` to reuse
verdicts. This module does not build pairs or decide what to do with a verdict (the
augmenter keeps, marks or drops by ``MusicConfig.verify``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from music_aug.backends.base import Backend
from music_aug.conversation import Conversation
from music_aug.summary import RunSummary

__all__ = ["ContrastVerifier"]


class ContrastVerifier:
    """Order-swapped judge verdicts for ``ok`` MUSIC rows.

    Args:
        backend: the judge backend (the simulator's, or a stronger one).
        turns: ``"contrast"`` (every contrast turn) or ``"last"``.
        template: judge template name or path (``None``: ``"verify_turn"``, chat).
    """

    def __init__(self, backend: Backend, turns: str = "contrast", template: str | None = None):
        from music_aug.evaluation.judge import PairwiseJudge

        self.judge = PairwiseJudge(backend, template or "verify_turn")
        self.turns = turns

    def _candidates(self, row: dict[str, Any]) -> list[tuple[int, Conversation, Conversation]]:
        meta = row["music_metadata"]
        turns = list(meta["contrast_turns"])
        if self.turns == "last":
            turns = turns[-1:]
        chosen = Conversation.from_messages(row["chosen"])
        rejected = Conversation.from_messages(row["rejected"])
        out = []
        for turn in turns:
            context = chosen.upto_user(turn)
            good = context.append("assistant", chosen.turns[turn].assistant or "")
            bad = context.append("assistant", rejected.turns[turn].assistant or "")
            out.append((turn, good, bad))
        return out

    def verify(self, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any] | None]:
        """Each ``ok`` row's ``verification`` record (``None`` for other rows), in order."""
        plans = [self._candidates(r) if _ok(r) else [] for r in rows]
        pairs = [(good, bad) for plan in plans for _, good, bad in plan]
        outcomes = iter(self.judge.judge(pairs) if pairs else [])
        records: list[dict[str, Any] | None] = []
        for row, plan in zip(rows, plans, strict=True):
            if not _ok(row):
                records.append(None)
                continue
            judged = [next(outcomes) for _ in plan]
            winners = [outcome.winner for outcome in judged]
            if winners and all(w == "first" for w in winners):
                verdict = "chosen"
            elif "second" in winners:
                verdict = "rejected"
            else:
                verdict = "tie"
            records.append({
                "verdict": verdict,
                "turns": [turn for turn, _, _ in plan],
                # verdict letters as the judge gave them: chosen shown first (as A), then second
                "chosen_first": [o.verdicts[0] or "unparsed" for o in judged],
                "chosen_second": [o.verdicts[1] or "unparsed" for o in judged],
            })  # fmt: skip
        return records

    def apply(
        self, groups: list[list[dict[str, Any]]], policy: str, summary: RunSummary
    ) -> Iterator[list[dict[str, Any]]]:
        """Verify every group's rows in one wave; yield each group kept, marked or dropped.

        ``policy``: ``"keep"`` (record only), ``"mark"`` (``status="unverified"`` unless
        confirmed) or ``"drop"`` (leave unconfirmed pairs out, counted as skipped).
        """
        records = iter(self.verify([row for group in groups for row in group]))
        for group in groups:
            kept = []
            for row in group:
                record = next(records)
                if record is not None:
                    row["music_metadata"]["verification"] = record
                    confirmed = record["verdict"] == "chosen"
                    summary.verified += confirmed
                    summary.unverified += not confirmed
                    if not confirmed and policy == "mark":
                        row["music_metadata"]["status"] = "unverified"
                    if not confirmed and policy == "drop":
                        summary.pairs_out -= 1
                        summary.skipped += 1
                        reasons = summary.failures_by_reason
                        reasons["unverified"] = reasons.get("unverified", 0) + 1
                        continue
                kept.append(row)
            yield kept


def _ok(row: dict[str, Any]) -> bool:
    return bool(row.get("music_metadata", {}).get("status") == "ok" and row.get("rejected"))
