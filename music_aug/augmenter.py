"""``MusicAugmenter``: the ``datasets.map`` callable that runs MUSIC, event-driven.

For each source row the augmenter plans pairs (``TurnSelector``), then grows two branches
per pair, step by step (``RowWork`` drives ``PairStepper``: contrast, answer, next user
turn). ``PairBuilder`` checks and emits the pair.

Scheduling (``scheduler.run``): every branch sends its next request the moment its last
result arrives, so up to the backend's capacity requests stay in flight across all rows;
rows are admitted as others finish and leave in input order. Inside one ``augment_records``
call (one ``datasets.map`` batch) all rows run at once; ``iter_augment`` streams any number
of rows through a bounded window. A backend with only ``generate(list)`` gets every ready
request in one call, so its calls per batch stay bounded by the number of steps.

Randomness: each row gets ``random.Random`` seeded by the config seed and the row's content
hash; every request carries a sampling seed derived from it, so a row gives the same pair
under shuffling, sharding, ``num_proc > 1`` and any completion order.

This module does not read or write files (see ``music_aug.cli.augment``).
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, cast

from music_aug import scheduler
from music_aug.backends.base import Backend
from music_aug.backends.info import backend_info
from music_aug.backends.stream import open_stream
from music_aug.batches import OUTPUT_COLUMNS, is_batch, read_batch, read_example, write_batch
from music_aug.branches import PairJob, StepFailure
from music_aug.config import MusicConfig
from music_aug.errors import AugmentationError, BackendUnusableError, ConfigError, UserInputError
from music_aug.failfast import FailFast
from music_aug.pairs import PairBuilder, PairInvariantError
from music_aug.perturb import InstructionPerturber
from music_aug.prompt_style import resolve_prompt_style, role_templates
from music_aug.rows import RowWork
from music_aug.selection import TurnSelector, read_source
from music_aug.simulate import AssistantSimulator, UserSimulator
from music_aug.steps import PairStepper
from music_aug.summary import RunSummary
from music_aug.verify import ContrastVerifier

__all__ = ["OUTPUT_COLUMNS", "MusicAugmenter", "RunSummary"]

# rows whose pairs go to the judge together (one backend call per group)
_VERIFY_ROWS = 64


class MusicAugmenter:
    """Run MUSIC over dataset rows through a backend.

    Args:
        config: the ``MusicConfig``.
        backend: any object following the ``Backend`` Protocol.
        judge_backend: the judge for ``config.verify`` (``None``: ``backend`` itself).

    Example:
        >>> from music_aug.backends.fake import EchoBackend
        >>> augmenter = MusicAugmenter(MusicConfig(max_turns=2), EchoBackend())
        >>> rows = augmenter.augment_records([{"messages": [{"role": "user", "content": "Hi"}]}])
        >>> rows[0]["music_metadata"]["status"]
        'ok'
    """

    def __init__(
        self, config: MusicConfig, backend: Backend, judge_backend: Backend | None = None
    ) -> None:
        if not isinstance(config, MusicConfig):
            raise ConfigError(f"config must be a MusicConfig, got {type(config).__name__}")
        self.config = config
        self.backend = backend
        self.judge_backend = judge_backend
        self.verifier: ContrastVerifier | None = None
        if config.verify != "off":
            self.verifier = ContrastVerifier(
                judge_backend or backend, config.verify_turns, config.judge_template
            )
        self.selector = TurnSelector(
            config.branch, contrast_turns=config.contrast_turns, max_turns=config.max_turns
        )
        info = backend_info(backend)
        # prompt_style is resolved here, once per augmenter, from the backend's name (#15).
        self.prompt_style = resolve_prompt_style(config.prompt_style, backend)
        contrast_template, user_template = role_templates(
            self.prompt_style, config.contrast_template, config.user_template
        )
        self.perturber = InstructionPerturber(
            contrast_template, config.contrast_sampling, config.max_attempts
        )
        self.user = UserSimulator(user_template, config.user_sampling)
        self.assistant = AssistantSimulator(
            config.assistant_template, config.assistant_sampling, config.assistant_system_prompt
        )
        from music_aug import __version__

        self.version = __version__
        self.template_hashes: dict[str, str | None] = {
            "contrast": self.perturber.template.hash,
            "user": self.user.template.hash,
            "assistant": self.assistant.template.hash if self.assistant.template else None,
        }
        self.builder = PairBuilder(
            backend=info.kind,
            model=info.model,
            template_hashes=self.template_hashes,
            user_turns=config.user_turns,
            version=self.version,
            prompt_style=self.prompt_style,
            seed_honoured=info.honours_seed,
        )
        self.failfast = FailFast(info)
        self.summary = RunSummary()
        self.stepper = PairStepper(config, self.perturber, self.user, self.assistant, self.summary)
        self._rows_seen = 0

    # ------------------------------------------------------------------ pickling / caching
    def __getstate__(self) -> dict[str, Any]:
        # Only what defines the output: datasets hashes this state for its cache
        # fingerprint, and num_proc workers rebuild the rest (templates, summary) from it.
        return {
            "config": self.config,
            "backend": self.backend,
            "judge_backend": self.judge_backend,
            "template_hashes": self.template_hashes,
            "version": self.version,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"], state["backend"], state.get("judge_backend"))  # type: ignore[misc]

    @property
    def fingerprint(self) -> str:
        """Stable hash of config, backend identity, template hashes and version."""
        parts = [
            self.config.content_hash(),
            self.builder.backend,
            self.builder.model,
            repr(sorted(self.template_hashes.items())),
            self.prompt_style,
            self.version,
        ]
        if self.verifier is not None:
            judge = self.verifier.judge
            parts += [str(getattr(judge.backend, "name", "?")),
                      str(getattr(judge.backend, "model", "?")), judge.template.hash]  # fmt: skip
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    @property
    def features(self) -> Any:
        """The ``datasets.Features`` of the output columns.

        ``datasets`` fixes column types on the first batch it writes; a first batch without
        failures would type ``music_metadata.error`` as null and reject a later failure. A
        batched ``dataset.map(augmenter, ...)`` is safe regardless (the augmenter hands
        ``datasets`` an Arrow table of these types); pass ``features=augmenter.features``
        for a per-example (non-batched) map.
        """
        from music_aug.pairs import output_features

        return output_features()

    def map(self, dataset: Any, **kwargs: Any) -> Any:
        """``dataset.map(self, batched=True, remove_columns=..., features=self.features)``.

        Extra keyword arguments (``batch_size``, ``num_proc``...) go to ``dataset.map``.
        """
        kwargs.setdefault("batched", True)
        kwargs.setdefault("remove_columns", dataset.column_names)
        kwargs.setdefault("features", self.features)
        return dataset.map(self, **kwargs)

    # ------------------------------------------------------------------ public entry points
    def __call__(self, batch: Any) -> Any:
        """``dataset.map(augmenter, batched=True, remove_columns=...)``; one example works too.

        Batches of any engine (``datasets``, Ray Data's pyarrow / pandas / numpy formats, a
        dict of lists) are read by ``music_aug.batches``; a plain dict of lists gets a dict
        of lists back, every other batch type a typed ``pyarrow.Table``.
        """
        if is_batch(batch):
            return write_batch(self.augment_records(read_batch(batch)), like=batch)
        rows = self.augment_records([read_example(batch)])
        if len(rows) != 1:
            raise ConfigError(
                f"a per-example call produced {len(rows)} rows; with pairs_per_conversation > 1 "
                "or on_error='skip' use dataset.map(augmenter, batched=True, remove_columns=...)"
            )
        return rows[0]

    def augment_records(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Augment a list of rows (any format the adapters read), all at once; output rows.

        Every row is planned before the first request (so ``on_error="raise"`` on a bad row
        sends nothing) and all rows are in flight together, as in one ``datasets.map`` batch.
        """
        rows = [self._admit(record) for record in records]
        outputs: list[list[dict[str, Any]]] = []
        try:
            for group in self._drive(rows, window=scheduler.Window()):  # everything at once
                outputs.append(group)
        except BackendUnusableError as error:
            # hand back the pairs that finished (emitted, or done but not yet emitted)
            done = [r for group in outputs for r in group if r["music_metadata"]["status"] == "ok"]
            error.rows = done + self._salvage(rows[len(outputs) :])
            raise
        return [row for group in outputs for row in group]

    def iter_augment(
        self, records: Iterable[Any], *, batch_size: int = 16
    ) -> Iterator[list[dict[str, Any]]]:
        """Stream rows through MUSIC; yield each input row's output rows, in input order.

        Each yielded list is one input row's result: one pair (``pairs_per_conversation``
        pairs), one marked failure, or nothing (``on_error="skip"``). Rows enter as others
        finish: a backend with a stream (``OpenAIBackend``, ``VLLMBackend``, a cached one of
        those) keeps about its capacity of requests in flight and ``batch_size`` is not a
        limit; a backend with only ``generate(list)`` gets ``batch_size`` rows per call.

        Args:
            records: rows in any format the adapters read; consumed lazily.
            batch_size: rows in flight for a batch-only backend.
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        return self._drive(map(self._admit, records), batch_size=batch_size)

    def _drive(
        self,
        rows: Iterable[RowWork],
        *,
        window: scheduler.Window | None = None,
        batch_size: int = 16,
    ) -> Iterator[list[dict[str, Any]]]:
        stream = open_stream(self.backend)
        window = window or scheduler.Window.for_stream(stream, batch_size)
        started = time.perf_counter()
        calls = stream.calls
        held: list[list[dict[str, Any]]] = []  # rows waiting for one judge wave
        try:
            for work in scheduler.run(rows, stream, window):
                outputs = work.planned + [row for job in work.jobs for row in self._finish(job)]
                if self.verifier is None:
                    yield outputs
                    continue
                held.append(outputs)
                if len(held) >= _VERIFY_ROWS:
                    yield from self._verified(held)
                    held = []
            if held:
                yield from self._verified(held)
        finally:
            self.summary.backend_calls += stream.calls - calls
            self.summary.wall_time_s += time.perf_counter() - started

    def _verified(self, groups: list[list[dict[str, Any]]]) -> Iterator[list[dict[str, Any]]]:
        """Judge the ``ok`` rows of ``groups`` in one wave; keep, mark or drop each."""
        verifier = cast(ContrastVerifier, self.verifier)
        yield from verifier.apply(groups, self.config.verify, self.summary)

    def _row(self, row: int, jobs: list[PairJob], planned: list[dict[str, Any]]) -> RowWork:
        return RowWork(row, jobs, planned, stepper=self.stepper, failfast=self.failfast,
                       summary=self.summary, on_error=self.config.on_error)  # fmt: skip

    def _admit(self, record: Any) -> RowWork:
        row = self._rows_seen
        self._rows_seen += 1
        self.summary.rows_in += 1
        try:
            return self._row(row, self._plan(record, row), [])
        except UserInputError as error:
            if self.config.on_error == "raise":
                raise
            planned: list[dict[str, Any]] = []
            self._fail_row(planned, record, row, type(error).__name__, str(error))
            return self._row(row, [], planned)

    # ------------------------------------------------------------------ planning
    def _plan(self, record: Any, row: int) -> list[PairJob]:
        config = self.config
        source = read_source(
            record,
            input_format=config.input_format,
            repair=config.repair,
            source_side=config.source_side,
            max_turns=config.max_turns,
            row=row,
        )
        content = source.content_hash()
        rng = random.Random(f"{self.config.seed}|{content}")
        try:
            selections = self.selector.select(
                source.num_turns, rng, self.config.pairs_per_conversation
            )
        except UserInputError as error:
            raise type(error)(f"row {row}: {error}") from None
        record_id = record.get("id") if isinstance(record, Mapping) else None
        source_id = str(record_id) if record_id is not None else content[:16]
        return [PairJob(row, source, source_id, s, rng.getrandbits(31)) for s in selections]

    # ------------------------------------------------------------------ emitting
    def _finish(self, job: PairJob) -> list[dict[str, Any]]:
        selection = job.selection
        common: dict[str, Any] = {
            "source_id": job.source_id,
            "branch_turn": selection.branch_turn,
            "contrast_turns": list(selection.contrast_turns),
            "original_instructions": job.originals,
            "contrast_instructions": job.contrasts,
            "seed": job.seed,
            "usage": job.usage(),
        }
        failure = job.error
        if failure is None:
            chosen, rejected = job.branches
            finish = {"chosen": chosen.finish_reasons, "rejected": rejected.finish_reasons}
            try:
                row = self.builder.build(
                    chosen=chosen.messages,
                    rejected=rejected.messages,
                    answer_finish_reasons=finish,
                    **common,
                )
            except PairInvariantError as error:
                if self.config.on_error == "raise":
                    raise AugmentationError(str(error), row=job.row, reason=error.reason) from None
                failure = StepFailure(error.reason, str(error))
            else:
                self.summary.pairs_out += 1
                return [row]
        kept = job.reported_contrasts()
        common["contrast_turns"] = list(selection.contrast_turns[:kept])
        common["original_instructions"] = job.originals[:kept]
        common["contrast_instructions"] = job.contrasts[:kept]
        return self._failed(job.source.to_messages(), failure.reason, str(failure), common)

    def _salvage(self, rows: list[RowWork]) -> list[dict[str, Any]]:
        """Pairs of ``rows`` that finished before a fail-fast stop; the rest are left out
        (not marked failed: a rerun redoes them, the request cache serves what was paid)."""
        done = [job for work in rows for job in work.jobs if job.error is None and job.settled]
        return [row for job in done for row in self._finish(job)]

    def _fail_row(
        self, out: list[dict[str, Any]], record: Any, row: int, reason: str, message: str
    ) -> None:
        record_id = record.get("id") if isinstance(record, Mapping) else None
        source_id = str(record_id) if record_id is not None else f"row-{row}"
        out.extend(self._failed([], reason, message, {"source_id": source_id}))

    def _failed(
        self, source: list[dict[str, str]], reason: str, message: str, fields: dict[str, Any]
    ) -> list[dict[str, Any]]:
        self.summary.failures_by_reason[reason] = self.summary.failures_by_reason.get(reason, 0) + 1
        if self.config.on_error == "skip":
            self.summary.skipped += 1
            return []
        self.summary.failed += 1
        return [self.builder.failed(source=source, error=f"{reason}: {message}", **fields)]
