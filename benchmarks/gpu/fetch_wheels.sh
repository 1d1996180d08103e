#!/usr/bin/env bash
# Download the wheels bench_gemma2.py needs that the GPU machine's image lacks, into DEST
# (default .whl/, ignored by git). Run on a machine with registry access; carry DEST to the
# GPU machine and install with device_run.sh. The image (benchmarks/gpu/README.md) already
# has torch, transformers, accelerate, tokenizers, safetensors, huggingface-hub, numpy,
# pandas, pyarrow, jinja2, pyyaml, psutil, xxhash, tqdm and peft; these are the rest of
# music_aug's training imports and TRL's, pinned to the versions tested together here.
#
#   bash benchmarks/gpu/fetch_wheels.sh            # Python 3.12 (the GPU image's)
#   PY_VERSION=3.11 bash benchmarks/gpu/fetch_wheels.sh /tmp/wheels   # another Python
set -euo pipefail

DEST=${1:-.whl}
PY_VERSION=${PY_VERSION:-3.12}
PYTHON=${PYTHON:-python3}
WHEELS=(
    trl==1.16.0
    datasets==5.2.0
    dill==0.4.1
    multiprocess==0.70.19
    fsspec==2026.9.0
    pydantic==2.14.4
    pydantic-core==2.50.5
    annotated-types==0.8.0
    typing-inspection==0.4.5
    typing-extensions==4.16.0
    tenacity==9.2.1
)
# No pyarrow: a pyarrow in /tmp/site shadowing the image's broke datasets' hashing in the
# rehearsal (PicklingError on MonthDayNano), while datasets 5.2 ran on the image-like
# pyarrow 23 (its metadata asks for >= 24).

download() {
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux1_x86_64 -d "$@"
}

mkdir -p "$DEST"
download "$DEST" "${WHEELS[@]}"
du -sh "$DEST"
ls "$DEST"
