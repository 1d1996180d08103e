#!/usr/bin/env bash
# Stage 1 (generate): MUSIC pairs (D_MUSIC), final-turn-only pairs (D_last) and held-out
# multi-turn evaluation pairs from MT-Bench-extended, with the embedded SmolLM2-135M backend.
#
# Work is split into shards of SHARD_ROWS source rows; each shard is one `music-aug augment`
# call writing its own file, so an interrupted run loses at most one shard, finished shards
# are skipped, and every request goes through one SQLite cache (a rerun of a half-done shard
# replays its finished requests). Rounds interleave D_MUSIC, D_last and eval shards so the
# three sets stay the same size whenever the run is stopped. No new shard starts after
# STOP_AT (UTC, HH:MM) if set. ONLY=music|last|mtb runs one stream, so several workers
# can run side by side (a shard is claimed with an atomic lock directory).
#
# Usage: examples/reproduction/generate.sh            (env vars below override defaults)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="${WORK:-$HERE/work}"
MUSIC_AUG="${MUSIC_AUG:-music-aug}"
SHARD_ROWS="${SHARD_ROWS:-4}"          # source rows per shard
TRAIN_SHARDS="${TRAIN_SHARDS:-40}"     # rounds of D_MUSIC/D_last shards (40 x 4 = 160 rows = D)
EVAL_SHARDS="${EVAL_SHARDS:-18}"       # MT-Bench shards (18 x 4 = rows 0-71; bon.sh uses 72-79)
MAX_TURNS="${MAX_TURNS:-2}"
MAX_NEW_TOKENS="${MAX_NEW_TOKENS:-48}"
BRANCH="${BRANCH:-first}"
GEN_SEED="${GEN_SEED:-0}"
EVAL_SEED="${EVAL_SEED:-1234}"
STOP_AT="${STOP_AT:-}"
ONLY="${ONLY:-all}"                    # all | music | last | mtb
AUGMENT_ARGS="${AUGMENT_ARGS:-}"       # extra flags for every call, e.g. "--backend vllm --model M"
CACHE="$WORK/cache.sqlite"
DATA="$WORK/data"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"

python "$HERE/prepare_data.py" --out "$DATA"
mkdir -p "$WORK/music" "$WORK/last" "$WORK/mtb_eval" "$WORK/logs"

n_train_rows=$(wc -l < "$DATA/hh_train.jsonl")
n_train_total=$(( (n_train_rows + SHARD_ROWS - 1) / SHARD_ROWS ))
n_mtb_rows=$(wc -l < "$DATA/mt_bench_eval_src.jsonl")
n_mtb_total=$(( (n_mtb_rows + SHARD_ROWS - 1) / SHARD_ROWS ))

past_stop() {
  [[ -n "$STOP_AT" ]] && [[ "$(date -u +%H:%M)" > "$STOP_AT" || "$(date -u +%H:%M)" == "$STOP_AT" ]]
}

run_shard() {  # name input shard_index shard_total out_dir extra-args...
  local name=$1 input=$2 i=$3 total=$4 dir=$5; shift 5
  local out="$dir/shard_$(printf %03d "$i").jsonl"
  if [[ -s "$out" ]]; then echo "[generate] $name shard $i/$total done, skipping"; return 0; fi
  if [[ "$ONLY" != all && "$ONLY" != "${name%_eval}" ]]; then return 0; fi
  if past_stop; then echo "[generate] past STOP_AT=$STOP_AT, not starting $name shard $i"; return 1; fi
  if ! mkdir "$out.lock" 2>/dev/null; then echo "[generate] $name shard $i claimed by another worker"; return 0; fi
  echo "[generate] $(date -u +%T) $name shard $i/$total -> $out"
  local t0=$SECONDS
  "$MUSIC_AUG" augment "$input" -o "$out.part.jsonl" --shard "$i/$total" \
    --max-turns "$MAX_TURNS" --max-new-tokens "$MAX_NEW_TOKENS" --branch "$BRANCH" --on-error skip \
    --cache "$CACHE" --summary-json "$dir/shard_$(printf %03d "$i").summary.json" "$@" \
    $AUGMENT_ARGS \
    > "$WORK/logs/${name}_$i.log" 2>&1
  mv "$out.part.jsonl" "$out"
  rmdir "$out.lock"
  echo "[generate] $(date -u +%T) $name shard $i: $(wc -l < "$out") pairs in $((SECONDS - t0)) s"
}

max_rounds=$(( TRAIN_SHARDS > EVAL_SHARDS ? TRAIN_SHARDS : EVAL_SHARDS ))
for (( r = 0; r < max_rounds; r++ )); do
  if (( r < TRAIN_SHARDS && r < n_train_total )); then
    run_shard music "$DATA/hh_train.jsonl" "$r" "$n_train_total" "$WORK/music" \
      --seed "$GEN_SEED" --source-side chosen --contrast-turns all || break
    run_shard last "$DATA/hh_train.jsonl" "$r" "$n_train_total" "$WORK/last" \
      --seed "$GEN_SEED" --source-side chosen --contrast-turns 1 || break
  fi
  if (( r < EVAL_SHARDS && r < n_mtb_total )); then
    run_shard mtb_eval "$DATA/mt_bench_eval_src.jsonl" "$r" "$n_mtb_total" "$WORK/mtb_eval" \
      --seed "$EVAL_SEED" --user-turns replay --contrast-turns all || break
  fi
done
"$MUSIC_AUG" cache stats "$CACHE" || true
echo "[generate] $(date -u +%T) finished: music $(cat "$WORK"/music/shard_[0-9][0-9][0-9].jsonl 2>/dev/null | wc -l)," \
  "last $(cat "$WORK"/last/shard_[0-9][0-9][0-9].jsonl 2>/dev/null | wc -l)," \
  "mtb_eval $(cat "$WORK"/mtb_eval/shard_[0-9][0-9][0-9].jsonl 2>/dev/null | wc -l) pairs"
