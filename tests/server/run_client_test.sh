#!/usr/bin/env bash
# Drives a real `tiller serve` (stories260K) with the official openai Python package and with curl,
# then stops it with SIGTERM. Usage: run_client_test.sh path/to/tiller
# Exits 77 (ctest: skipped) with a message when ../shared or PyPI is unavailable.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
tiller="$1"
model="${TILLER_SHARED:-$root/../shared}/models/stories260K"
if [ ! -d "$model" ]; then
  echo "SKIPPED: $model is absent (../shared holds the stories260K model)"
  exit 77
fi

# The client lives in its own venv, made once; a machine without PyPI skips.
venv="$root/.venv-test"
if ! "$venv/bin/python" -c "import openai" 2>/dev/null; then
  if ! python3 -m venv "$venv"; then
    echo "SKIPPED: python3 -m venv failed (install python3-venv)"
    exit 77
  fi
  if ! timeout 300 "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"; then
    echo "SKIPPED: could not install the openai package from PyPI (offline?)"
    exit 77
  fi
fi

log="$(mktemp)"
"$tiller" serve --model "$model" --port 0 --api-key test-key --threads 1 --max-batch 8 --shutdown-grace 5 2>"$log" &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null
  rm -f "$log"
}
trap cleanup EXIT
port=""
for _ in $(seq 1 200); do
  port="$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$log")"
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$port" ]; then
  cat "$log"
  echo "FAILED: tiller serve did not start"
  exit 1
fi
base="http://127.0.0.1:$port"
fail() {
  echo "FAILED: $*"
  cat "$log"
  exit 1
}

# curl: health needs no key, /v1 does; a stream ends with [DONE].
# (Responses are read whole before grep: with pipefail, `curl | grep -q` fails when grep stops
# reading early and curl gets SIGPIPE.)
health="$(curl -sf "$base/health")" && grep -q '"ok"' <<<"$health" || fail "GET /health"
code="$(curl -s -o /dev/null -w '%{http_code}' "$base/v1/models")"
[ "$code" = 401 ] || fail "GET /v1/models without a key answered $code, expected 401"
curl -sfN -H "Authorization: Bearer test-key" "$base/v1/completions" \
  -d '{"prompt":"Once upon a time","max_tokens":8,"stream":true}' | tail -n 2 | grep -q '^data: \[DONE\]' \
  || fail "streaming completion via curl did not end with data: [DONE]"
code="$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer test-key" "$base/v1/completions" -d '{"prompt": ')"
[ "$code" = 400 ] || fail "malformed JSON answered $code, expected 400"
code="$(curl -s -o /dev/null -w '%{http_code}' "$base/metrics")"
[ "$code" = 401 ] || fail "GET /metrics without a key answered $code, expected 401 (the key guards all but /health)"
metrics="$(curl -sf -H "Authorization: Bearer test-key" "$base/metrics")" && grep -q '^tiller_generation_tokens_total' <<<"$metrics" \
  || fail "GET /metrics"
echo "curl: ok"

"$venv/bin/python" "$here/test_openai_client.py" "$base" test-key || fail "openai client test"

kill -TERM "$pid"
wait "$pid"
status=$?
[ "$status" = 0 ] || fail "tiller serve exited with $status after SIGTERM, expected 0"
grep -q "stopped after" "$log" || fail "no shutdown summary"
echo "graceful shutdown: ok"
