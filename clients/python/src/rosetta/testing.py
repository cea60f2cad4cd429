"""A throwaway ``rosettad`` for tests: yours as well as ours.

Without pytest::

    from rosetta.testing import start_rosettad

    with start_rosettad() as server:          # free port, temporary data dir
        with server.client() as db:
            db.create_collection({...})

With pytest, enable the fixtures in your ``conftest.py``::

    pytest_plugins = ["rosetta.testing"]

    def test_search(rosettad_server):          # a fresh server per test
        with rosettad_server.client() as db:
            ...

``rosettad_server`` starts a server per test, ``rosettad_session_server`` one per test session
(faster; tests then share its collections). The binary is ``binary=``, else ``$ROSETTAD``, else
``rosettad`` on ``PATH``; the fixtures skip the test with a message saying so when none exists.

The server listens on 127.0.0.1 with port 0 (the kernel picks a free port, which the server
prints in its banner), stores its data in a temporary directory (removed afterwards), runs with
``--sync none`` unless asked otherwise (throwaway data needs no fsync), and is stopped with
SIGTERM, then SIGKILL if it has not exited within ``stop_timeout`` seconds. On Linux it is also
killed if the test process dies (PR_SET_PDEATHSIG), so no server outlives a crashed test run.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

from .aio import AsyncClient
from .client import Client

__all__ = ["RosettadServer", "find_rosettad", "start_rosettad", "RosettadNotFound"]

_BANNER = re.compile(r"listening on (\S+):(\d+)")


class RosettadNotFound(FileNotFoundError):
    """No rosettad binary: pass binary=..., set $ROSETTAD, or put rosettad on PATH."""


def find_rosettad(binary: Optional[str] = None) -> str:
    """The rosettad executable: ``binary``, else ``$ROSETTAD``, else ``rosettad`` on PATH."""
    candidate = binary or os.environ.get("ROSETTAD") or shutil.which("rosettad")
    if not candidate:
        raise RosettadNotFound("no rosettad binary: pass binary=..., set $ROSETTAD, or put "
                               "rosettad on PATH")
    if not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)):
        raise RosettadNotFound(f"rosettad binary {candidate!r} does not exist or is not "
                               "executable")
    return os.path.abspath(candidate)


@dataclass
class RosettadServer:
    """A running rosettad started by :func:`start_rosettad`."""

    host: str
    port: int
    data_dir: str
    banner: str
    process: subprocess.Popen
    log_path: str
    tokens: Dict[str, str] = field(default_factory=dict)  # token -> role.
    stop_timeout: float = 10.0

    @property
    def address(self) -> str:
        """``host:port``, as ``rosetta --server`` takes it."""
        return f"{self.host}:{self.port}"

    def client(self, token: Optional[str] = None, **kwargs: Any) -> Client:
        """A connected :class:`rosetta.Client`. With tokens configured and ``token`` None, the
        first admin token is used."""
        return Client(self.host, self.port, token=self._token(token), **kwargs)

    def async_client(self, token: Optional[str] = None, **kwargs: Any) -> AsyncClient:
        """An :class:`rosetta.AsyncClient` (connects on first use)."""
        return AsyncClient(self.host, self.port, token=self._token(token), **kwargs)

    def _token(self, token: Optional[str]) -> Optional[str]:
        if token is not None or not self.tokens:
            return token
        admins = [t for t, r in self.tokens.items() if r == "admin"]
        return admins[0] if admins else None

    def log(self) -> str:
        """What the server wrote to stderr so far."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: Optional[float] = None) -> int:
        """SIGTERM, wait up to ``timeout`` (default ``stop_timeout``) seconds, then SIGKILL.
        Returns the exit status (negative: killed by that signal)."""
        limit = self.stop_timeout if timeout is None else timeout
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(limit)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _pdeathsig() -> Optional[Any]:
    """A preexec function that makes the child get SIGKILL when this process dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL)
    return preexec


@contextlib.contextmanager
def start_rosettad(binary: Optional[str] = None, *, data_dir: Optional[str] = None,
                   tokens: Union[None, Mapping[str, str], Sequence[str]] = None,
                   sync: str = "none", args: Sequence[str] = (),
                   startup_timeout: float = 60.0, stop_timeout: float = 10.0,
                   keep_data: bool = False) -> Iterator[RosettadServer]:
    """Starts ``rosettad --data DIR --listen 127.0.0.1:0 --sync SYNC [args]`` and yields a
    :class:`RosettadServer` once its banner says where it listens; stops it on exit.

    Args:
        binary: the executable (default: ``$ROSETTAD``, else ``rosettad`` on PATH).
        data_dir: the database directory (default: a temporary one, removed afterwards unless
            ``keep_data``; a given directory is never removed).
        tokens: ``{token: role}`` or ``["role:token", ...]`` (role read, write or admin);
            written to a token file (not the command line). None: an open server.
        sync: ``"none"`` (default, fast) or ``"always"`` (fsync every write batch).
        args: more rosettad flags, e.g. ``["--max-frame-bytes", "1048576"]``.
        startup_timeout: seconds to wait for the banner.
        stop_timeout: seconds between SIGTERM and SIGKILL when stopping.
    """
    exe = find_rosettad(binary)
    work = tempfile.mkdtemp(prefix="rosettad-")
    own_data = data_dir is None
    data = os.path.join(work, "data") if own_data else str(data_dir)
    token_map: Dict[str, str] = {}
    if isinstance(tokens, Mapping):
        token_map = dict(tokens)
    elif tokens is not None:
        for t in tokens:
            role, sep, tok = t.partition(":")
            if not sep:
                role, tok = "admin", t
            token_map[tok] = role
    argv: List[str] = [exe, "--data", data, "--listen", "127.0.0.1:0", "--sync", sync]
    if token_map:
        token_file = os.path.join(work, "tokens")
        with open(token_file, "w", encoding="utf-8") as f:
            for tok, role in token_map.items():
                f.write(f"{role} {tok}\n")
        os.chmod(token_file, 0o600)
        argv += ["--token-file", token_file]
    argv += list(args)
    out_path = os.path.join(work, "stdout.log")
    log_path = os.path.join(work, "stderr.log")
    server: Optional[RosettadServer] = None
    with open(out_path, "wb") as out, open(log_path, "wb") as err:
        # stdout goes to a file, not a pipe: a pipe nobody drains could block the server.
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                preexec_fn=_pdeathsig(), close_fds=True)
    try:
        deadline = time.monotonic() + startup_timeout
        banner = ""
        while True:
            with open(out_path, encoding="utf-8", errors="replace") as f:
                text = f.read()
            if "\n" in text:
                banner = text.split("\n", 1)[0]
                m = _BANNER.search(banner)
                if m is None:
                    raise RuntimeError(f"unexpected rosettad banner {banner!r} (expected "
                                       "'... listening on HOST:PORT ...')")
                break
            if proc.poll() is not None:
                with open(log_path, encoding="utf-8", errors="replace") as f:
                    tail = f.read()[-4000:]
                raise RuntimeError(f"rosettad exited with status {proc.returncode} before "
                                   f"listening: {' '.join(argv)}\n{text}{tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"rosettad printed no banner within {startup_timeout:g} s: "
                                   f"{' '.join(argv)}")
            time.sleep(0.01)
        server = RosettadServer(host=m.group(1), port=int(m.group(2)), data_dir=data,
                                banner=banner, process=proc, log_path=log_path,
                                tokens=token_map, stop_timeout=stop_timeout)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if not keep_data:
            shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------------------------------------
# pytest fixtures (pytest_plugins = ["rosetta.testing"])
# ------------------------------------------------------------------------------------------------

try:
    import pytest as _pytest
except ImportError:  # pragma: no cover - the fixtures need pytest, start_rosettad does not.
    _pytest = None  # type: ignore[assignment]

if _pytest is not None:

    def _server_or_skip() -> Any:
        try:
            find_rosettad()
        except RosettadNotFound as e:
            _pytest.skip(str(e))
        return start_rosettad()

    @_pytest.fixture
    def rosettad_server() -> Iterator[RosettadServer]:
        """A fresh rosettad (open, temporary data dir) for one test."""
        with _server_or_skip() as server:
            yield server

    @_pytest.fixture(scope="session")
    def rosettad_session_server() -> Iterator[RosettadServer]:
        """One rosettad shared by every test of the session."""
        with _server_or_skip() as server:
            yield server
