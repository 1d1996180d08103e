"""``music-aug augment IN -o OUT_DIR --ray [ADDRESS]``: the same run on Ray Data.

Reads jsonl or parquet with Ray Data's readers (a file, a folder of shards, local or any
URI pyarrow's file systems read: ``s3://``, ``gs://``, ``hdfs://``...), maps
``music_aug.ray.augment`` over it with ``--actors`` actors, writes one parquet or jsonl
file per output block into OUT_DIR, and prints the run summary gathered from the actors.
``--cache PATH`` is a local SQLite file on every node (see ``docs/scaling.md``).

Thin like the rest of the CLI: flags in, library calls out. Hub dataset names are not read
here (download them to parquet first).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from music_aug.config import MusicConfig
from music_aug.errors import ConfigError, UserInputError

__all__ = ["add_ray_arguments", "input_kind", "run_ray"]

_JSON_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--ray`` flags of ``music-aug augment``."""
    group = parser.add_argument_group("Ray Data (docs/scaling.md)")
    group.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run on Ray Data: no value starts a local Ray, 'auto' joins the cluster of "
        "`ray start`, or ray://HOST:PORT; -o is then an output folder",
    )
    group.add_argument("--actors", type=int, default=1, help="Ray actors, one backend each (1)")
    group.add_argument("--gpus-per-actor", type=float, help="GPUs each Ray actor reserves")
    group.add_argument(
        "--cpus-per-actor",
        type=float,
        help="CPUs each Ray actor reserves (default: 0.25 for the openai backend, which "
        "waits on a server, and the fake one; 1 for llamacpp and vllm)",
    )
    group.add_argument(
        "--output-format",
        choices=["parquet", "jsonl"],
        default="parquet",
        help="file type of the shards written with --ray (parquet)",
    )


def _file_kind(name: str) -> str | None:
    name = name.lower()
    if name.endswith(".parquet"):
        return "parquet"
    return "json" if name.endswith(_JSON_SUFFIXES) else None


def input_kind(source: str) -> tuple[str, int]:
    """``("parquet" | "json", number of files)`` of a file or folder, local or remote.

    Raises:
        UserInputError: the path does not exist or holds neither parquet nor jsonl files.
    """
    kind = _file_kind(source.rstrip("/"))
    if kind is not None:
        return kind, 1
    import pyarrow.fs

    uri = source if "://" in source else str(Path(source).expanduser().resolve())
    filesystem, path = pyarrow.fs.FileSystem.from_uri(uri)
    info = filesystem.get_file_info(path)
    if info.type == pyarrow.fs.FileType.NotFound:
        raise UserInputError(
            f"input {source!r} does not exist; --ray reads a jsonl/parquet file or a folder "
            "of them (hub datasets: save them as parquet first)"
        )
    if info.type == pyarrow.fs.FileType.Directory:
        found = filesystem.get_file_info(pyarrow.fs.FileSelector(path, recursive=True))
        files = [_file_kind(f.path) for f in found if f.type == pyarrow.fs.FileType.File]
        kinds = {k for k in files if k is not None}
        if len(kinds) == 1:
            kind = kinds.pop()
            return kind, files.count(kind)
        detail = "both parquet and jsonl files" if kinds else "no .parquet or .jsonl files"
        raise UserInputError(f"input folder {source!r} holds {detail}; give one kind")
    raise UserInputError(
        f"cannot tell the file type of {source!r}; name it *.jsonl(.gz) or *.parquet"
    )


def _backend_spec(args: argparse.Namespace) -> dict[str, Any]:
    from music_aug.cli.augment import _backend_options

    spec: dict[str, Any] = {"kind": args.backend}
    for name in ("model", "base_url", "concurrency"):
        if getattr(args, name) is not None:
            spec[name] = getattr(args, name)
    spec.update(_backend_options(args))
    return spec


def _cpus_per_actor(args: argparse.Namespace) -> float:
    if args.cpus_per_actor is not None:
        if args.cpus_per_actor <= 0:
            raise ConfigError("--cpus-per-actor must be > 0")
        return float(args.cpus_per_actor)
    return 0.25 if args.backend in ("openai", "fake") else 1.0


def run_ray(args: argparse.Namespace, config: MusicConfig) -> int:
    """``music-aug augment ... --ray``; called by ``run_augment`` once the config is built."""
    import ray
    import ray.data

    from music_aug.ray import RaySummary, augment
    from music_aug.summary import Prices

    if args.shard:
        raise ConfigError("--shard splits a run by hand; --ray spreads rows over actors itself")
    unsupported = {"--dry-run": args.dry_run, "--judge-model": args.judge_model,
                   "--judge-base-url": args.judge_base_url}  # fmt: skip
    given = [flag for flag, value in unsupported.items() if value]
    if given:
        raise ConfigError(
            f"{', '.join(given)} not supported with --ray yet; run without --ray (a separate "
            "judge, the dry-run estimate) or use the simulator as judge"
        )
    if args.actors < 1:
        raise ConfigError("--actors must be >= 1")
    output = args.output
    if _file_kind(output) is not None:
        raise ConfigError(f"with --ray, -o is an output folder, got the file name {output!r}")
    kind, files = input_kind(args.input)
    started = time.perf_counter()
    joined = not ray.is_initialized()
    if joined:
        ray.init(address=None if args.ray == "local" else args.ray)
    try:
        reader = ray.data.read_parquet if kind == "parquet" else ray.data.read_json
        # Ray makes about one block per small file, and a block goes to one actor: split
        # a few files into enough blocks to keep every actor busy.
        blocks = 4 * args.actors if files < 4 * args.actors else None
        dataset = reader(args.input, override_num_blocks=blocks)
        if args.limit is not None:
            dataset = dataset.limit(args.limit)
        summary = RaySummary()
        pairs = augment(
            dataset,
            config,
            _backend_spec(args),
            cache=args.cache,
            concurrency=args.actors,
            batch_size=args.batch_size,
            num_gpus=args.gpus_per_actor,
            num_cpus=_cpus_per_actor(args),
            summary=summary,
        )
        if args.output_format == "parquet":
            pairs.write_parquet(output)
        else:
            from ray.data.datasource import FilenameProvider

            pairs.write_json(
                output, filename_provider=FilenameProvider(file_format="jsonl"), force_ascii=False
            )
        total = summary.get()
    finally:
        if joined:
            ray.shutdown()
    total.wall_time_s = time.perf_counter() - started
    print(f"wrote {total.pairs_out + total.failed} rows to {output}/ ({args.output_format})")
    print(total.format(Prices(args.price_in, args.price_out)))
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(total.to_dict(), indent=2))
    sys.stdout.flush()
    return 0
