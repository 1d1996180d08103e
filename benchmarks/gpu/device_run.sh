#!/usr/bin/env bash
# The GPU check of issue 14 as one prepared command for a lent GPU machine (at most ~9.5 min
# of its time). From this repository's root, after `bash benchmarks/gpu/fetch_wheels.sh`:
#
#   device run: command "bash benchmarks/gpu/device_run.sh", carry [".whl"], timeout_s 600
#
# It installs the carried wheels into /tmp/site (the image's own packages, pyarrow included,
# stay as they are), prints
# the environment, then runs bench_gemma2.py twice with the Gemma-2-9B layer shapes, 8
# layers, bf16, identical batches on both sides (--no-group):
#   1. batch 4 pairs, 12 steps: our default attention and segmented_flex vs TRL;
#   1b. the same, ours only, shared prefixes computed twice (--no-share-prefix);
#   2. the paper's 64 pairs per step (8 pairs x 8 accumulation steps), 4 steps: ours vs TRL;
#   3. torch.profiler top CUDA ops of 2 steps of each side (in stderr.log; timing not used).
# Every JSON line goes to $OUT/run*.jsonl as it is printed (paste them into RESULTS.md); all
# stderr to $OUT/stderr.log, versions to $OUT/env.txt: 6 files (the tool returns 8 at most).
# Knobs for a rehearsal elsewhere: PYTHON, WHEELS (folder), BENCH_EXTRA (e.g. "--tiny"),
# RUN1_S / RUN1B_S / RUN2_S / RUN3_S (time limits of the runs, seconds; 545 in all).
set -u -o pipefail
export PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
OUT=${OUT:-/tmp/bench_gemma2_out}
SITE=${SITE:-/tmp/site}
mkdir -p "$OUT"

"$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$WHEELS"/*.whl || exit 1
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"

{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
    "$PYTHON" - <<'PY'
import importlib.metadata as m
for name in ("torch", "transformers", "accelerate", "trl", "datasets", "pyarrow", "flash_attn"):
    try:
        print(name, m.version(name))
    except m.PackageNotFoundError:
        print(name, "-")
import music_aug, trl  # the carried wheels import
print("imports ok")
PY
} 2>&1 | tee "$OUT/env.txt"

BENCH=("$PYTHON" benchmarks/gpu/bench_gemma2.py --layers 8 --no-group ${BENCH_EXTRA:-})
status=0
timeout "${RUN1_S:-210}" "${BENCH[@]}" --attn auto,segmented_flex --batch-size 4 --steps 12 \
    --warmup 2 --output-dir /tmp/run1 2>>"$OUT/stderr.log" | tee "$OUT/run1.jsonl" || status=1
tail -n 5 "$OUT/stderr.log"
timeout "${RUN1B_S:-75}" "${BENCH[@]}" --sides ours --attn auto --no-share-prefix \
    --batch-size 4 --steps 12 --warmup 2 --output-dir /tmp/run1b 2>>"$OUT/stderr.log" \
    | tee "$OUT/run1b.jsonl" || status=1
tail -n 5 "$OUT/stderr.log"
timeout "${RUN2_S:-170}" "${BENCH[@]}" --attn auto --batch-size 8 --grad-accum 8 --steps 4 \
    --warmup 1 --output-dir /tmp/run2 2>>"$OUT/stderr.log" | tee "$OUT/run2.jsonl" || status=1
tail -n 5 "$OUT/stderr.log"
timeout "${RUN3_S:-90}" "${BENCH[@]}" --attn auto --batch-size 4 --steps 4 --warmup 2 \
    --profile 2 --output-dir /tmp/run3 2>>"$OUT/stderr.log" | tee "$OUT/run3.jsonl" || status=1
grep -A 14 "^profile:" "$OUT/stderr.log"
exit $status
