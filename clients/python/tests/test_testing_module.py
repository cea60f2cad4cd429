"""rosetta.testing: the throwaway server, with and without pytest."""

from __future__ import annotations

import os
import signal

import pytest

import rosetta
from rosetta.testing import RosettadNotFound, find_rosettad, start_rosettad


def test_start_rosettad_context_manager() -> None:
    with start_rosettad() as s:  # $ROSETTAD, set by conftest.
        assert s.running and s.port > 0 and s.host == "127.0.0.1"
        assert "listening on" in s.banner and s.address == f"127.0.0.1:{s.port}"
        assert os.path.isdir(s.data_dir)
        with s.client() as c:
            assert c.server_info.data_dir == s.data_dir
            c.create_collection({"name": "x", "spaces": {"s": {"dim": 2, "metric": "l2"}},
                                 "fields": {"f": {"space": "s", "modality": "m"}}})
        data = s.data_dir
        assert s.stop() == 0  # SIGTERM: a graceful stop.
        assert not s.running
    assert not os.path.exists(data)  # the temporary data dir is removed.


def test_two_servers_get_different_ports_and_data(tmp_path) -> None:
    with start_rosettad(data_dir=str(tmp_path / "a")) as a, start_rosettad() as b:
        assert a.port != b.port and a.data_dir != b.data_dir
        with a.client() as c:
            c.create_collection({"name": "only_a", "spaces": {"s": {"dim": 2, "metric": "ip"}},
                                 "fields": {"f": {"space": "s", "modality": "m"}}})
        with b.client() as c:
            assert c.list_collections() == []
    assert (tmp_path / "a").is_dir()  # a given data dir is kept...
    with start_rosettad(data_dir=str(tmp_path / "a")) as again, again.client() as c:
        assert c.list_collections() == ["only_a"]  # ...and reopened.


def test_tokens_and_extra_args() -> None:
    with start_rosettad(tokens=["read:r", "admin:a"], sync="always",
                        args=["--max-frame-bytes", "100000"]) as s:
        with s.client() as admin:  # the first admin token by default.
            assert admin.server_info.role == "admin"
            assert admin.server_info.max_frame_bytes == 100000
        with s.client("r") as reader:
            assert reader.server_info.role == "read"
        with pytest.raises(rosetta.UnauthenticatedError):
            s.client("nope")


def test_stop_kills_a_server_that_ignores_sigterm() -> None:
    with start_rosettad(stop_timeout=0.2) as s:
        os.kill(s.process.pid, signal.SIGSTOP)  # a stopped process cannot handle SIGTERM.
        assert s.stop() == -signal.SIGKILL


def test_missing_binary_and_startup_failure(tmp_path) -> None:
    with pytest.raises(RosettadNotFound):
        find_rosettad(str(tmp_path / "nope"))
    with pytest.raises(RuntimeError, match="exited with status"):
        with start_rosettad(args=["--no-such-flag"]):
            pass


def test_pytest_fixture(rosettad_server) -> None:
    """The plugin's fixture (enabled with pytest_plugins = ["rosetta.testing"])."""
    with rosettad_server.client() as c:
        assert c.list_collections() == []
