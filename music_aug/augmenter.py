"""``MusicAugmenter``: the ``datasets.map`` callable that runs MUSIC with a wave scheduler.

For each source row the augmenter plans pairs (``TurnSelector``), then grows two branches
per pair. Chosen: the assistant simulator answers the conversation as it stands. Rejected:
at each contrast turn t the perturber rewrites u_t into u'_t, the assistant answers the
history followed by u'_t, and the branch RECORDS u_t with that answer. After each answer,
a branch gets its next user turn (simulated, or replayed from the source). ``PairBuilder``
checks and emits the pair.

Wave scheduling: all branches of all rows in a batch advance together; every wave is ONE
``backend.generate`` call holding each branch's next request, so calls per batch are
bounded by the number of steps (times ``max_attempts`` for retries), not the batch size.

Randomness: each row gets ``random.Random`` seeded by the config seed and the row's content
hash; every request carries a sampling seed derived from it, so a row gives the same pair
under shuffling, sharding and ``num_proc > 1``.

This module does not read or write files (see ``music_aug.cli.augment``).
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Mapping
from typing import Any

from music_aug.backends.base import Backend, ChatRequest, ChatResult
from music_aug.backends.info import backend_info
from music_aug.branches import Branch, PairJob, StepFailure, derive_seed
from music_aug.config import MusicConfig
from music_aug.errors import (
    AugmentationError,
    BackendUnusableError,
    ConfigError,
    MusicAugError,
    UserInputError,
)
from music_aug.failfast import FailFast
from music_aug.pairs import PairBuilder, PairInvariantError, output_table
from music_aug.perturb import InstructionPerturber
from music_aug.prompt_style import resolve_prompt_style, role_templates
from music_aug.selection import TurnSelector, read_source
from music_aug.simulate import AssistantSimulator, UserSimulator
from music_aug.summary import RunSummary

__all__ = ["OUTPUT_COLUMNS", "MusicAugmenter", "RunSummary"]

OUTPUT_COLUMNS = ("chosen", "rejected", "music_metadata")


class MusicAugmenter:
    """Run MUSIC over dataset rows through a backend.

    Args:
        config: the ``MusicConfig``.
        backend: any object following the ``Backend`` Protocol.

    Example:
        >>> from music_aug.backends.fake import EchoBackend
        >>> augmenter = MusicAugmenter(MusicConfig(max_turns=2), EchoBackend())
        >>> rows = augmenter.augment_records([{"messages": [{"role": "user", "content": "Hi"}]}])
        >>> rows[0]["music_metadata"]["status"]
        'ok'
    """

    def __init__(self, config: MusicConfig, backend: Backend) -> None:
        if not isinstance(config, MusicConfig):
            raise ConfigError(f"config must be a MusicConfig, got {type(config).__name__}")
        self.config = config
        self.backend = backend
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
        self._rows_seen = 0

    # ------------------------------------------------------------------ pickling / caching
    def __getstate__(self) -> dict[str, Any]:
        # Only what defines the output: datasets hashes this state for its cache
        # fingerprint, and num_proc workers rebuild the rest (templates, summary) from it.
        return {
            "config": self.config,
            "backend": self.backend,
            "template_hashes": self.template_hashes,
            "version": self.version,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"], state["backend"])  # type: ignore[misc]

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
    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """``dataset.map(augmenter, batched=True, remove_columns=...)``; one example works too."""
        if _is_batch(batch):
            names = list(batch)
            size = len(batch[names[0]]) if names else 0
            records = [{name: batch[name][k] for name in names} for k in range(size)]
            rows = self.augment_records(records)
            columns = {name: [r[name] for r in rows] for name in OUTPUT_COLUMNS}
            if type(batch).__module__.startswith("datasets."):
                return output_table(columns)
            return columns
        rows = self.augment_records([dict(batch)])
        if len(rows) != 1:
            raise ConfigError(
                f"a per-example call produced {len(rows)} rows; with pairs_per_conversation > 1 "
                "or on_error='skip' use dataset.map(augmenter, batched=True, remove_columns=...)"
            )
        return rows[0]

    def augment_records(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Augment a list of rows (any format the adapters read); returns output rows."""
        started = time.perf_counter()
        outputs: list[list[dict[str, Any]]] = [[] for _ in records]
        jobs: list[PairJob] = []
        for k, record in enumerate(records):
            row = self._rows_seen + k
            try:
                jobs.extend(self._plan(record, row))
            except UserInputError as error:
                if self.config.on_error == "raise":
                    raise
                self._fail_row(outputs[k], record, row, type(error).__name__, str(error))
        self.summary.rows_in += len(records)
        first_row = self._rows_seen
        self._rows_seen += len(records)
        try:
            self._run_waves(jobs)
        except BackendUnusableError as error:
            error.rows = self._salvage(jobs)
            raise
        for job in jobs:
            outputs[job.row - first_row].extend(self._finish(job))
        self.summary.wall_time_s += time.perf_counter() - started
        return [row for group in outputs for row in group]

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

    # ------------------------------------------------------------------ the wave loop
    def _run_waves(self, jobs: list[PairJob]) -> None:
        active = [job for job in jobs]
        while active:
            wave: list[tuple[PairJob, Branch, ChatRequest]] = []
            for job in active:
                for branch in job.branches:
                    request = self._next_request(job, branch) if job.error is None else None
                    if request is not None:
                        wave.append((job, branch, request))
            if not wave:
                break
            results = self.backend.generate([request for _, _, request in wave])
            self.summary.backend_calls += 1
            if len(results) != len(wave):
                raise MusicAugError(
                    f"backend {self.builder.backend!r} returned {len(results)} results for "
                    f"{len(wave)} requests; a Backend must return one result per request"
                )
            for (job, branch, request), result in zip(wave, results, strict=True):
                self.failfast.observe(request, result)
                job.usage["prompt_tokens"] += result.usage.prompt_tokens
                job.usage["completion_tokens"] += result.usage.completion_tokens
                job.usage["requests"] += 1
                try:
                    self._receive(job, branch, result)
                except StepFailure as failure:
                    job.error = failure
                    if self.config.on_error == "raise":
                        raise AugmentationError(
                            str(failure), row=job.row, reason=failure.reason
                        ) from None
            active = [job for job in active if job.error is None and any(
                branch.phase != "done" for branch in job.branches
            )]  # fmt: skip

    def _next_request(self, job: PairJob, branch: Branch) -> ChatRequest | None:
        selection = job.selection
        while True:
            phase = branch.phase
            if phase == "done":
                return None
            turn = branch.turn
            seed = derive_seed(job.seed, branch.side, turn, phase, branch.attempts)
            if phase == "user":
                turn += 1
                if turn >= selection.num_turns:
                    branch.phase = "done"
                    return None
                if self.config.user_turns == "replay" and turn < job.source.num_turns:
                    self._add_user(job, branch, job.source.turns[turn].user)
                    continue
                return self.user.request(branch.messages, seed=seed)
            if phase == "perturb":
                history = branch.messages[:-1]
                instruction = branch.messages[-1]["content"]
                return self.perturber.request(
                    history, instruction, seed=seed, attempt=branch.attempts
                )
            messages = branch.messages
            if branch.contrast is not None:
                messages = [*messages[:-1], {"role": "user", "content": branch.contrast}]
            return self.assistant.request(messages, seed=seed)

    def _add_user(self, job: PairJob, branch: Branch, text: str) -> None:
        branch.messages.append({"role": "user", "content": text})
        branch.turn += 1
        contrast = branch.side == "rejected" and branch.turn in job.selection.contrast_turns
        branch.phase = "perturb" if contrast else "answer"
        branch.attempts = 0
        branch.contrast = None

    def _retry(self, branch: Branch, reason: str, message: str) -> None:
        branch.attempts += 1
        if branch.attempts >= self.config.max_attempts:
            raise StepFailure(reason, f"turn {branch.turn} ({branch.side}): {message} after "
                           f"{branch.attempts} attempt(s)")  # fmt: skip

    def _receive(self, job: PairJob, branch: Branch, result: ChatResult) -> None:
        if not result.ok:
            raise StepFailure(
                "backend_error", f"turn {branch.turn} ({branch.side}): {result.error}"
            )
        if branch.phase == "user":
            text = self.user.parse(result)
            if text is None:
                self._retry(branch, "user_simulation_invalid", "no usable next user turn")
            else:
                self._add_user(job, branch, text)
        elif branch.phase == "perturb":
            self.summary.perturbation_attempts += 1
            instruction = branch.messages[-1]["content"]
            history = branch.messages[:-1]
            text = self.perturber.parse(result)
            why = self.perturber.validate(text, instruction, history)
            if why is not None:
                self.summary.invalid_perturbations[why] = (
                    self.summary.invalid_perturbations.get(why, 0) + 1
                )
                self._retry(branch, "perturbation_invalid", f"no valid contrast instruction "
                            f"(last output rejected as {why!r})")  # fmt: skip
                return
            self.summary.perturbation_valid += 1
            job.originals.append(instruction)
            job.contrasts.append(text)
            branch.contrast = text
            branch.phase = "answer"
            branch.attempts = 0
        else:
            answer = self.assistant.parse(result)
            if answer is None:
                self._retry(branch, "empty_answer", "the assistant returned no text")
                return
            branch.messages.append({"role": "assistant", "content": answer})
            branch.phase = "user"
            branch.attempts = 0
            branch.contrast = None

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
            "usage": job.usage,
        }
        self._add_usage(job.usage)
        failure = job.error
        if failure is None:
            chosen, rejected = job.branches
            try:
                row = self.builder.build(
                    chosen=chosen.messages,
                    rejected=rejected.messages,
                    **common,
                )
            except PairInvariantError as error:
                if self.config.on_error == "raise":
                    raise AugmentationError(str(error), row=job.row, reason=error.reason) from None
                failure = StepFailure(error.reason, str(error))
            else:
                self.summary.pairs_out += 1
                return [row]
        common["contrast_turns"] = list(selection.contrast_turns[: len(job.contrasts)])
        common["original_instructions"] = job.originals[: len(job.contrasts)]
        return self._failed(job.source.to_messages(), failure.reason, str(failure), common)

    def _salvage(self, jobs: list[PairJob]) -> list[dict[str, Any]]:
        """Rows of the pairs that finished before a fail-fast stop; the rest are left out
        (not marked failed: a rerun redoes them, the request cache serves what was paid)."""
        done = [job for job in jobs if job.error is None and all(
            branch.phase == "done" for branch in job.branches
        )]  # fmt: skip
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

    def _add_usage(self, usage: Mapping[str, int]) -> None:
        for key, value in usage.items():
            self.summary.usage[key] = self.summary.usage.get(key, 0) + value


def _is_batch(batch: Mapping[str, Any]) -> bool:
    """A batched ``map`` call has a list per column, and message lists nest one level deeper."""
    if not batch:
        return False
    values = list(batch.values())
    if not all(isinstance(v, list) for v in values):
        return False
    return not any(v and isinstance(v[0], Mapping) for v in values)
