#!/usr/bin/env bash
# Configures and builds Rosetta into ./build (Release with debug info). CUDA kernels are compiled
# when nvcc is found (on PATH or in /usr/local/cuda/bin); set ROSETTA_ENABLE_CUDA=OFF to skip.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${ROSETTA_BUILD_JOBS:-$(nproc)}
launcher=()
if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DROSETTA_ENABLE_CUDA="${ROSETTA_ENABLE_CUDA:-ON}" "${launcher[@]}" >/dev/null
cmake --build build -j"$jobs"
