#!/usr/bin/env bash
# tiller beside llama.cpp on the same GGUF files, in alternating rounds (tiller, then llama.cpp,
# model by model, ROUNDS times), on the CPU with THREADS threads:
#   prefill of 512 tokens          tiller-bench-inference | llama-bench -p 512
#   decode, batch 1 (64 in cache)  tiller-bench-inference | llama-bench -n 32 -d 64
#   decode, batch 16               tiller-bench-inference | llama-batched-bench -npp 64 -ntg 32 -npl 16
# Medians over the rounds, ratios, bytes per token and the fraction of the bandwidth measured in
# the same run go to bench/results/gguf.jsonl and a table on stdout (bench/summarize_gguf.py).
#   bench/run_gguf.sh /path/to/llama.cpp/build/bin/llama-bench [model.gguf ...]
# llama.cpp is not part of tiller: build it yourself (CPU only) and give the path of llama-bench;
# llama-batched-bench must sit beside it. Without model arguments the files of
# bench/make_gguf_models.py are used (written to build/models/gguf first; needs the gguf venv).
set -euo pipefail
cd "$(dirname "$0")/.."
llama_bench=$(realpath "${1:?usage: bench/run_gguf.sh /path/to/llama-bench [model.gguf ...]}")
shift
batched=$(dirname "$llama_bench")/llama-batched-bench
[ -x "$llama_bench" ] && [ -x "$batched" ] || { echo "need $llama_bench and $batched" >&2; exit 1; }
export LD_LIBRARY_PATH=$(dirname "$llama_bench")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
threads=${THREADS:-2}
rounds=${ROUNDS:-3}
python=${PYTHON:-.venv-gguf/bin/python}  # for bench/make_gguf_models.py (the gguf package); the summary needs only python3
models=("$@")
if [ ${#models[@]} -eq 0 ]; then
  "$python" bench/make_gguf_models.py build/models/gguf
  models=(build/models/gguf/smollm2-135m-instruct.{q4_1,q8_0,bf16}.gguf build/models/gguf/llama-3.2-1b-random.{q4_0,q8_0,bf16}.gguf)
fi
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- engine models kernels || echo "-dirty")
device="$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
# TILLER_QUANTIZED_PREFILL=int8 (8-bit activations at every row count, as llama.cpp) is recorded with the device.
device+=${TILLER_QUANTIZED_PREFILL:+, TILLER_QUANTIZED_PREFILL=$TILLER_QUANTIZED_PREFILL}
peer=${PEER_LABEL:-llama.cpp $("$llama_bench" --version 2>&1 | head -1)}
raw=$(mktemp -d)
trap 'rm -rf "$raw"' EXIT
for round in $(seq 1 "$rounds"); do
  for m in "${models[@]}"; do
    name=$(basename "$m" .gguf)
    echo "== round $round/$rounds: $name =="
    build/tiller-bench-inference --model "$m" --shape "$name" --threads "$threads" --prompt 512 --steps 32 \
      --context 64 --batch 1,16 --out "$raw/tiller.$round.jsonl" --commit "$commit" --device "$device" | grep -v '^model\|^memory'
    { "$llama_bench" -m "$m" -t "$threads" -p 512 -n 0 -r 2 -o jsonl
      "$llama_bench" -m "$m" -t "$threads" -p 0 -n 32 -d 64 -r 2 -o jsonl; } > "$raw/llama-bench.$round.$name.jsonl" 2>/dev/null
    "$batched" -m "$m" -t "$threads" -tb "$threads" -c 2048 -b 2048 -ub 512 -npp 64 -ntg 32 -npl 16 \
      --output-format jsonl 2>/dev/null | grep '^{' > "$raw/batched.$round.$name.jsonl"
  done
done
python3 bench/summarize_gguf.py "$raw" --out bench/results/gguf.jsonl --commit "$commit" --device "$device" \
  --threads "$threads" --peer "$peer"
