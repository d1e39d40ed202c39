#!/usr/bin/env bash
# HF PEFT must load the adapter `tiller finetune --peft-out` writes and give the logits tiller gives
# with it (check_peft_interop.py). Needs torch, transformers and peft (tests/fixtures/train_requirements.txt)
# in .venv-train or $TRAIN_PYTHON; exits 77 (ctest: skipped) when there is none, since installing
# torch is not a test's job.
# Usage: run_peft_interop.sh path/to/tiller
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
tiller="$1"
py="${TRAIN_PYTHON:-$root/.venv-train/bin/python}"
if ! "$py" -c "import torch, transformers, peft" 2>/dev/null; then
  echo "SKIPPED: no Python with torch, transformers and peft at $py (see tests/fixtures/train_requirements.txt)"
  exit 77
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
model="$root/tests/fixtures/models/llama_gqa"
"$py" -c "
import json
for i in range(8):
    ids = [1 + (t * 41 + i * 13) % 500 for t in range(12 + 2 * i)]
    print(json.dumps({'input_ids': ids}))" > "$work/data.jsonl"
"$tiller" finetune -m "$model" --data "$work/data.jsonl" --lora-targets all-linear --lora-rank 4 --lora-alpha 16 \
  --steps 6 --lr 5e-3 --threads 2 --no-progress --out "$work/p.safetensors" --peft-out "$work/peft" || exit 1
tokens=1,7,99,310,42,5,271,480,3,64,200
"$tiller" logits -m "$model" --profile "$work/peft" --tokens $tokens --all --out "$work/peft.npy" || exit 1
"$tiller" logits -m "$model" --profile "$work/p.safetensors" --tokens $tokens --all --out "$work/profile.npy" || exit 1
"$py" -c "import numpy as np, sys; a, b = np.load('$work/peft.npy'), np.load('$work/profile.npy'); \
assert np.array_equal(a, b), 'the PEFT folder and the profile give different logits'" || exit 1
"$py" "$here/check_peft_interop.py" "$model" "$work/peft" $tokens "$work/peft.npy"
