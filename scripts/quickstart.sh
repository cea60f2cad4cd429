#!/usr/bin/env bash
# Installs what is missing, builds, and loads a small demo collection into ./rosetta-data, then
# runs one cross-modal query against it in embedded mode (the README's first quick-start command).
#
# The demo is the Flickr8k x TinyCLIP set from ../shared/data when present (real image and
# caption embeddings), else 1000 synthetic records generated with a fixed seed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
exec build/tools/rosetta-demo --data "${ROSETTA_DATA:-./rosetta-data}" --shared ../shared/data
