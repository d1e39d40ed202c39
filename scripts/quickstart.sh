#!/usr/bin/env bash
# The main job, on a fresh machine: install dependencies, build, make a small random-weight
# Llama (SmolLM2-135M shape) of our own, generate from it, and benchmark it beside the roofline.
# Point tiller at a real model instead with: build/tiller generate --model /path/to/hf-model -p "..."
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
model=${TILLER_DEMO_MODEL:-build/models/smollm2-135m-random}
if [ ! -f "$model/model.safetensors" ]; then
  build/tiller random-init --config bench/configs/smollm2-135m.json --dtype bf16 --seed 0 --out "$model"
fi
echo "== generate (random weights: the ids are noise, the speed is real) =="
build/tiller generate --model "$model" --tokens 0,1,2,3 -n 32 --temperature 0 --json
stories=../shared/models/stories260K
if [ -f "$stories/config.json" ]; then
  echo "== generate from a real trained tiny Llama ($stories) =="
  build/tiller generate --model "$stories" --prompt "Once upon a time" -n 48 --temperature 0
  echo
fi
echo "== benchmark =="
build/tiller-bench-inference --model "$model" --prompt 128 --steps 32 --batch 1,4
