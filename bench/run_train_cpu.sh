#!/usr/bin/env bash
# The CPU training benchmark: tiller-bench-train beside PyTorch (bench/peer_torch_train.py: HF
# transformers + PEFT + torch.optim.AdamW) on the same random-weight SmolLM2-135M folder, batch,
# sequence length and LoRA, in alternating rounds (tiller, then PyTorch, per setting and round) so
# that a shared machine's load falls on both. Appends JSON lines to bench/results/train.jsonl.
#   bench/run_train_cpu.sh            THREADS=2 ROUNDS=3 BATCH=4 SEQ=128 STEPS=3 DTYPE=f32 TRAIN="lora full"
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${THREADS:-2} rounds=${ROUNDS:-3} batch=${BATCH:-4} seq=${SEQ:-128} steps=${STEPS:-3}
dtype=${DTYPE:-f32} trains=(${TRAIN:-lora full}) shape=smollm2-135m
out=${OUT_FILE:-bench/results/train.jsonl}
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- engine models kernels train || echo "-dirty")
device="$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores (shared)"
peer=${PEER_PYTHON:-.venv-fixtures/bin/python}
dir=build/models/$shape-$dtype
mkdir -p bench/results build/models
[ -f "$dir/model.safetensors" ] || build/tiller random-init --config "bench/configs/$shape.json" --dtype "$dtype" --out "$dir"
have_peer=0
if [ -x "$peer" ] && "$peer" -c "import torch, transformers, peft" 2>/dev/null; then have_peer=1
else echo "(no Python with torch + transformers + peft at $peer: tiller only)"; fi
common=(--batch "$batch" --seq "$seq" --steps "$steps" --threads "$threads" --lora-targets q_proj,v_proj --lora-rank 8)
for round in $(seq 1 "$rounds"); do
  for train in "${trains[@]}"; do
    echo "== round $round: $train =="
    build/tiller-bench-train --model "$dir" --shape "$shape" --train "$train" "${common[@]}" \
      --out "$out" --commit "$commit" --device "$device"
    [ $have_peer = 1 ] && "$peer" bench/peer_torch_train.py --model "$dir" --shape "$shape" --train "$train" \
      "${common[@]}" --out "$out" --commit "$commit" --device "$device" 2>&1 | grep -v "Loading weights"
  done
done
echo "results appended to $out"
