#!/usr/bin/env bash
# Regenerates the FlatBuffers Python code of the wire protocol (src/rosetta/wire/) from
# schema/protocol.fbs. Run it after every change to protocol.fbs and commit the result;
# tests/test_generated_code.py fails while the committed code is stale.
#   FLATC=/path/to/flatc clients/python/regen.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
flatc="${FLATC:-flatc}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$flatc" --python -o "$tmp" "$root/schema/protocol.fbs"
# flatc writes rosetta/__init__.py and rosetta/wire/*.py (the namespace rosetta.wire); only the
# wire package is generated code: rosetta/__init__.py is the client's own.
out="$here/src/rosetta/wire"
rm -rf "$out"
mkdir -p "$out"
cp "$tmp"/rosetta/wire/*.py "$out"/
echo "regenerated $(ls "$out" | wc -l) files in ${out#"$root"/} with $("$flatc" --version)"
