#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_*.cpp) under libFuzzer with ASan + UBSan for SECONDS each and
# prints, per target, the executions, the coverage reached and what was found. Builds build-fuzz/
# with clang first (TILLER_FUZZ=ON). New inputs collect in build-fuzz/corpus/<target>; a crash,
# hang or leak is saved in build-fuzz/findings/<target>/ (turn it into fuzz/regressions/<target>/
# with its fix). --merge folds the inputs that add coverage back into fuzz/corpus/<target>.
#
#   scripts/fuzz.sh [SECONDS=60] [--merge] [--jobs N] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=60
merge=0
jobs=1
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --merge) merge=1 ;;
    --jobs) jobs="$2"; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    [0-9]*) seconds="$1" ;;
    *) targets+=("$1") ;;
  esac
  shift
done

command -v clang++ >/dev/null || { echo "scripts/fuzz.sh needs clang (apt-get install clang)" >&2; exit 1; }
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DTILLER_FUZZ=ON -DTILLER_CUDA=OFF -DTILLER_TESTS=OFF -DTILLER_BENCH=OFF "${launcher[@]}" >/dev/null
ninja -C build-fuzz >/dev/null

if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz/fuzz_*.cpp; do
    t=$(basename "$f" .cpp); t=${t#fuzz_}
    [ "$t" = target ] || targets+=("$t")
  done
fi

printf '%-18s %12s %8s %8s %8s %9s  %s\n' target executions exec/s cov ft corpus findings
for t in "${targets[@]}"; do
  work=build-fuzz/corpus/$t findings=build-fuzz/findings/$t log=build-fuzz/logs/$t.log
  mkdir -p "$work" "$findings" build-fuzz/logs fuzz/corpus/"$t"
  seeds=(fuzz/corpus/"$t")
  [ -d fuzz/regressions/"$t" ] && seeds+=(fuzz/regressions/"$t")
  before=$(ls "$findings" | wc -l)
  parallel=()
  [ "$jobs" -gt 1 ] && parallel=(-jobs="$jobs" -workers="$jobs")
  # -timeout: an input running this long is a hang; -rss_limit_mb: one using this much leaks or blows up.
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
    build-fuzz/fuzz-"$t" "$work" "${seeds[@]}" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=3072 \
    -max_len=262144 "${parallel[@]}" -artifact_prefix="$findings"/ -print_final_stats=1 >"$log" 2>&1 || true
  if [ "$jobs" -gt 1 ]; then cat fuzz-*.log >>"$log" 2>/dev/null || true; rm -f fuzz-*.log; fi
  stats=$(grep -E "^#[0-9]+.*(DONE|pulse|NEW|REDUCE|INITED)" "$log" | tail -1)
  execs=$(grep -E "stat::number_of_executed_units" "$log" | awk '{s+=$2} END {print s+0}')
  rate=$(grep -E "stat::average_exec_per_sec" "$log" | awk '{s+=$2} END {print s+0}')
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$stats")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$stats")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$stats")
  found=$(( $(ls "$findings" | wc -l) - before ))
  summary=$(grep -m1 -E "^SUMMARY|ERROR: libFuzzer|escaping exception" "$log" || true)
  printf '%-18s %12s %8s %8s %8s %9s  %s\n' "$t" "$execs" "$rate" "${cov:-?}" "${ft:-?}" "${corp:-?}" \
    "$([ "$found" -gt 0 ] && echo "$found: ${summary:0:100}" || echo none)"
  if [ "$merge" = 1 ]; then
    build-fuzz/fuzz-"$t" -merge=1 -max_len=65536 fuzz/corpus/"$t" "$work" >>"$log" 2>&1 || true
  fi
done
