#!/usr/bin/env bash
# Python's safetensors must open every file tiller writes: makes a Soteria profile and a merged
# model folder with the tiller binary and checks them with numpy (check_profile_files.py).
# Usage: run_python_interop.sh path/to/tiller. Exits 77 (ctest: skipped) when PyPI is unreachable.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
tiller="$1"
venv="$root/.venv-interop"
if ! "$venv/bin/python" -c "import safetensors, numpy" 2>/dev/null; then
  python3 -m venv "$venv" || { echo "SKIPPED: python3 -m venv failed (install python3-venv)"; exit 77; }
  timeout 300 "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt" \
    || { echo "SKIPPED: could not install safetensors and numpy from PyPI (offline?)"; exit 77; }
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fix="$root/tests/fixtures"
"$tiller" steer soteria --base "$fix/models/llama_gqa" --harmful "$fix/steering/llama_gqa_harmful" \
  --heads "$fix/steering/heads.json" --scale 1.35 --language xx --out "$work/p.safetensors" || exit 1
"$tiller" steer merge --model "$fix/models/llama_gqa" --profile "$work/p.safetensors" --out "$work/merged" || exit 1
"$venv/bin/python" "$here/check_profile_files.py" "$work/p.safetensors" "$work/merged"
