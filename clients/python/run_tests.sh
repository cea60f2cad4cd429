#!/usr/bin/env bash
# Tests the Python client against a real server: the one entry point for CI and developers.
#
#   clients/python/run_tests.sh [pytest args...]
#
# Creates clients/python/.venv if missing (python3 -m venv; $PYTHON picks another interpreter),
# installs the pinned test requirements (requirements-test.txt, again only when that file
# changed) and this package (non-editable, from this tree, every run), then runs pytest on
# clients/python/tests. Exits with pytest's status (non-zero on any failure).
#
# Environment:
#   ROSETTAD     the rosettad binary (default: build/tools/rosettad of the repository); required.
#   ROSETTA_CLI  the rosetta CLI for the parity tests (default: build/tools/rosetta); the tests
#                that need it are skipped when it does not exist.
#   FLATC        flatc for the generated-code freshness test (default: flatc on PATH).
#   ROSETTA_TEST_SEED  seed of the randomised tests (printed on failure).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"

abspath() { case "$1" in /*) echo "$1" ;; *) echo "$root/$1" ;; esac; }
export ROSETTAD="$(abspath "${ROSETTAD:-build/tools/rosettad}")"
export ROSETTA_CLI="$(abspath "${ROSETTA_CLI:-build/tools/rosetta}")"
if [[ ! -x "$ROSETTAD" ]]; then
  echo "run_tests.sh: rosettad not found at $ROSETTAD (build it, or set ROSETTAD)" >&2
  exit 1
fi
if [[ ! -x "$ROSETTA_CLI" ]]; then
  echo "run_tests.sh: note: no rosetta CLI at $ROSETTA_CLI; the CLI parity tests are skipped" >&2
fi

venv="$here/.venv"
if [[ ! -x "$venv/bin/python" ]]; then
  "$python" -m venv "$venv"
fi
vpy="$venv/bin/python"
stamp="$venv/.requirements-test.sha256"
want="$(sha256sum "$here/requirements-test.txt" | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  "$vpy" -m pip install --quiet --disable-pip-version-check -r "$here/requirements-test.txt"
  echo "$want" > "$stamp"
fi
# Non-editable, from this tree, every run (so the tests see the current source).
"$vpy" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
  --force-reinstall "$here"
rm -rf "$here/build"  # setuptools' scratch directory.

cd "$here"
exec "$vpy" -m pytest -q -p no:cacheprovider tests "$@"
