"""Stage 2 (train): RM_base, RM_music and RM_last from the same SmolLM2-135M base.

Builds the three training sets with :func:`music_aug.pairs.mix` (all in the same TRL
conversational format, shuffled with one seed):

* ``base``  = D                (HH train pairs)
* ``music`` = D ∪ D_MUSIC      (``work/music/shard_*.jsonl``)
* ``last``  = D ∪ D_last       (``work/last/shard_*.jsonl``)

D_MUSIC and D_last are restricted to the source rows that produced a pair in BOTH runs (same
shards, same row ids), so the two augmented sets have exactly the same size and sources.
Then runs ``music-aug train --preset smollm2-135m-cpu`` once per (model, seed) with identical
settings, skipping runs whose ``work/models/<name>_s<seed>/`` already holds a finished model.

Does NOT evaluate (see ``evaluate.py``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from prepare_data import write_jsonl  # same folder (on sys.path when run as a script)

from music_aug.pairs import mix

HERE = Path(__file__).resolve().parent
MODELS = ("base", "music", "last")


def _read(paths: list[Path]) -> list[dict]:
    rows: list[dict] = []
    for path in paths:
        with path.open(encoding="utf-8") as f:
            rows.extend(json.loads(line) for line in f if line.strip())
    return rows


def _key(row: dict) -> tuple:
    meta = row.get("music_metadata") or {}
    return (meta.get("source_id"), meta.get("source_row"), meta.get("pair_index", 0))


def build_sets(work: Path, shards: int | None, train_rows: int) -> dict[str, Path]:
    """Write ``work/train_sets/{base,music,last}.jsonl`` and a ``sizes.json``; return paths."""
    out = work / "train_sets"
    out.mkdir(parents=True, exist_ok=True)
    original = _read([work / "data" / "hh_train.jsonl"])[:train_rows]
    music_files = sorted((work / "music").glob("shard_[0-9][0-9][0-9].jsonl"))
    last_names = {p.name for p in (work / "last").glob("shard_[0-9][0-9][0-9].jsonl")}
    common = [p.name for p in music_files if p.name in last_names]
    if shards is not None:
        common = common[:shards]
    music = [r for r in _read([work / "music" / n for n in common]) if _ok(r)]
    last = [r for r in _read([work / "last" / n for n in common]) if _ok(r)]
    both = {_key(r) for r in music} & {_key(r) for r in last}
    music = [r for r in music if _key(r) in both]
    last = [r for r in last if _key(r) in both]
    sets = {
        "base": mix(original, [], repair=True, seed=0),
        "music": mix(original, music, repair=True, seed=0),
        "last": mix(original, last, repair=True, seed=0),
    }
    paths = {}
    for name, rows in sets.items():
        paths[name] = out / f"{name}.jsonl"
        write_jsonl(paths[name], rows)
    sizes = {
        "shards": common,
        "original": len(original),
        "music_pairs": len(music),
        "last_pairs": len(last),
        **{f"{k}_total": len(v) for k, v in sets.items()},
    }
    (out / "sizes.json").write_text(json.dumps(sizes, indent=2) + "\n")
    print(f"[train] sets: {json.dumps({k: v for k, v in sizes.items() if k != 'shards'})}")
    return paths


def make_base(work: Path, layers: int) -> str:
    """The preset's SmolLM2-135M checkpoint cut to its first ``layers`` decoder layers.

    Full fine-tuning of all 30 layers does not fit this study's CPU budget; keeping the
    lower ``layers`` layers (embeddings, those layers, final norm, the preset's score head)
    is the compute knob. ``layers=0`` keeps the full model (returns the preset's name).
    """
    from music_aug.reward.loading import SMOLLM2_MODEL, load_model_and_tokenizer

    if layers <= 0:
        return SMOLLM2_MODEL
    out = work / f"base_model_L{layers}"
    if (out / "config.json").exists():
        return str(out)
    model, tokenizer = load_model_and_tokenizer(SMOLLM2_MODEL)
    model.model.layers = model.model.layers[:layers]
    model.config.num_hidden_layers = layers
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = model.config.layer_types[:layers]
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    print(f"[train] wrote {out} ({layers} of the base model's decoder layers)")
    return str(out)


def _ok(row: dict) -> bool:
    meta = row.get("music_metadata") or {}
    return meta.get("status", "ok") == "ok" and bool(row.get("rejected"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(HERE / "work"))
    parser.add_argument("--models", default=",".join(MODELS), help="comma list of base,music,last")
    parser.add_argument("--seeds", default="0,1,2", help="comma list of training seeds")
    parser.add_argument("--shards", type=int, default=None, help="use only the first N shards")
    parser.add_argument("--no-rebuild", action="store_true", help="reuse existing train_sets/")
    parser.add_argument(
        "--train-rows", type=int, default=160, help="D = the first N rows of hh_train.jsonl"
    )
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument(
        "--layers", type=int, default=8, help="keep the first N decoder layers (0: all 30)"
    )
    parser.add_argument("--max-steps", type=int, default=None, help="overrides --epochs")
    parser.add_argument("--music-aug", default="music-aug")
    args = parser.parse_args()

    work = Path(args.work)
    if args.no_rebuild:
        paths = {m: work / "train_sets" / f"{m}.jsonl" for m in MODELS}
    else:
        paths = build_sets(work, args.shards, args.train_rows)
    base_model = make_base(work, args.layers)
    for seed in [int(s) for s in args.seeds.split(",")]:
        for name in args.models.split(","):
            out = work / "models" / f"{name}_s{seed}"
            if (out / "DONE").exists():
                print(f"[train] {out.name} done, skipping")
                continue
            cmd = [
                args.music_aug, "train", "--preset", "smollm2-135m-cpu", "--model", base_model,
                "--data", str(paths[name]), "--output", str(out),
                "--max-length", str(args.max_length), "--truncation", "drop_oldest_turns",
                "--batch-size", str(args.batch_size), "--grad-accum", "1",
                "--learning-rate", str(args.learning_rate), "--epochs", str(args.epochs),
                "--seed", str(seed), "--logging-steps", "5",
            ]  # fmt: skip
            if args.max_steps:
                cmd += ["--max-steps", str(args.max_steps)]
            print(f"[train] {time.strftime('%H:%M:%S')} {out.name}: {' '.join(cmd)}", flush=True)
            t0 = time.time()
            code = subprocess.call(cmd)
            if code != 0:
                print(f"[train] {out.name} failed with exit code {code}", file=sys.stderr)
                return code
            (out / "DONE").write_text(f"{time.time() - t0:.0f} s\n")
            print(f"[train] {out.name} finished in {time.time() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
