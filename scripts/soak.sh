#!/usr/bin/env bash
# The server soak for longer than CI's bounded run: mixed streaming load for SECONDS (default 300)
# against an in-process server (tests/test_server_soak.cpp), checking every completed response
# against the same request run alone and resident memory against its post-warm-up baseline. The
# memory curve goes to build/soak-report.jsonl (one line per half second, then the totals).
#
#   scripts/soak.sh [SECONDS] [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
build=${2:-build}
[ -x "$build/tiller_tests" ] || { echo "build $build first (scripts/build.sh)" >&2; exit 1; }
report="$build/soak-report.jsonl"
TILLER_SOAK_SECONDS="$seconds" TILLER_SOAK_REPORT="$report" "$build/tiller_tests" -tc="server soak*" -s 2>&1 |
  grep -E "MESSAGE|soak|resident|ERROR|SUCCESS|FAILURE" || true
echo "memory curve: $report"
tail -n 1 "$report"
