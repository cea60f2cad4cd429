#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (the README's second
# quick-start command; .ci/run runs exactly this). CUDA tests (label `cuda`) skip with a message
# when no GPU is present.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 600
