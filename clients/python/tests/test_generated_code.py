"""The committed FlatBuffers code (src/rosetta/wire) must be what flatc generates from
schema/protocol.fbs today: regenerate into a temporary directory and compare (regen.sh fixes a
failure)."""

from __future__ import annotations

import filecmp
import os
import pathlib
import shutil
import subprocess

import pytest

import rosetta.wire

CLIENT = pathlib.Path(__file__).resolve().parents[1]
REPO = CLIENT.parents[1]
COMMITTED = CLIENT / "src" / "rosetta" / "wire"
FBS = REPO / "schema" / "protocol.fbs"


def test_generated_code_is_fresh(tmp_path: pathlib.Path) -> None:
    flatc = os.environ.get("FLATC") or shutil.which("flatc")
    if not flatc:
        pytest.skip("flatc not found (install flatbuffers-compiler or set $FLATC)")
    subprocess.run([flatc, "--python", "-o", str(tmp_path), str(FBS)], check=True)
    fresh = tmp_path / "rosetta" / "wire"
    fresh_files = sorted(p.name for p in fresh.glob("*.py"))
    committed_files = sorted(p.name for p in COMMITTED.glob("*.py"))
    hint = "the committed generated code is stale: run clients/python/regen.sh"
    assert committed_files == fresh_files, hint
    _, mismatch, errors = filecmp.cmpfiles(fresh, COMMITTED, fresh_files, shallow=False)
    assert (mismatch, errors) == ([], []), hint


def test_installed_package_is_this_source() -> None:
    """The tests run against the package installed from this tree (run_tests.sh reinstalls it):
    its generated code is the committed one."""
    installed = pathlib.Path(rosetta.wire.__file__).parent
    names = sorted(p.name for p in COMMITTED.glob("*.py"))
    assert sorted(p.name for p in installed.glob("*.py")) == names
    _, mismatch, errors = filecmp.cmpfiles(COMMITTED, installed, names, shallow=False)
    assert (mismatch, errors) == ([], []), "reinstall the package (pip install clients/python)"
