#!/usr/bin/env bash
# Installs the Debian packages tiller builds with (skips what is already installed).
set -euo pipefail
packages=(cmake ninja-build g++ pkg-config libsentencepiece-dev nlohmann-json3-dev doctest-dev libpcre2-dev libcpp-httplib-dev libcld2-dev libeigen3-dev libspectra-dev curl python3-venv chromium fonts-noto-core)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "tiller: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
