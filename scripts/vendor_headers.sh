#!/usr/bin/env bash
# Prepares .vendor/ (git-ignored) for a machine without the Debian dev packages or ../shared, such
# as the GPU machine: the header-only dependencies (nlohmann/json, doctest, Eigen, Spectra) from
# /usr/include into
# .vendor/include (CMake looks there), and the stories260K model from ../shared (or $TILLER_SHARED)
# into .vendor/shared/models (tests find it with TILLER_SHARED=$PWD/.vendor/shared). Carry .vendor
# to that machine; bench/gpu_check.sh uses it.
set -euo pipefail
cd "$(dirname "$0")/.."
include=${INCLUDE_DIR:-/usr/include}
for need in "$include/nlohmann/json.hpp" "$include/doctest/doctest.h" "$include/eigen3/Eigen/Core" "$include/Spectra/SymEigsSolver.h"; do
  [ -f "$need" ] || { echo "missing $need: apt-get install nlohmann-json3-dev doctest-dev libeigen3-dev libspectra-dev" >&2; exit 1; }
done
mkdir -p .vendor/include/doctest
rm -rf .vendor/include/nlohmann
cp -r "$include/nlohmann" .vendor/include/
cp "$include/doctest/doctest.h" .vendor/include/doctest/
rm -rf .vendor/include/eigen3 .vendor/include/Spectra
mkdir -p .vendor/include/eigen3
cp -r "$include/eigen3/Eigen" .vendor/include/eigen3/
cp -r "$include/Spectra" .vendor/include/
shared=${TILLER_SHARED:-../shared}
if [ -d "$shared/models/stories260K" ]; then
  mkdir -p .vendor/shared/models
  rm -rf .vendor/shared/models/stories260K
  cp -r "$shared/models/stories260K" .vendor/shared/models/
else
  echo "warning: $shared/models/stories260K not found: the stories260K golden test will skip" >&2
fi
du -sh .vendor
