#!/usr/bin/env bash
# The sanitizer job: builds build-asan/ with AddressSanitizer + UndefinedBehaviorSanitizer (every
# report fatal; LeakSanitizer runs at each process's exit) and runs the whole suite there — the
# doctest suite, the fuzz corpus replay and the scripted client tests, with the tiller binary the
# tests start built the same way. Prints the time each stage took. Extra arguments go to ctest
# (e.g. -R fuzz_corpus).
#
#   scripts/sanitize.sh [CTEST_ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
start=$SECONDS
# RelWithDebInfo: optimised enough for the numeric tests to run in minutes, frames still readable.
# No CUDA (nvcc's host code would need the runtime built with the sanitizers) and no benchmarks.
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTILLER_SANITIZE=address,undefined \
  -DTILLER_CUDA=OFF -DTILLER_BENCH=OFF -DTILLER_WERROR=ON "${launcher[@]}" >/dev/null
cmake --build build-asan
built=$SECONDS
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=print_suppressions=0
status=0
ctest --test-dir build-asan --output-on-failure --timeout 3600 "$@" || status=$?
echo "sanitizer job: build $((built - start)) s, tests $((SECONDS - built)) s, $([ $status = 0 ] && echo clean || echo FAILED)"
exit $status
