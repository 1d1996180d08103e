#!/usr/bin/env bash
# Optional stage 4: a tiny multi-turn Best-of-N with the three seed-0 reward models as
# selectors, SmolLM2-135M as policy, user simulator and (few-shot) judge. Prompts are
# MT-Bench-extended rows the eval pairs do not use (rows 72-79; generate.sh makes eval pairs
# from rows 0-71). Resumable: the request cache
# lives in the output folder.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="${WORK:-$HERE/work}"
PROMPTS="${PROMPTS:-4}"
N="${N:-4}"
SEED="${SEED:-0}"
tail -n +73 "$WORK/data/mt_bench_eval_src.jsonl" > "$WORK/data/bon_prompts.jsonl"
music-aug eval bon --policy-backend llamacpp --prompts "$WORK/data/bon_prompts.jsonl" \
  --max-prompts "$PROMPTS" --n "$N" --turns 2 --max-tokens 48 \
  --selectors "base=$WORK/models/base_s$SEED,music=$WORK/models/music_s$SEED,last=$WORK/models/last_s$SEED" \
  --judge-template judge_pairwise_fewshot --judge-max-tokens 4 --seed "$SEED" \
  -o "$WORK/bon_s$SEED"
mkdir -p "$HERE/results"
cp "$WORK/bon_s$SEED/results.json" "$HERE/results/bon_s$SEED.json"
echo "[bon] wrote $HERE/results/bon_s$SEED.json"
