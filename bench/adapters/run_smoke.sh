#!/usr/bin/env bash
# Smoke test of the ann-benchmarks and VectorDBBench adapters (bench/adapters/smoke_test.py).
#
#   bench/adapters/run_smoke.sh              # ROSETTAD=... to pick the server binary
#
# Creates bench/adapters/.venv if missing (override: ROSETTA_ADAPTERS_VENV), installs numpy,
# PyYAML and the Python client (clients/python) into it, never ann-benchmarks or VectorDBBench,
# and runs the smoke test under `nice -n 19`. The server binary is $ROSETTAD, else
# build/tools/rosettad. Exit status: the test's (0 pass or SKIP without data, 1 failures,
# 2 no rosettad).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${ROSETTA_ADAPTERS_VENV:-$here/.venv}"
py="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/python" ]]; then
  echo "creating $venv"
  "$py" -m venv "$venv"
fi
# The client is reinstalled every run (non-editable, quiet) so the test uses the checkout's code.
nice -n 19 "$venv/bin/pip" install --quiet --disable-pip-version-check \
  "numpy>=1.23.5" "PyYAML>=5.4" "$repo/clients/python"

export ROSETTAD="${ROSETTAD:-$repo/build/tools/rosettad}"
exec nice -n 19 "$venv/bin/python" "$here/smoke_test.py" "$@"
