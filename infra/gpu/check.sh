#!/usr/bin/env bash
# The GPU check: SmolLM2 throughput on the GPU, then one 4-group round of the lora backend as
# Ray tasks sharing the GPU, with timings printed and written to OUT/lora.json, and in-run
# valuation's cost (OUT/valuation-cost.json).
#
#   infra/gpu/check.sh [OUT]     (on a machine with a GPU and the llm extra installed;
#                                 PYTHON picks the interpreter, default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
OUT=${1:-out/gpu}
mkdir -p "$OUT"

"$PYTHON" - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device is visible to torch: nothing to check"
print("gpu:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
PY
[ -f bench/results/lora.json ] && cp bench/results/lora.json "$OUT/lora.json"
"$PYTHON" bench/lora.py --section gpu --ray-round --out "$OUT/lora.json"
# In-run valuation's cost on the GPU: a candidate's training with and without it.
"$PYTHON" bench/valuation.py --cost --model smollm2-135m-instruct
cp bench/results/valuation-cost.json "$OUT/valuation-cost.json"
