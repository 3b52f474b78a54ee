"""A scripted peer that speaks the protocol's server side, for what a real
sessiond does not do on demand: never answer, send GoAway at a chosen
moment, send a wrong preface, an oversized frame or a status above 16."""
from __future__ import annotations

import queue
import socket
import ssl
import threading
from typing import Callable, List, Optional, Tuple

from sessionclient import rpc_envelope_pb2 as wire

PREFACE = b"SESSRPC\x01"


class FakeConnection:
    def __init__(self, server: "FakeServer", sock: socket.socket, index: int) -> None:
        self.server = server
        self.sock = sock
        self.index = index
        self.envelopes: "queue.Queue[Optional[wire.Envelope]]" = queue.Queue()
        self.client_preface = b""
        self._send_lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _recv_exact(self, n: int) -> Optional[bytes]:
        buf = b""
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
        return buf

    def _run(self) -> None:
        try:
            self.client_preface = self._recv_exact(8) or b""
            if self.server.preface is not None:
                self.send_raw(self.server.preface)
            while True:
                head = self._recv_exact(4)
                if head is None:
                    break
                body = self._recv_exact(int.from_bytes(head, "big"))
                if body is None:
                    break
                env = wire.Envelope()
                env.ParseFromString(body)
                self.envelopes.put(env)
                self.server.envelopes.put((self, env))
                if self.server.on_envelope is not None:
                    self.server.on_envelope(self, env)
        except OSError:
            pass  # the test closed the connection
        finally:
            self.envelopes.put(None)

    def next(self, timeout: float = 10.0, skip_requests: bool = True) -> Optional[wire.Envelope]:
        """The next envelope the client sent on this connection (None: it
        closed); Requests are skipped unless `skip_requests` is False (the
        tests take those from FakeServer.next_request)."""
        while True:
            env = self.envelopes.get(timeout=timeout)
            if env is None or not skip_requests or env.WhichOneof("kind") != "request":
                return env

    def send_raw(self, data: bytes) -> None:
        with self._send_lock:
            self.sock.sendall(data)

    def send(self, env: wire.Envelope) -> None:
        data = env.SerializeToString()
        self.send_raw(len(data).to_bytes(4, "big") + data)

    def respond(self, call_id: int, code: int = 0, message: str = "", payload: Optional[bytes] = b"") -> None:
        env = wire.Envelope(call_id=call_id)
        env.response.status_code = code
        env.response.status_message = message
        if payload is not None and code == 0:
            env.response.payload = payload
        self.send(env)

    def go_away(self, last_call_id: int, code: int = 0, reason: str = "test") -> None:
        env = wire.Envelope(call_id=0)
        env.go_away.last_call_id = last_call_id
        env.go_away.error_code = code
        env.go_away.reason = reason
        self.send(env)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class FakeServer:
    """Accepts connections on 127.0.0.1 (a port the kernel picks) and hands
    every envelope the client sends to the test; answers nothing by itself."""

    def __init__(self, preface: Optional[bytes] = PREFACE, ssl_context: Optional[ssl.SSLContext] = None,
                 on_envelope: Optional[Callable[[FakeConnection, wire.Envelope], None]] = None) -> None:
        self.preface = preface
        self.on_envelope = on_envelope
        self.ssl_context = ssl_context
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.connections: List[FakeConnection] = []
        self.new_connections: "queue.Queue[FakeConnection]" = queue.Queue()
        self.envelopes: "queue.Queue[Tuple[FakeConnection, wire.Envelope]]" = queue.Queue()
        self.accept_errors: List[BaseException] = []
        self._closed = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            if self.ssl_context is not None:
                try:
                    sock = self.ssl_context.wrap_socket(sock, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    self.accept_errors.append(e)
                    sock.close()
                    continue
            conn = FakeConnection(self, sock, len(self.connections))
            self.connections.append(conn)
            self.new_connections.put(conn)

    def next_connection(self, timeout: float = 10.0) -> FakeConnection:
        return self.new_connections.get(timeout=timeout)

    def next_request(self, timeout: float = 10.0) -> Tuple[FakeConnection, wire.Envelope]:
        """The next envelope carrying a Request, on any connection."""
        while True:
            conn, env = self.envelopes.get(timeout=timeout)
            if env.WhichOneof("kind") == "request":
                return conn, env

    def close(self) -> None:
        self._closed = True
        try:
            # shutdown wakes the accept() blocked in the other thread; close alone
            # would leave the socket listening until that accept returns.
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        self.thread.join(5)
        for c in self.connections:
            c.close()

    def __enter__(self) -> "FakeServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
