#!/usr/bin/env bash
# The GPU session in one script: build the CUDA backend (toolkit + header-only deps only), check it
# (op table, model parity, stories260K), and time it beside the roofline and HF transformers.
#
#   bench/gpu_check.sh check    build + op table + parity + stories260K + CLI on the GPU (~5 min)
#   bench/gpu_check.sh bench    build + decode/prefill benchmarks, tiller and HF (~5 min)
#   bench/gpu_check.sh all      both
#
# Needs .vendor/ from scripts/vendor_headers.sh (carried to the GPU machine). Writes logs and JSON
# lines to $OUT (the run tool's output folder) and appends the JSON lines to bench/results/gpu.jsonl.
# Environment: COMMIT (recorded in the JSON lines; default: git, else "unknown"), BUILD_DIR
# (build-gpu), SHAPES ("llama-3.2-1b llama-3.1-8b"), BATCHES (1,8,32,128), PROMPT (512),
# CONTEXT (136) and STEPS (64) -- 136 + 3 warm-up + 64 stays within one 256-token block-table
# bucket, so the timed decode steps replay one CUDA graph -- PEER_PYTHON (python3), HF_COMPILE=1
# (torch.compile the peer), WERROR (OFF: the CUDA code is -Werror-clean with nvcc 13 / g++ 12; a
# different host compiler must not fail the session on someone else's warning).
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-all}
out=${OUT:-bench/results/gpu-run}
build=${BUILD_DIR:-build-gpu}
mkdir -p "$out" bench/results
export TILLER_SHARED=${TILLER_SHARED:-$PWD/.vendor/shared}
commit=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
status=0
step() { echo; echo "=== $* ($(date +%T))"; }

command -v nvcc > /dev/null || export PATH=/usr/local/cuda/bin:$PATH
[ -f .vendor/include/nlohmann/json.hpp ] || { echo "no .vendor/include: run scripts/vendor_headers.sh and carry .vendor" >&2; exit 2; }
step "device"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.memory,driver_version --format=csv | tee "$out/device.txt"
nvcc --version | tail -2 | tee -a "$out/device.txt"

step "configure + build ($build)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTILLER_CUDA=ON -DTILLER_TOKENIZERS=OFF \
  -DTILLER_SERVER=OFF -DTILLER_WERROR="${WERROR:-OFF}" -DTILLER_CUDA_ARCHITECTURES=90 > "$out/cmake.log" 2>&1 ||
  { tail -30 "$out/cmake.log"; exit 2; }
targets=(tiller tiller-bench-inference)
[ "$mode" != bench ] && targets+=(tiller_tests)
if ! ninja -C "$build" "${targets[@]}" > "$out/build.log" 2>&1; then
  grep -E "error|FAILED" "$out/build.log" | head -40
  exit 2
fi
grep -c "warning:" "$out/build.log" | sed 's/^/build warnings: /'

if [ "$mode" = check ] || [ "$mode" = all ]; then
  step "op table: CUDA vs CPU"
  "$build/tiller_tests" -tc="backend ops*" 2>&1 | tee "$out/op_table.log" | tail -25 || status=1
  grep -q "Status: SUCCESS" "$out/op_table.log" || status=1
  step "models on the GPU: HF parity, stories260K golden, decode graphs, random models, steering profiles (merged, per row, mixed)"
  "$build/tiller_tests" -tc="device backends*,parity*,stories*,random_model*,steering*" 2>&1 | tee "$out/parity.log" | tail -25 || status=1
  grep -q "Status: SUCCESS" "$out/parity.log" || status=1
  step "CLI (defaults to --device cuda here)"
  "$build/tiller_tests" -tc="cli*" 2>&1 | tee "$out/cli.log" | tail -8
  grep -q "Status: SUCCESS" "$out/cli.log" || echo "(CLI tests failed: see cli.log; some need the tokenizers, off here)"
fi

if [ "$mode" = bench ] || [ "$mode" = all ]; then
  jsonl="$out/gpu.jsonl"
  peer=${PEER_PYTHON:-python3}
  for shape in ${SHAPES:-llama-3.2-1b llama-3.1-8b}; do
    step "tiller $shape (BF16, random weights in GPU memory)"
    "$build/tiller-bench-inference" --random-config "bench/configs/$shape.json" --dtype bf16 --backend cuda \
      --shape "$shape" --prompt "${PROMPT:-512}" --context "${CONTEXT:-136}" --steps "${STEPS:-64}" \
      --batch "${BATCHES:-1,8,32,128}" --out "$jsonl" --commit "$commit" 2>&1 | tee -a "$out/bench.log" || status=1
    step "HF transformers $shape (sdpa, static cache${HF_COMPILE:+, torch.compile})"
    "$peer" bench/peer_hf_gpu.py --config "bench/configs/$shape.json" --shape "$shape" --prompt "${PROMPT:-512}" \
      --context "${CONTEXT:-136}" --steps "${STEPS:-64}" --batch "${BATCHES:-1,8,32,128}" --out "$jsonl" \
      --commit "$commit" ${HF_COMPILE:+--compile} 2>&1 | tee -a "$out/bench.log" || status=1
  done
  [ -f "$jsonl" ] && cat "$jsonl" >> bench/results/gpu.jsonl
  step "summary (decode tok/s; tiller's fraction of the measured bandwidth)"
  "$peer" - "$jsonl" <<'PY' 2>/dev/null | tee "$out/summary.txt"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for r in rows:
    extra = f"  {100 * r.get('bw_fraction', 0):5.1f}% of {r.get('measured_bw_gbs', 0):.0f} GB/s"
    if r["phase"] == "prefill":
        extra += f"  {r.get('gflops', 0) / 1e3:6.1f} TFLOP/s"
        if r.get("peak_gemm_tflops"):
            extra += f" ({100 * r['tflops_fraction']:.0f}% of cuBLAS {r['peak_gemm_tflops']:.0f})"
    print(f"{r['engine']:16s} {r['shape']:13s} {r['phase']:8s} batch {r['batch']:4d} {r['tok_s']:10.1f} tok/s{extra}")
PY
fi
echo
echo "gpu_check.sh $mode: $([ $status = 0 ] && echo OK || echo FAILURES) -- logs in $out"
exit $status
