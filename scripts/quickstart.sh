#!/usr/bin/env bash
# The README's first quick-start command: installs what is missing, builds, loads a small demo
# collection into ./rosetta-data (running one explained cross-modal query against it), then
# starts the server on its defaults (./rosetta-data, 127.0.0.1:7700) in the foreground.
# Ctrl-C stops it gracefully.
#
# The demo is the Flickr8k x TinyCLIP set from ../shared/data when present (real image and
# caption embeddings), else 1000 synthetic records generated with a fixed seed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
data="${ROSETTA_DATA:-./rosetta-data}"
build/tools/rosetta-demo --data "$data" --shared ../shared/data --query-out rosetta-demo-query.json
echo
exec build/tools/rosettad --data "$data"
