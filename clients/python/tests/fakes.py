"""Test doubles that speak the framing: a scripted fake server and a frame-aware proxy in front
of a real rosettad that can drop connections at chosen points (for the retry tests)."""

from __future__ import annotations

import socket
import struct
import threading
from typing import Callable, List, Optional

import flatbuffers

from rosetta.wire import Error as W_Error
from rosetta.wire import Frame as W_Frame
from rosetta.wire import HelloReply as W_HelloReply
from rosetta.wire.Message import Message


def read_frame(sock: socket.socket) -> Optional[bytes]:
    """One frame body, or None at EOF."""
    head = _read_exact(sock, 4)
    if head is None:
        return None
    (n,) = struct.unpack("<I", head)
    return _read_exact(sock, n)


def _read_exact(sock: socket.socket, n: int) -> Optional[bytes]:
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except OSError:
            return None
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def send_frame(sock: socket.socket, body: bytes) -> None:
    sock.sendall(struct.pack("<I", len(body)) + body)


def request_id_of(body: bytes) -> int:
    return W_Frame.Frame.GetRootAs(body, 0).RequestId()


def frame(request_id: int, body_type: int, build: Callable[[flatbuffers.Builder], int],
          identifier: bytes = b"RSTA") -> bytes:
    b = flatbuffers.Builder(256)
    body = build(b)
    W_Frame.FrameStart(b)
    W_Frame.FrameAddRequestId(b, request_id)
    W_Frame.FrameAddBodyType(b, body_type)
    W_Frame.FrameAddBody(b, body)
    b.Finish(W_Frame.FrameEnd(b), identifier)
    return bytes(b.Output())


def hello_reply(request_id: int = 1, protocol_version: int = 1,
                max_frame_bytes: int = 1 << 20) -> bytes:
    def build(b: flatbuffers.Builder) -> int:
        v = b.CreateString("9.9.9-fake")
        W_HelloReply.HelloReplyStart(b)
        W_HelloReply.HelloReplyAddServerVersion(b, v)
        W_HelloReply.HelloReplyAddProtocolVersion(b, protocol_version)
        W_HelloReply.HelloReplyAddMaxFrameBytes(b, max_frame_bytes)
        W_HelloReply.HelloReplyAddRole(b, 2)
        return W_HelloReply.HelloReplyEnd(b)
    return frame(request_id, Message.HelloReply, build)


def error_reply(request_id: int, code: int, message: str) -> bytes:
    def build(b: flatbuffers.Builder) -> int:
        m = b.CreateString(message)
        W_Error.ErrorStart(b)
        W_Error.ErrorAddCode(b, code)
        W_Error.ErrorAddMessage(b, m)
        return W_Error.ErrorEnd(b)
    return frame(request_id, Message.Error, build)


class FakeServer:
    """Accepts connections on 127.0.0.1 and runs ``handler(sock)`` for each in a thread."""

    def __init__(self, handler: Callable[[socket.socket], None]) -> None:
        self.handler = handler
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections: List[socket.socket] = []
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> "FakeServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self.listener.close()
        for c in self.connections:
            try:
                c.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.handler(conn)
        except OSError:
            pass


class DroppingProxy:
    """A frame-aware TCP proxy to ``port``: forwards each request frame and its reply, except
    that while ``drop_replies`` > 0 it forwards a request, swallows the server's reply and closes
    the client's connection (the request ran; the client never hears of it). ``requests``
    counts the request frames forwarded (Hellos excluded); ``drop_by_type[message type] = n``
    drops the replies to the next n requests of that type; ``kill_all()`` closes every proxied
    connection at once (as a restarting server would)."""

    def __init__(self, port: int) -> None:
        self.upstream_port = port
        self.drop_replies = 0
        self.drop_by_type: dict = {}
        self.requests = 0
        self.requests_by_type: dict = {}
        self._lock = threading.Lock()
        self._socks: List[socket.socket] = []
        self.server = FakeServer(self._handle)
        self.port = self.server.port

    def __enter__(self) -> "DroppingProxy":
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill_all()
        self.server.__exit__()

    def kill_all(self) -> None:
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _handle(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        with self._lock:
            self._socks += [client, upstream]
        first = True
        while True:
            req = read_frame(client)
            if req is None:
                break
            send_frame(upstream, req)
            t = W_Frame.Frame.GetRootAs(req, 0).BodyType()
            if not first:
                with self._lock:
                    self.requests += 1
                    self.requests_by_type[t] = self.requests_by_type.get(t, 0) + 1
            rep = read_frame(upstream)
            if rep is None:
                break
            with self._lock:
                drop = not first and (self.drop_replies > 0 or self.drop_by_type.get(t, 0) > 0)
                if drop:
                    if self.drop_by_type.get(t, 0) > 0:
                        self.drop_by_type[t] -= 1
                    else:
                        self.drop_replies -= 1
            first = False
            if drop:
                break
            send_frame(client, rep)
        for s in (client, upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
