"""MUSIC on Ray Data: ``augment(dataset, config, backend)`` maps a pool of actors over rows.

Each actor builds its OWN backend from a spec (``"fake"``, ``{"kind": "openai", "model":
..., "base_url": ...}``, or a zero-argument factory) in its constructor: one vLLM engine
per GPU actor, or one ``OpenAIBackend`` per actor against a server. Nothing heavy is
pickled from the driver. ``cache=PATH`` wraps each actor's backend in ``CachedBackend``
at PATH on the actor's node: one local SQLite file per node, shared by that node's
actors, so a batch that Ray retries after an actor died replays its finished requests.

    import ray, music_aug.ray
    rows = ray.data.read_json("conversations.jsonl")
    summary = music_aug.ray.RaySummary()
    pairs = music_aug.ray.augment(
        rows, MusicConfig(), {"kind": "openai", "model": "m", "base_url": URL},
        cache="/tmp/music_aug/cache.sqlite", concurrency=4, num_cpus=0.25, summary=summary,
    )
    pairs.write_parquet("out/")
    print(summary.get().format())

Output batches are ``pyarrow`` tables with the typed output schema. Randomness comes from
the config seed and each row's content, so the pairs equal a single-process run's.

This module imports ``ray`` (the ``ray`` extra); ``import music_aug`` does not import it.
It does not start or configure a cluster: call ``ray.init`` (or let Ray Data do it).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from music_aug.augmenter import MusicAugmenter
from music_aug.backends.base import Backend
from music_aug.backends.registry import check_backend, create_backend
from music_aug.config import MusicConfig
from music_aug.errors import ConfigError, MissingDependencyError
from music_aug.summary import RunSummary

try:
    import ray
    import ray.data
except ImportError as error:  # pragma: no cover - depends on the environment
    raise MissingDependencyError("ray", "ray", "music_aug.ray (MUSIC on Ray Data)") from error

__all__ = ["AugmentActor", "BackendSpec", "RaySummary", "augment", "build_backend"]

BackendSpec = str | Mapping[str, Any] | Callable[[], Backend]
"""A backend kind, ``create_backend`` keyword arguments with ``"kind"``, or a factory."""


def _spec_kwargs(spec: str | Mapping[str, Any]) -> dict[str, Any]:
    kwargs = {"kind": spec} if isinstance(spec, str) else dict(spec)
    if "kind" not in kwargs:
        raise ConfigError(
            f"a backend spec mapping needs a 'kind' key (one of the create_backend kinds), "
            f"got keys {sorted(kwargs)}"
        )
    if "cache" in kwargs:
        raise ConfigError("pass the request cache as augment(cache=PATH), not in the spec")
    return kwargs


def _check(config: MusicConfig, backend: BackendSpec, cache: str | None) -> None:
    if not isinstance(config, MusicConfig):
        raise ConfigError(f"config must be a MusicConfig, got {type(config).__name__}")
    if isinstance(backend, Backend):
        raise ConfigError(
            f"pass a backend spec or a zero-argument factory, not a built {type(backend).__name__}"
            ": each Ray actor builds its own backend (a model or client does not travel)"
        )
    if isinstance(backend, str | Mapping):
        check_backend(**_spec_kwargs(backend))
    elif not callable(backend):
        raise ConfigError(
            f"backend must be a kind name, a create_backend mapping or a factory, got "
            f"{type(backend).__name__}"
        )
    if cache is not None and "://" in str(cache):
        raise ConfigError(
            f"cache={cache!r}: the request cache is a local SQLite file on each node; pass a "
            "local path such as /tmp/music_aug/cache.sqlite"
        )


def build_backend(backend: BackendSpec, cache: str | None = None) -> Backend:
    """Build a backend from a spec, wrapped in ``CachedBackend`` at ``cache`` if given.

    ``cache`` may start with ``~`` or hold ``$VARS``; they expand on the node that builds.
    """
    path = os.path.expandvars(os.path.expanduser(cache)) if cache else None
    if isinstance(backend, str | Mapping):
        return create_backend(**_spec_kwargs(backend), cache=path)
    built = backend()
    if path:
        from music_aug.backends.cache import CachedBackend

        return CachedBackend(built, path)
    return built


@ray.remote(num_cpus=0)
class _SummaryStore:
    def __init__(self) -> None:
        self.total = RunSummary()

    def add(self, part: dict[str, Any]) -> None:
        self.total = self.total.merge(RunSummary.from_dict(part))

    def get(self) -> dict[str, Any]:
        return self.total.to_dict()


class RaySummary:
    """The run summary of an ``augment`` run, added up from every actor's batches.

    Create it on the driver after ``ray.init`` and pass it to ``augment(summary=...)``;
    read it with ``get()`` once the dataset has been consumed. Each actor reports a batch
    after finishing it, so a batch retried after a crash counts once. (An actor killed
    between reporting and returning a batch would count that batch twice here, never in
    the output.)
    """

    def __init__(self) -> None:
        self._store = _SummaryStore.remote()  # type: ignore[attr-defined]

    def add(self, part: RunSummary) -> None:
        ray.get(self._store.add.remote(part.to_dict()))

    def get(self) -> RunSummary:
        return RunSummary.from_dict(ray.get(self._store.get.remote()))


class AugmentActor:
    """The ``map_batches`` callable class: one backend and one ``MusicAugmenter`` per actor."""

    def __init__(
        self,
        config: MusicConfig,
        backend: BackendSpec,
        cache: str | None = None,
        summary: RaySummary | None = None,
    ) -> None:
        self.backend = build_backend(backend, cache)
        self.augmenter = MusicAugmenter(config, self.backend)
        self.summary = summary

    def __call__(self, batch: Any) -> Any:
        before = self.augmenter.summary.copy()
        out = self.augmenter(batch)
        if self.summary is not None:  # this batch's counts only
            self.summary.add(self.augmenter.summary.since(before))
        return out

    def __del__(self) -> None:
        # Ray Data deletes the UDF when it shuts an actor down gracefully (not on a crash:
        # the cache has committed every finished request by then anyway).
        with contextlib.suppress(Exception):
            self.backend.close()


def _warn_if_no_cpu_left(concurrency: int | tuple[int, int], num_cpus: float | None) -> None:
    # Actors that hold every CPU starve Ray Data's read tasks: the run waits forever
    # (seen with 2 actors x 1 CPU on a 2-CPU node). A warning, not an error: an
    # autoscaling cluster may add nodes later.
    if not ray.is_initialized():
        return
    actors = concurrency if isinstance(concurrency, int) else concurrency[-1]
    wanted = actors * (1.0 if num_cpus is None else num_cpus)
    available = float(ray.cluster_resources().get("CPU", 0.0))
    if wanted >= available:
        warnings.warn(
            f"{actors} actor(s) x {1.0 if num_cpus is None else num_cpus} CPU reserve "
            f"{wanted:g} of the cluster's {available:g} CPUs, leaving none for reading the "
            "input: the run may wait forever. Actors that wait on a server need little CPU: "
            "pass num_cpus=0.25 (CLI: --cpus-per-actor 0.25) or fewer actors.",
            RuntimeWarning,
            stacklevel=3,
        )


def _pool(concurrency: int | tuple[int, int]) -> Any:
    if isinstance(concurrency, int) and concurrency >= 1:
        return ray.data.ActorPoolStrategy(size=concurrency)
    if isinstance(concurrency, tuple) and len(concurrency) == 2 and concurrency[0] >= 1:
        low, high = concurrency
        if low <= high:
            return ray.data.ActorPoolStrategy(min_size=low, max_size=high)
    raise ConfigError(f"concurrency must be an int >= 1 or (min, max), got {concurrency!r}")


def augment(
    dataset: ray.data.Dataset,
    config: MusicConfig,
    backend: BackendSpec,
    *,
    cache: str | None = None,
    concurrency: int | tuple[int, int] = 1,
    batch_size: int = 16,
    num_gpus: float | None = None,
    num_cpus: float | None = None,
    summary: RaySummary | None = None,
    **map_batches_kwargs: Any,
) -> ray.data.Dataset:
    """MUSIC output rows of ``dataset`` (lazy; nothing runs until it is consumed).

    Args:
        dataset: rows in any format ``MusicAugmenter`` reads.
        config: the ``MusicConfig``.
        backend: ``"fake"``, ``{"kind": "openai", "model": ..., "base_url": ...}`` (the
            ``create_backend`` arguments) or a picklable zero-argument factory; built once
            in each actor.
        cache: local path of a SQLite request cache on each node (``~`` expands there).
        concurrency: actors (an int, or ``(min, max)`` for an autoscaling pool).
        batch_size: rows per ``augment_records`` call in an actor.
        num_gpus, num_cpus: resources per actor (``num_gpus=1``: one engine per GPU).
            ``num_cpus`` defaults to Ray's 1; an actor that waits on a server needs far
            less (0.25), and actors holding every CPU leave none to read the input.
        summary: a ``RaySummary`` that gathers the actors' counts.
        **map_batches_kwargs: passed on to ``Dataset.map_batches`` (e.g. ``max_restarts``).

    Raises:
        ConfigError: a bad config, backend spec or cache path (checked on the driver).
    """
    _check(config, backend, cache)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    _warn_if_no_cpu_left(concurrency, num_cpus)
    return dataset.map_batches(
        AugmentActor,
        fn_constructor_kwargs={
            "config": config,
            "backend": backend,
            "cache": cache,
            "summary": summary,
        },
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=_pool(concurrency),
        num_gpus=num_gpus,
        num_cpus=num_cpus,
        **map_batches_kwargs,
    )
