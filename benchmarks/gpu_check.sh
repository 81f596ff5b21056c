#!/usr/bin/env bash
# The speed and reference checks on a CUDA machine, in one short run; installs nothing.
# Run from the repository root with ddream's environment active:
#     bash benchmarks/gpu_check.sh MNIST_DIR    (a folder with MNIST/raw/*-ubyte)
# Prints the GPU's name, the data path vs DataLoader table, `ddream all` on the reference schedule
# with its stage times (distill included), eval of the default sampler (the student), and sampling
# digits/s of the teacher by step count and of the student; record the output in BENCHMARKS.md.
set -euo pipefail
DATA=${1:?usage: bash benchmarks/gpu_check.sh MNIST_DIR}
WORK=$(mktemp -d /tmp/ddream-gpu-XXXX)
trap 'rm -rf "$WORK"' EXIT
python - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device: this check is for a GPU machine"
print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
PY
start=$(date +%s)
python -m ddream all --device cuda --data-dir "$DATA" --state-dir "$WORK/ref" --quiet
echo "ddream all (reference schedule, cuda): $(( $(date +%s) - start )) s"
python -m ddream status --state-dir "$WORK/ref"
cp "$WORK/ref/state.json" "$WORK/ref/samples.png" "${OUT:-$PWD}/" 2>/dev/null || true
python -m ddream eval --device cuda --data-dir "$DATA" --state-dir "$WORK/ref" --n 10000
python benchmarks/speed.py --device cuda --data-dir "$DATA" --n 10000 --state default="$WORK/ref" --no-data --no-quick
