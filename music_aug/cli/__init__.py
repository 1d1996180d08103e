"""The ``music-aug`` command line. Thin: each subcommand parses arguments and calls the library.

Each subcommand lives in its own module exposing ``register(subparsers)``; heavy libraries
are imported inside the handlers, so ``music-aug --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from music_aug.errors import MusicAugError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from music_aug import __version__
    from music_aug.cli import augment, cache, evaluate, inspect, show, train

    parser = argparse.ArgumentParser(
        prog="music-aug",
        description="MUSIC multi-turn preference augmentation, reward models and evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"music-aug {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (augment, show, cache, train, evaluate, inspect):
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``music-aug`` console script. Returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.handler(args)
    except MusicAugError as error:
        print(f"music-aug: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("music-aug: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)
