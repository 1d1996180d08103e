"""Stage 3 (evaluate): pairwise accuracy of every trained reward model, with intervals.

For each finished model in ``work/models/<name>_s<seed>/`` (a ``DONE`` marker written by
``train.py``) it runs

* ``music-aug eval pairs`` on the HH dev split and on the held-out MT-Bench-extended MUSIC
  pairs (``work/eval/<model>_<set>_n<pairs>.json``: accuracy, 95% bootstrap interval,
  buckets), and
* ``music-aug score`` on the same files (``work/scores/<model>_<set>_n<pairs>.jsonl``:
  per-pair rewards),

skipping outputs that already exist. From the per-pair rewards it adds what the CLI report
does not have: 95% bootstrap intervals inside each bucket and PAIRED bootstrap intervals of
the accuracy difference between models of the same seed (music - base, last - base,
music - last) on the same pairs. With several training seeds it also pools them: each
pair's outcome averaged over the seeds of a model, accuracy and paired differences of
those averages with pair-bootstrap intervals, and the per-seed range. Everything lands in
``results/pairs_accuracy.json`` and a Markdown table ``results/pairs_accuracy.md``;
``--plot`` also draws ``docs/images/reproduction_accuracy.png``.

Does NOT run Best-of-N (see ``bon.sh``).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import time
from pathlib import Path
from typing import Any

from music_aug.conversation import PreferencePair
from music_aug.evaluation.pairwise import (
    differing_turns_bucket,
    pair_outcome,
    user_turns_bucket,
)
from music_aug.evaluation.stats import bootstrap_ci

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SETS = ("hh_dev", "mtb_eval")
UNTRAINED = "untrained"  # the starting checkpoint, scored as it is (--untrained PATH)
COMPARISONS = (("music", "base"), ("last", "base"), ("music", "last"), ("base", UNTRAINED))
N_RESAMPLES = 2000


def _read(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def eval_sets(work: Path) -> dict[str, Path]:
    """Paths of the two evaluation files; the MT-Bench file is assembled from its shards."""
    out = work / "eval_sets"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for shard in sorted((work / "mtb_eval").glob("shard_[0-9][0-9][0-9].jsonl")):
        rows.extend(_read(shard))
    rows = [
        r
        for r in rows
        if (r.get("music_metadata") or {}).get("status", "ok") == "ok" and r.get("rejected")
    ]
    mtb = out / "mtb_eval.jsonl"
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if not mtb.exists() or mtb.read_text(encoding="utf-8") != text:
        mtb.write_text(text, encoding="utf-8")
    hh = out / "hh_dev.jsonl"
    if not hh.exists():
        hh.write_text((work / "data" / "hh_dev.trl.jsonl").read_text(encoding="utf-8"))
    print(f"[evaluate] eval sets: hh_dev {len(_read(hh))} pairs, mtb_eval {len(rows)} pairs")
    sets = {"hh_dev": hh, "mtb_eval": mtb}
    return {name: path for name, path in sets.items() if _read(path)}


def _run(cmd: list[str], out: Path) -> None:
    if out.exists():
        print(f"[evaluate] {out.name} exists, skipping")
        return
    print(f"[evaluate] {time.strftime('%H:%M:%S')} {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, check=True)


def _tag(model: str, set_name: str, path: Path) -> str:
    """Output name of one (model, eval set); includes the set's size, as the set can grow."""
    return f"{model}_{set_name}_n{len(_read(path))}"


def _outcomes(scored: list[dict]) -> list[float]:
    return [pair_outcome(r["reward_chosen"], r["reward_rejected"]) for r in scored]


def _ci(values: list[float]) -> list[float]:
    return [round(v, 4) for v in bootstrap_ci(values, n_resamples=N_RESAMPLES, seed=0)]


def _accuracy(outcomes: list[float]) -> dict[str, Any]:
    """Size, mean outcome (accuracy, ties count half) and its bootstrap 95% interval."""
    return {
        "n": len(outcomes),
        "accuracy": round(sum(outcomes) / len(outcomes), 4),
        "ci95": _ci(outcomes),
    }


def _paired_diff(a: list[float], b: list[float], seed: int = 0) -> dict[str, Any]:
    """Mean of a - b with a paired percentile-bootstrap 95% interval (same pairs)."""
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    rng = random.Random(seed)
    n = len(diffs)
    stats = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(N_RESAMPLES))
    lo, hi = stats[int(0.025 * N_RESAMPLES)], stats[int(0.975 * N_RESAMPLES) - 1]
    return {"n": n, "diff": round(sum(diffs) / n, 4), "ci95": [round(lo, 4), round(hi, 4)]}


def _bucketed(records: list[dict], outcomes: list[float]) -> dict[str, Any]:
    pairs = [PreferencePair.from_record(r, repair=True, row=i) for i, r in enumerate(records)]
    result: dict[str, Any] = {}
    for name, key in (
        ("by_user_turns", user_turns_bucket),
        ("by_differing_turns", differing_turns_bucket),
    ):
        groups: dict[str, list[float]] = {}
        for pair, outcome in zip(pairs, outcomes, strict=True):
            groups.setdefault(key(pair), []).append(outcome)
        result[name] = {k: _accuracy(v) for k, v in sorted(groups.items())}
    return result


def summarise(work: Path, models: list[str], sets: dict[str, Path]) -> dict[str, Any]:
    """Collect CLI reports and per-pair scores into one results document."""
    summary: dict[str, Any] = {"models": {}, "paired_differences": {}}
    outcomes: dict[tuple[str, str], list[float]] = {}
    for model in models:
        entry: dict[str, Any] = {}
        for set_name, path in sets.items():
            tag = _tag(model, set_name, path)
            cli_path = work / "eval" / f"{tag}.json"
            scored_path = work / "scores" / f"{tag}.jsonl"
            item: dict[str, Any] = {}
            if cli_path.exists():
                report = json.loads(cli_path.read_text())["datasets"][path.stem]
                item = {
                    "n": report["n"],
                    "accuracy": report["accuracy"],
                    "ci95": report["ci95"],
                    "source": "music-aug eval pairs",
                    "cli_report": report,
                }
            if scored_path.exists():
                outs = _outcomes(_read(scored_path))
                outcomes[(model, set_name)] = outs
                from_scores = _accuracy(outs)
                if item:
                    item["score_accuracy_matches"] = (
                        abs(from_scores["accuracy"] - item["accuracy"]) < 1e-3
                    )
                else:  # --score-only: same outcome rule (ties 0.5), same bootstrap and seed
                    item = {**from_scores, "source": "music-aug score"}
                item.update(_bucketed(_read(path), outs))
            if item:
                entry[set_name] = item
        summary["models"][model] = entry
    seeds = sorted({m.rsplit("_s", 1)[1] for m in models if m != UNTRAINED})
    for seed in seeds:
        for a, b in COMPARISONS:
            for set_name in sets:
                ka, kb = (f"{a}_s{seed}", set_name), (f"{b}_s{seed}", set_name)
                if b == UNTRAINED:  # the starting checkpoint has no seed
                    kb = (UNTRAINED, set_name)
                if ka in outcomes and kb in outcomes:
                    summary["paired_differences"][f"{a}-{b} s{seed} {set_name}"] = _paired_diff(
                        outcomes[ka], outcomes[kb]
                    )
    summary["seed_pooled"] = _pooled(outcomes, sets)
    return summary


def _pooled(outcomes: dict[tuple[str, str], list[float]], sets: dict[str, Path]) -> dict[str, Any]:
    """Per model kind: outcomes averaged over its seeds; accuracy and paired differences.

    Only seeds finished for every kind are pooled, so all kinds average the same seeds.
    """
    kinds = ("base", "music", "last")
    pooled: dict[str, Any] = {"seeds": [], "accuracy": {}, "paired_differences": {}}
    for set_name in sets:
        seeds = sorted(
            {m.rsplit("_s", 1)[1] for m, s in outcomes if s == set_name and m != UNTRAINED},
            key=int,
        )
        seeds = [x for x in seeds if all((f"{k}_s{x}", set_name) in outcomes for k in kinds)]
        if len(seeds) < 2:
            continue
        pooled["seeds"] = seeds
        means: dict[str, list[float]] = {}
        for kind in kinds:
            runs = [outcomes[(f"{kind}_s{x}", set_name)] for x in seeds]
            means[kind] = [sum(col) / len(col) for col in zip(*runs, strict=True)]
            per_seed = [round(sum(r) / len(r), 4) for r in runs]
            pooled["accuracy"][f"{kind} {set_name}"] = {
                **_accuracy(means[kind]),
                "per_seed": per_seed,
            }
        start = outcomes.get((UNTRAINED, set_name))
        if start is not None:
            means[UNTRAINED] = start
            pooled["accuracy"][f"{UNTRAINED} {set_name}"] = {**_accuracy(start), "per_seed": []}
        for a, b in COMPARISONS:
            if b not in means:
                continue
            diff = _paired_diff(means[a], means[b])
            runs_a = [outcomes[(f"{a}_s{x}", set_name)] for x in seeds]
            runs_b = (
                [means[b]] * len(seeds)
                if b == UNTRAINED
                else [outcomes[(f"{b}_s{x}", set_name)] for x in seeds]
            )
            diff["per_seed"] = [
                round((sum(ra) - sum(rb)) / len(ra), 4)
                for ra, rb in zip(runs_a, runs_b, strict=True)
            ]
            pooled["paired_differences"][f"{a}-{b} {set_name}"] = diff
    return pooled


def run_record(work: Path, models: list[str]) -> dict[str, Any]:
    """What was generated and trained: shard summaries, set sizes, training metrics."""
    record: dict[str, Any] = {"generation": {}, "training": {}}
    for stream in ("music", "last", "mtb_eval"):
        done = sorted((work / stream).glob("shard_[0-9][0-9][0-9].jsonl"))
        totals: dict[str, Any] = {"shards": [p.stem for p in done]}
        for shard in done:
            summary_path = shard.with_name(shard.stem + ".summary.json")
            if not summary_path.exists():
                continue
            summary = json.loads(summary_path.read_text())
            for key in ("rows_in", "pairs_out", "failed", "skipped", "wall_time_s"):
                totals[key] = round(totals.get(key, 0) + summary.get(key, 0), 1)
            for key in ("perturbation_valid", "perturbation_attempts"):
                totals[key] = totals.get(key, 0) + summary.get(key, 0)
            totals["requests"] = totals.get("requests", 0) + summary["usage"]["requests"]
            for reason, count in summary.get("invalid_perturbations", {}).items():
                bucket = totals.setdefault("invalid_perturbations", {})
                bucket[reason] = bucket.get(reason, 0) + count
        record["generation"][stream] = totals
    sizes = work / "train_sets" / "sizes.json"
    if sizes.exists():
        record["train_sets"] = json.loads(sizes.read_text())
    for model in (m for m in models if m != UNTRAINED):
        metrics = json.loads((work / "models" / model / "metrics.json").read_text())
        keep = ("train_runtime", "train_loss", "train_real_tokens", "epoch")
        record["training"][model] = {
            **{k: metrics["metrics"].get(k) for k in keep},
            "truncation": metrics.get("truncation"),
        }
    return record


def markdown(summary: dict[str, Any]) -> str:
    """Tables of accuracy (95% CI) per model and set, and of paired differences."""
    lines = [
        "| model | set | n | accuracy | 95% CI | by user turns | by differing turns |",
        "|---|---|---|---|---|---|---|",
    ]
    for model, entry in summary["models"].items():
        for set_name, item in entry.items():
            buckets = []
            for key in ("by_user_turns", "by_differing_turns"):
                cells = item.get(key, {})
                buckets.append(
                    "; ".join(
                        f"{k}: {v['accuracy']:.3f} "
                        f"[{v['ci95'][0]:.2f}, {v['ci95'][1]:.2f}] (n={v['n']})"
                        for k, v in cells.items()
                    )
                )
            lo, hi = item["ci95"]
            lines.append(
                f"| {model} | {set_name} | {item['n']} | {item['accuracy']:.3f} | "
                f"[{lo:.3f}, {hi:.3f}] | {buckets[0]} | {buckets[1]} |"
            )
    lines += ["", "| paired difference | n | accuracy diff | 95% paired CI |", "|---|---|---|---|"]
    for name, d in summary["paired_differences"].items():
        lines.append(
            f"| {name} | {d['n']} | {d['diff']:+.3f} | [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] |"
        )
    pooled = summary.get("seed_pooled") or {}
    if pooled.get("accuracy"):
        seeds = ", ".join(pooled["seeds"])
        lines += [
            "",
            f"Pooled over seeds {seeds} (each pair's outcome averaged over the seeds):",
            "",
            "| model, set | n | accuracy | 95% CI | per seed |",
            "|---|---|---|---|---|",
        ]
        for name, item in pooled["accuracy"].items():
            lo, hi = item["ci95"]
            per_seed = ", ".join(f"{v:.3f}" for v in item["per_seed"])
            lines.append(
                f"| {name} | {item['n']} | {item['accuracy']:.3f} | [{lo:.3f}, {hi:.3f}] | "
                f"{per_seed} |"
            )
        lines += ["", "| paired difference | n | diff | 95% paired CI | per seed |"]
        lines.append("|---|---|---|---|---|")
        for name, d in pooled["paired_differences"].items():
            per_seed = ", ".join(f"{v:+.3f}" for v in d["per_seed"])
            lines.append(
                f"| {name} | {d['n']} | {d['diff']:+.3f} | "
                f"[{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] | {per_seed} |"
            )
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], path: Path) -> None:
    """Bar chart per evaluation set: accuracy with 95% CI per model kind.

    With pooled seeds the bar is the seed-pooled accuracy and dots mark each seed;
    otherwise one bar per trained model.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pooled = (summary.get("seed_pooled") or {}).get("accuracy") or {}
    if pooled:
        rows = {
            set_name: {k.split(" ")[0]: v for k, v in pooled.items() if k.endswith(set_name)}
            for set_name in SETS
        }
        seeds = summary["seed_pooled"]["seeds"]
        ylabel = f"accuracy, seeds {','.join(seeds)} pooled (95% CI)"
    else:
        rows = {
            set_name: {m: e[set_name] for m, e in summary["models"].items() if set_name in e}
            for set_name in SETS
        }
        ylabel = "pairwise accuracy (95% bootstrap CI)"
    rows = {k: v for k, v in rows.items() if v}
    fig, axes = plt.subplots(1, len(rows), figsize=(4.5 * len(rows), 3.6), squeeze=False)
    for ax, (set_name, items) in zip(axes[0], rows.items(), strict=True):
        names = list(items)
        acc = [items[m]["accuracy"] for m in names]
        lo = [a - items[m]["ci95"][0] for a, m in zip(acc, names, strict=True)]
        hi = [items[m]["ci95"][1] - a for a, m in zip(acc, names, strict=True)]
        ax.bar(range(len(names)), acc, yerr=[lo, hi], capsize=4, color="#7a9cc6")
        for i, m in enumerate(names):
            dots = items[m].get("per_seed", [])
            ax.plot([i] * len(dots), dots, "o", color="#d9822b", ms=4)
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_title(f"{set_name} (n={items[names[0]]['n']})")
        ax.set_ylim(0.0, 1.0)
    axes[0][0].set_ylabel(ylabel)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"[evaluate] wrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(HERE / "work"))
    parser.add_argument("--results", default=str(HERE / "results"))
    parser.add_argument("--models", default=None, help="comma list (default: every finished model)")
    parser.add_argument("--no-score", action="store_true", help="skip per-pair `music-aug score`")
    parser.add_argument("--plot", action="store_true")
    parser.add_argument("--sets", default=None, help="comma list of hh_dev,mtb_eval to run")
    parser.add_argument(
        "--score-only",
        action="store_true",
        help="skip `music-aug eval pairs` (one scoring pass instead of two); accuracy and "
        "its interval then come from the `music-aug score` rewards, same rule and bootstrap",
    )
    parser.add_argument(
        "--untrained",
        default=None,
        help="also evaluate this checkpoint (the training start, e.g. work/base_model_L8) as "
        f"'{UNTRAINED}' and report base - {UNTRAINED}: what training changed",
    )
    parser.add_argument("--music-aug", default="music-aug")
    args = parser.parse_args()

    work = Path(args.work)
    sets = eval_sets(work)
    if args.models:
        models = args.models.split(",")
    else:
        models = sorted(p.parent.name for p in (work / "models").glob("*/DONE"))
    (work / "eval").mkdir(exist_ok=True)
    (work / "scores").mkdir(exist_ok=True)
    model_dirs = {m: str(work / "models" / m) for m in models}
    if args.untrained:
        models.append(UNTRAINED)
        model_dirs[UNTRAINED] = args.untrained
    for model in models:
        model_dir = model_dirs[model]
        for set_name, path in sets.items():
            tag = _tag(model, set_name, path)
            if args.sets and set_name not in args.sets.split(","):
                continue
            if not args.score_only:
                _run(
                    [args.music_aug, "eval", "pairs", "--model", model_dir, "--data", str(path),
                     "--seed", "0", "-o", str(work / "eval" / f"{tag}.json")],
                    work / "eval" / f"{tag}.json",
                )  # fmt: skip
            if not args.no_score:
                out = work / "scores" / f"{tag}.jsonl"
                _run(
                    [args.music_aug, "score", "--model", model_dir, "--data", str(path),
                     "-o", str(out)],
                    out,
                )  # fmt: skip
    summary = summarise(work, models, sets)
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    (results / "pairs_accuracy.json").write_text(json.dumps(summary, indent=2) + "\n")
    (results / "pairs_accuracy.md").write_text(markdown(summary))
    record = run_record(work, models)
    (results / "run_record.json").write_text(json.dumps(record, indent=2) + "\n")
    print(markdown(summary))
    if args.plot:
        plot(summary, ROOT / "docs" / "images" / "reproduction_accuracy.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
