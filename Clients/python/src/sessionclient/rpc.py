"""The session RPC protocol (docs/PROTOCOL.md) over one multiplexed connection.

A `Channel` is a client's view of one server, as the Swift client's
`RPCClientChannel`: a single connection shared by every concurrent call,
opened on first use, re-opened with exponential back-off after it fails, and
replaced when the server sends GoAway (calls in flight finish on the old one).

Each connection has one I/O thread that alone touches the socket (which keeps
TLS sockets correct: OpenSSL objects must not be read and written from two
threads at once). Callers queue frames and wake it; it writes, reads, parses
frames, completes calls and enforces the local deadlines. The public API is
synchronous and thread-safe.
"""
from __future__ import annotations

import heapq
import random
import selectors
import socket
import ssl
import threading
import time
from enum import IntEnum
from typing import (Any, Callable, Dict, Generic, Iterable, Iterator, List, Mapping, Optional, Tuple, Type,
                    TypeVar, Union)

from google.protobuf.message import DecodeError, Message

from .generated import rpc_envelope_pb2 as wire

PREFACE = b"SESSRPC\x01"
PROTOCOL_VERSION = 1
DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024
# Room left in a frame for the envelope around a request's payload.
_ENVELOPE_ROOM = 512
# The local deadline fires this long after the one sent to the server, which
# normally answers DEADLINE_EXCEEDED first.
DEADLINE_GRACE = 0.020

T = TypeVar("T", bound=Message)

MetadataValue = Union[str, bytes]
MetadataLike = Union[Iterable[Tuple[str, MetadataValue]], Mapping[str, MetadataValue]]
Metadata = List[Tuple[str, MetadataValue]]


class StatusCode(IntEnum):
    """gRPC's canonical status codes (PROTOCOL.md section 6)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16

    @classmethod
    def from_wire(cls, value: int) -> "StatusCode":
        """A code off the wire; anything above 16 is UNKNOWN."""
        return cls(value) if 0 <= value <= 16 else cls.UNKNOWN


class RPCError(Exception):
    """A call that ended with a status other than OK, from the server or from
    this client (deadline, cancellation, connection lost, bad argument)."""

    def __init__(self, code: Union[StatusCode, int], message: str = "", *,
                 initial_metadata: Optional[Metadata] = None, trailing_metadata: Optional[Metadata] = None) -> None:
        self.code = StatusCode.from_wire(int(code))
        self.message = message
        self.initial_metadata: Metadata = list(initial_metadata or [])
        self.trailing_metadata: Metadata = list(trailing_metadata or [])
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}" if self.message else self.code.name

    def __repr__(self) -> str:
        return f"RPCError({self.code.name}, {self.message!r})"


# ----------------------------------------------------------------- metadata

_KEY_BYTES = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyz-_.")


def _metadata_pairs(metadata: Optional[MetadataLike]) -> List[Tuple[str, MetadataValue]]:
    if not metadata:
        return []
    if isinstance(metadata, Mapping):
        return list(metadata.items())
    return list(metadata)


def encode_metadata(pairs: Iterable[Tuple[str, MetadataValue]]) -> List[Any]:
    """Validates metadata as the server will (PROTOCOL.md section 5) and returns
    wire entries; raises RPCError(INVALID_ARGUMENT) naming the problem."""
    entries = []
    for key, value in pairs:
        if not isinstance(key, str):
            raise RPCError(StatusCode.INVALID_ARGUMENT, f"metadata key {key!r} is not a string")
        raw = key.encode("utf-8")
        if not 1 <= len(raw) <= 255:
            raise RPCError(StatusCode.INVALID_ARGUMENT, f"metadata key {key[:32]!r} must be 1 to 255 bytes")
        if any(b not in _KEY_BYTES for b in raw):
            raise RPCError(StatusCode.INVALID_ARGUMENT,
                           f"metadata key {key!r} may contain only lower-case letters, digits, '-', '_' and '.'")
        if key.startswith("grpc-"):
            raise RPCError(StatusCode.INVALID_ARGUMENT, f"metadata key {key!r} uses the reserved 'grpc-' prefix")
        if key.endswith("-bin"):
            if isinstance(value, str):
                value = value.encode("utf-8")
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise RPCError(StatusCode.INVALID_ARGUMENT, f"metadata value of {key!r} must be bytes")
            data = bytes(value)
        else:
            if isinstance(value, str):
                try:
                    data = value.encode("ascii")
                except UnicodeEncodeError:
                    data = b"\x00"
            elif isinstance(value, (bytes, bytearray, memoryview)):
                data = bytes(value)
            else:
                raise RPCError(StatusCode.INVALID_ARGUMENT, f"metadata value of {key!r} must be a string")
            if any(b < 0x20 or b > 0x7E for b in data):
                raise RPCError(StatusCode.INVALID_ARGUMENT,
                               f"metadata value of {key!r} must be printable ASCII; use a '-bin' key for bytes")
        entries.append(wire.MetadataEntry(key=key, value=data))
    return entries


def decode_metadata(entries: Iterable[Any]) -> Metadata:
    """Wire entries as (key, value) pairs: bytes for '-bin' keys, str otherwise."""
    out: Metadata = []
    for e in entries:
        if e.key.endswith("-bin"):
            out.append((e.key, bytes(e.value)))
        else:
            out.append((e.key, bytes(e.value).decode("latin-1")))
    return out


# ----------------------------------------------------------------- framing

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _frame(call_id: int, field: int, body: bytes) -> bytes:
    """One frame: length, then Envelope{call_id, <field> = body} (body is an
    already serialized message of the oneof `kind`)."""
    env = b"\x08" + _varint(call_id) if call_id else b""
    env += _varint(field << 3 | 2) + _varint(len(body)) + body
    return len(env).to_bytes(4, "big") + env


_REQUEST, _CANCEL, _PING, _PONG, _GOAWAY = 2, 5, 6, 7, 8


class _Outcome:
    """How a call ended, as it came off the wire (or locally)."""

    __slots__ = ("code", "message", "payload", "initial_metadata", "trailing_metadata", "not_started")

    def __init__(self, code: StatusCode, message: str = "", payload: Optional[bytes] = None,
                 initial_metadata: Optional[Metadata] = None, trailing_metadata: Optional[Metadata] = None,
                 not_started: bool = False) -> None:
        self.code = code
        self.message = message
        self.payload = payload
        self.initial_metadata = initial_metadata or []
        self.trailing_metadata = trailing_metadata or []
        # The server certainly never started the call (it went away first):
        # safe to retry on a new connection.
        self.not_started = not_started

    @classmethod
    def failure(cls, error: RPCError, not_started: bool = False) -> "_Outcome":
        return cls(error.code, error.message, None, error.initial_metadata, error.trailing_metadata, not_started)

    def error(self) -> Optional[RPCError]:
        if self.code == StatusCode.OK:
            return None
        return RPCError(self.code, self.message, initial_metadata=self.initial_metadata,
                        trailing_metadata=self.trailing_metadata)


class _Pending:
    __slots__ = ("on_end", "on_message", "deadline", "saw_initial")

    def __init__(self, on_end: Callable[[_Outcome], None],
                 on_message: Optional[Callable[[bytes, Metadata], None]], deadline: Optional[float]) -> None:
        self.on_end = on_end
        self.on_message = on_message
        self.deadline = deadline
        self.saw_initial = False


class _Lost(Exception):
    """Ends a connection's I/O loop with a reason."""


# ----------------------------------------------------------------- connection

class Connection:
    """One connection: a socket, its I/O thread and the calls in flight."""

    def __init__(self, sock: socket.socket, peer: str, max_frame_bytes: int,
                 on_close: Callable[["Connection"], None]) -> None:
        self.peer = peer
        self._sock = sock
        self._max_frame = max_frame_bytes
        self._on_close = on_close
        self._lock = threading.Lock()
        self._out = bytearray(PREFACE)
        self._calls: Dict[int, _Pending] = {}
        self._timers: List[Tuple[float, int]] = []
        self._pings: Dict[int, Tuple[float, threading.Event, list]] = {}
        self._next_id = 1
        self._next_ping = 1
        self._closed = False
        self._close_reason = ""
        self._close_requested: Optional[str] = None
        self._goaway: Optional[Tuple[int, int, str]] = None
        self._inbuf = bytearray()
        self._preface_ok = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._wake_pending = False
        self._thread = threading.Thread(target=self._run, name=f"sessionclient {peer}", daemon=True)
        self._thread.start()

    @property
    def usable(self) -> bool:
        """False once the server said GoAway or the connection closed: new
        calls must go to a new connection."""
        return not self._closed and self._goaway is None and self._close_requested is None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def calls_in_flight(self) -> int:
        with self._lock:
            return len(self._calls)

    # -- calls (any thread)

    def start_call(self, path: str, timeout: Optional[float], metadata: List[Any], payload: bytes,
                   on_end: Callable[[_Outcome], None],
                   on_message: Optional[Callable[[bytes, Metadata], None]] = None) -> Optional[int]:
        """Queues a call's Request; returns its id, or None after reporting an
        immediate failure to `on_end` (from this thread)."""
        request = wire.Request(method=path, metadata=metadata, payload=payload)
        if timeout is not None:
            request.timeout_micros = max(1, int(timeout * 1_000_000))
        body = request.SerializeToString()
        failure: Optional[_Outcome] = None
        with self._lock:
            if not self.usable:
                code = StatusCode.UNAVAILABLE
                if self._goaway is None:
                    reason = f"connection to {self.peer} closed: {self._close_reason or self._close_requested}"
                else:
                    # The GoAway may have come before this call (a server refusing every call says
                    # why in it): the caller gets its code and reason, as calls it cut off do.
                    _, error_code, why = self._goaway
                    code = StatusCode.UNAVAILABLE if error_code == 0 else StatusCode.from_wire(error_code)
                    reason = f"server {self.peer} went away: {why}" if why else f"server {self.peer} is going away"
                failure = _Outcome.failure(RPCError(code, reason), not_started=True)
            elif len(body) > self._max_frame - _ENVELOPE_ROOM:
                failure = _Outcome.failure(RPCError(
                    StatusCode.RESOURCE_EXHAUSTED,
                    f"request of {len(payload)} bytes exceeds the frame limit of {self._max_frame} bytes"))
            else:
                call_id = self._next_id
                self._next_id += 1
                deadline = None if timeout is None else time.monotonic() + timeout
                self._calls[call_id] = _Pending(on_end, on_message, deadline)
                if deadline is not None:
                    if len(self._timers) > 1024 and len(self._timers) > 4 * len(self._calls):
                        # Entries of calls that ended long before their deadline.
                        self._timers = [(p.deadline + DEADLINE_GRACE, i) for i, p in self._calls.items()
                                        if p.deadline is not None]
                        heapq.heapify(self._timers)
                    heapq.heappush(self._timers, (deadline + DEADLINE_GRACE, call_id))
                self._out += _frame(call_id, _REQUEST, body)
                self._wake_locked()
                return call_id
        on_end(failure)
        return None

    def cancel_call(self, call_id: int, error: RPCError, reason: str = "cancelled by the client") -> bool:
        """Ends a call locally with `error` and tells the server (Cancel).
        False when the call had already ended."""
        with self._lock:
            pending = self._calls.pop(call_id, None)
            if pending is None:
                return False
            if not self._closed:
                self._out += _frame(call_id, _CANCEL, wire.Cancel(reason=reason).SerializeToString())
                if self._goaway is not None and not self._calls:
                    self._close_requested = self._close_requested or "server went away"
                self._wake_locked()
        pending.on_end(_Outcome.failure(error))
        return True

    def ping(self, timeout: float) -> float:
        """Round trip of a protocol Ping, in seconds."""
        event = threading.Event()
        result: list = []
        with self._lock:
            if self._closed:
                raise RPCError(StatusCode.UNAVAILABLE, f"connection to {self.peer} closed: {self._close_reason}")
            opaque = self._next_ping
            self._next_ping += 1
            self._pings[opaque] = (time.monotonic(), event, result)
            self._out += _frame(0, _PING, wire.Ping(opaque=opaque).SerializeToString())
            self._wake_locked()
        if not event.wait(timeout):
            with self._lock:
                self._pings.pop(opaque, None)
            raise RPCError(StatusCode.DEADLINE_EXCEEDED, "no pong within the timeout")
        if not result or result[0] is None:
            raise RPCError(StatusCode.UNAVAILABLE, f"connection to {self.peer} closed: {self._close_reason}")
        return result[0]

    def close(self, reason: str = "closed by the client") -> None:
        """Closes the connection soon; calls in flight fail with UNAVAILABLE."""
        with self._lock:
            if self._closed or self._close_requested is not None:
                return
            self._close_requested = reason
            self._wake_locked()

    def join(self, timeout: Optional[float] = None) -> None:
        self._thread.join(timeout)

    def _wake_locked(self) -> None:
        if self._wake_pending or self._closed:
            return
        self._wake_pending = True
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass

    # -- I/O thread

    def _run(self) -> None:
        reason = "closed"
        sel = selectors.DefaultSelector()
        try:
            sel.register(self._sock, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            writing = False
            while True:
                with self._lock:
                    if self._close_requested is not None:
                        reason = self._close_requested
                        break
                    want_write = bool(self._out)
                    timeout = None
                    if self._timers:
                        timeout = max(0.0, self._timers[0][0] - time.monotonic())
                if want_write != writing:
                    sel.modify(self._sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0))
                    writing = want_write
                for key, mask in sel.select(timeout):
                    if key.fileobj is self._wake_r:
                        with self._lock:
                            self._wake_pending = False
                            try:
                                while self._wake_r.recv(4096):
                                    pass
                            except (BlockingIOError, InterruptedError):
                                pass
                    elif mask & selectors.EVENT_READ:
                        self._read()
                self._flush()
                self._fire_deadlines()
            # Closing on purpose: push out what is queued (a Cancel) if the socket takes it now.
            try:
                self._flush()
            except _Lost:
                pass
        except _Lost as e:
            reason = str(e)
        except Exception as e:  # a bug here must not leave calls hanging
            reason = f"client I/O error: {e!r}"
        finally:
            sel.close()
            self._shutdown(reason)

    def _read(self) -> None:
        for _ in range(64):
            try:
                data = self._sock.recv(65536)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            except OSError as e:
                raise _Lost(f"read failed: {e.strerror or e}")
            if not data:
                raise _Lost("server went away" if self._goaway is not None else "server closed the connection")
            self._received(data)
            if self._close_requested is not None:
                return
            pending = getattr(self._sock, "pending", None)
            if len(data) < 65536 and not (pending and pending()):
                return

    def _flush(self) -> None:
        while True:
            with self._lock:
                if not self._out:
                    return
                chunk = bytes(self._out[:1 << 20])
            try:
                n = self._sock.send(chunk)
            except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                return
            except OSError as e:
                # The server may have said why before it closed (a GoAway): read that first.
                reason = f"write failed: {e.strerror or e}"
                try:
                    self._read()
                except _Lost:
                    pass
                raise _Lost(reason)
            with self._lock:
                del self._out[:n]

    def _received(self, data: bytes) -> None:
        buf = self._inbuf
        buf += data
        pos = 0
        if not self._preface_ok:
            if len(buf) < len(PREFACE):
                return
            got = bytes(buf[:8])
            pos = 8
            if got[:7] != PREFACE[:7]:
                raise _Lost(f"{self.peer} is not a session RPC server (unexpected preface)")
            if got[7] != PROTOCOL_VERSION:
                raise _Lost(f"server speaks protocol version {got[7]}, this client {PROTOCOL_VERSION}")
            self._preface_ok = True
        try:
            while len(buf) - pos >= 4:
                n = int.from_bytes(buf[pos:pos + 4], "big")
                if n > self._max_frame:
                    raise _Lost(f"server sent a frame of {n} bytes, over the limit of {self._max_frame}")
                if len(buf) - pos - 4 < n:
                    break
                envelope = wire.Envelope()
                try:
                    envelope.ParseFromString(bytes(buf[pos + 4:pos + 4 + n]))
                except DecodeError as e:
                    raise _Lost(f"server sent an invalid frame: {e}")
                pos += 4 + n
                self._handle(envelope)
        finally:
            del buf[:pos]

    def _handle(self, env: Any) -> None:
        kind = env.WhichOneof("kind")
        if kind == "response":
            r = env.response
            with self._lock:
                pending = self._calls.pop(env.call_id, None)
                if self._goaway is not None and not self._calls:
                    self._close_requested = self._close_requested or "server went away"
            if pending is not None:
                pending.on_end(_Outcome(
                    StatusCode.from_wire(r.status_code), r.status_message,
                    r.payload if r.HasField("payload") else None,
                    decode_metadata(r.initial_metadata), decode_metadata(r.trailing_metadata)))
        elif kind == "stream_message":
            with self._lock:
                pending = self._calls.get(env.call_id)
                if pending is None or pending.on_message is None:
                    return
                first = not pending.saw_initial
                pending.saw_initial = True
            m = env.stream_message
            pending.on_message(m.payload, decode_metadata(m.initial_metadata) if first else [])
        elif kind == "ping":
            with self._lock:
                self._out += _frame(0, _PONG, wire.Pong(opaque=env.ping.opaque).SerializeToString())
        elif kind == "pong":
            with self._lock:
                entry = self._pings.pop(env.pong.opaque, None)
            if entry is not None:
                sent, event, result = entry
                result.append(time.monotonic() - sent)
                event.set()
        elif kind == "go_away":
            g = env.go_away
            with self._lock:
                first = self._goaway is None
                self._goaway = (g.last_call_id, g.error_code, g.reason)
                victims = [self._calls.pop(i) for i in sorted(self._calls) if i > g.last_call_id]
                if not self._calls:
                    self._close_requested = self._close_requested or f"server went away: {g.reason}"
            code = StatusCode.UNAVAILABLE if g.error_code == 0 else StatusCode.from_wire(g.error_code)
            error = RPCError(code, f"server {self.peer} went away: {g.reason}")
            for pending in victims:
                pending.on_end(_Outcome.failure(error, not_started=True))
            if first:
                self._on_close(self)
        elif kind in ("request", "cancel"):
            raise _Lost("server sent a client-only frame")
        else:
            raise _Lost("server sent a frame of no known kind")

    def _fire_deadlines(self) -> None:
        expired = []
        now = time.monotonic()
        with self._lock:
            while self._timers and self._timers[0][0] <= now:
                _, call_id = heapq.heappop(self._timers)
                pending = self._calls.get(call_id)
                if pending is None or pending.deadline is None or pending.deadline + DEADLINE_GRACE > now:
                    continue
                del self._calls[call_id]
                self._out += _frame(call_id, _CANCEL, wire.Cancel(reason="deadline exceeded").SerializeToString())
                expired.append(pending)
            if expired and self._goaway is not None and not self._calls:
                self._close_requested = self._close_requested or "server went away"
        error = RPCError(StatusCode.DEADLINE_EXCEEDED, "deadline exceeded before the server answered")
        for pending in expired:
            pending.on_end(_Outcome.failure(error))

    def _shutdown(self, reason: str) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._close_reason = reason
            victims = list(self._calls.values())
            self._calls.clear()
            self._timers.clear()
            pings = list(self._pings.values())
            self._pings.clear()
        error = RPCError(StatusCode.UNAVAILABLE, f"connection to {self.peer} lost: {reason}")
        for pending in victims:
            try:
                pending.on_end(_Outcome.failure(error))
            except Exception:
                pass
        for _, event, result in pings:
            result.append(None)
            event.set()
        for s in (self._sock, self._wake_r, self._wake_w):
            try:
                s.close()
            except OSError:
                pass
        self._on_close(self)


# ----------------------------------------------------------------- channel

def _parse_address(address: str) -> Tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise RPCError(StatusCode.INVALID_ARGUMENT, f"'{address}' is not a HOST:PORT address")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return host, int(port)


def _remaining(deadline: Optional[float]) -> Optional[float]:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise RPCError(StatusCode.DEADLINE_EXCEEDED, "deadline exceeded before the call started")
    return left


class Channel:
    """A client's view of one server: a single multiplexed connection shared
    by every concurrent call, opened on first use and re-opened with
    exponential back-off after it fails.

    `address` is ``HOST:PORT`` (``[v6]:PORT`` for IPv6). `metadata` is sent
    with every call, before the call's own. `ssl_context` wraps each new
    socket in TLS (`server_hostname` defaults to the host). `default_timeout`
    (seconds) applies to unary calls that pass none.
    """

    def __init__(self, address: str, *, metadata: MetadataLike = (), ssl_context: Optional[ssl.SSLContext] = None,
                 server_hostname: Optional[str] = None, connect_timeout: float = 5.0,
                 initial_backoff: float = 0.1, max_backoff: float = 5.0, backoff_multiplier: float = 1.6,
                 max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES, default_timeout: Optional[float] = None) -> None:
        self.host, self.port = _parse_address(address)
        self.address = address
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname
        self.connect_timeout = connect_timeout
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.backoff_multiplier = backoff_multiplier
        self.max_frame_bytes = max_frame_bytes
        self.default_timeout = default_timeout
        self._default_metadata = _metadata_pairs(metadata)
        encode_metadata(self._default_metadata)  # fail now, not on every call
        self._cond = threading.Condition()
        self._conn: Optional[Connection] = None
        self._connecting = False
        self._failures = 0
        self._retry_at = 0.0
        self._last_error: Optional[RPCError] = None
        self._closed = False
        self._connects = 0
        self._goaways = 0

    @property
    def stats(self) -> Dict[str, int]:
        """Counters: `connects` (connections opened), `goaways` (received)."""
        with self._cond:
            return {"connects": self._connects, "goaways": self._goaways}

    def close(self) -> None:
        """Closes the connection; calls in flight and later calls fail with UNAVAILABLE."""
        with self._cond:
            self._closed = True
            conn, self._conn = self._conn, None
            self._cond.notify_all()
        if conn is not None:
            conn.close()
            if threading.current_thread() is not conn._thread:
                conn.join(2.0)

    def __enter__(self) -> "Channel":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- calls

    def unary(self, method: str, request: Message, request_type: Type[Message], response_type: Type[T], *,
              timeout: Optional[float] = None, metadata: MetadataLike = (), wait_for_ready: bool = False) -> T:
        """A unary call: returns the response message or raises RPCError."""
        call = self.unary_call(method, request, request_type, response_type, timeout=timeout, metadata=metadata,
                               wait_for_ready=wait_for_ready)
        try:
            return call.result()
        except KeyboardInterrupt:
            call.cancel()
            raise

    def unary_call(self, method: str, request: Message, request_type: Type[Message], response_type: Type[T], *,
                   timeout: Optional[float] = None, metadata: MetadataLike = (),
                   wait_for_ready: bool = False) -> "UnaryCall[T]":
        """Starts a unary call and returns it at once (a future: `result()`, `cancel()`)."""
        payload = self._payload(method, request, request_type)
        if timeout is None:
            timeout = self.default_timeout
        call: UnaryCall[T] = UnaryCall(self, method, payload, response_type, self._deadline(timeout),
                                       self._merged(metadata), wait_for_ready)
        call._attempt()
        return call

    def server_streaming(self, method: str, request: Message, request_type: Type[Message], response_type: Type[T], *,
                         timeout: Optional[float] = None, metadata: MetadataLike = (),
                         wait_for_ready: bool = False) -> "ResponseStream[T]":
        """Starts a server-streaming call; iterate the result for its messages."""
        payload = self._payload(method, request, request_type)
        return ResponseStream(self, method, payload, response_type, self._deadline(timeout),
                              self._merged(metadata), wait_for_ready)

    def ping(self, timeout: float = 5.0) -> float:
        """Round trip of a protocol Ping on the shared connection, in seconds."""
        deadline = time.monotonic() + timeout
        conn = self._connection(deadline, False)
        return conn.ping(max(0.001, deadline - time.monotonic()))

    # -- internals

    @staticmethod
    def _payload(method: str, request: Message, request_type: Type[Message]) -> bytes:
        if not isinstance(request, request_type):
            raise TypeError(f"{method} takes a {request_type.DESCRIPTOR.full_name}, "
                            f"not {type(request).__name__}")
        return request.SerializeToString()

    @staticmethod
    def _deadline(timeout: Optional[float]) -> Optional[float]:
        if timeout is None:
            return None
        return time.monotonic() + max(0.0, float(timeout))

    def _merged(self, metadata: MetadataLike) -> List[Any]:
        return encode_metadata(self._default_metadata + _metadata_pairs(metadata))

    def _connection(self, deadline: Optional[float], wait_for_ready: bool) -> Connection:
        """The shared connection, opened if needed (one thread connects, the others wait)."""
        while True:
            with self._cond:
                if self._closed:
                    raise RPCError(StatusCode.UNAVAILABLE, "channel is closed")
                conn = self._conn
                if conn is not None:
                    if conn.usable:
                        return conn
                    self._conn = None
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    raise RPCError(StatusCode.DEADLINE_EXCEEDED, "deadline exceeded while waiting for a connection"
                                   + (f": {self._last_error.message}" if self._last_error else ""))
                if self._connecting:
                    self._cond.wait(None if deadline is None else deadline - now)
                    continue
                if now < self._retry_at:
                    if not wait_for_ready:
                        ms = int((self._retry_at - now) * 1000)
                        last = self._last_error.message if self._last_error else "server unreachable"
                        raise RPCError(StatusCode.UNAVAILABLE, f"{last}; retrying in {ms} ms")
                    if deadline is not None and self._retry_at > deadline:
                        raise RPCError(StatusCode.DEADLINE_EXCEEDED,
                                       "deadline exceeded while waiting to reconnect: "
                                       + (self._last_error.message if self._last_error else ""))
                    self._cond.wait(self._retry_at - now)
                    continue
                self._connecting = True
            try:
                conn = self._connect_once()
            except RPCError as e:
                with self._cond:
                    self._connecting = False
                    self._failures += 1
                    self._last_error = e
                    self._retry_at = time.monotonic() + self._backoff(self._failures)
                    self._cond.notify_all()
                if not wait_for_ready:
                    raise
                continue
            except BaseException:
                with self._cond:
                    self._connecting = False
                    self._cond.notify_all()
                raise
            with self._cond:
                self._connecting = False
                self._connects += 1
                if self._closed:
                    self._cond.notify_all()
                    conn.close("channel closed")
                    raise RPCError(StatusCode.UNAVAILABLE, "channel is closed")
                self._conn = conn
                self._failures = 0
                self._last_error = None
                self._cond.notify_all()
                return conn

    def _backoff(self, failures: int) -> float:
        base = self.initial_backoff * self.backoff_multiplier ** (failures - 1)
        return min(base, self.max_backoff) * random.uniform(0.8, 1.2)

    def _connect_once(self) -> Connection:
        peer = f"{self.host}:{self.port}"
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError as e:
            raise RPCError(StatusCode.UNAVAILABLE, f"cannot connect to {peer}: {e.strerror or e}")
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.server_hostname or self.host)
            sock.setblocking(False)
        except ssl.SSLError as e:
            sock.close()
            raise RPCError(StatusCode.UNAVAILABLE, f"TLS handshake with {peer} failed: {e}")
        except OSError as e:
            sock.close()
            raise RPCError(StatusCode.UNAVAILABLE, f"cannot connect to {peer}: {e.strerror or e}")
        return Connection(sock, peer, self.max_frame_bytes, self._connection_closed)

    def _connection_closed(self, conn: Connection) -> None:
        """From a connection's I/O thread: it closed or got a GoAway."""
        with self._cond:
            if not conn.closed:
                self._goaways += 1
            if self._conn is conn:
                self._conn = None
            self._cond.notify_all()


# ----------------------------------------------------------------- calls

class UnaryCall(Generic[T]):
    """A unary call in flight; a future for its response.

    A call the server certainly never started (it went away first) is retried
    once on a fresh connection, within the call's deadline, as the Swift
    client does.
    """

    def __init__(self, channel: Channel, method: str, payload: bytes, response_type: Type[T],
                 deadline: Optional[float], metadata: List[Any], wait_for_ready: bool) -> None:
        self.method = method
        self._channel = channel
        self._payload = payload
        self._response_type = response_type
        self._deadline = deadline
        self._metadata = metadata
        self._wait_for_ready = wait_for_ready
        self._cond = threading.Condition()
        self._outcome: Optional[_Outcome] = None
        self._attempts = 0
        self._cancelled = False
        self._conn: Optional[Connection] = None
        self._call_id: Optional[int] = None
        self._callbacks: List[Callable[["UnaryCall[T]"], None]] = []
        self._response: Optional[T] = None

    def _attempt(self) -> None:
        self._attempts += 1
        try:
            conn = self._channel._connection(self._deadline, self._wait_for_ready)
            remaining = _remaining(self._deadline)
        except RPCError as e:
            self._finish(_Outcome.failure(e))
            return
        with self._cond:
            if self._outcome is not None:
                return
            self._conn, self._call_id = conn, None
        call_id = conn.start_call(self.method, remaining, self._metadata, self._payload, self._on_end)
        with self._cond:
            if self._conn is conn:
                self._call_id = call_id
            cancelled = self._cancelled
        if cancelled and call_id is not None:
            conn.cancel_call(call_id, RPCError(StatusCode.CANCELLED, "call was cancelled"))

    def _on_end(self, outcome: _Outcome) -> None:
        if outcome.not_started and self._attempts < 2 and not self._cancelled:
            # Not on this (I/O or caller) thread: connecting may block.
            threading.Thread(target=self._attempt, name="sessionclient retry", daemon=True).start()
            return
        self._finish(outcome)

    def _finish(self, outcome: _Outcome) -> None:
        with self._cond:
            if self._outcome is not None:
                return
            self._outcome = outcome
            self._cond.notify_all()
            callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            cb(self)

    # -- public

    def result(self, timeout: Optional[float] = None) -> T:
        """Waits for the response; raises RPCError when the call failed, or
        TimeoutError when `timeout` (seconds; the wait, not the call's
        deadline) passes first."""
        outcome = self._wait(timeout)
        error = outcome.error()
        if error is not None:
            raise error
        if self._response is None:
            if outcome.payload is None:
                raise RPCError(StatusCode.INTERNAL, f"server ended {self.method} with OK but sent no response message")
            try:
                self._response = self._response_type.FromString(outcome.payload)
            except DecodeError as e:
                raise RPCError(StatusCode.INTERNAL, f"response of {self.method} could not be decoded: {e}")
        return self._response

    def exception(self, timeout: Optional[float] = None) -> Optional[RPCError]:
        """Waits for the end; the RPCError it failed with, or None."""
        try:
            self.result(timeout)
        except RPCError as e:
            return e
        return None

    def cancel(self) -> bool:
        """Cancels the call (the server is told); False when it had already ended."""
        with self._cond:
            if self._outcome is not None:
                return False
            self._cancelled = True
            conn, call_id = self._conn, self._call_id
        error = RPCError(StatusCode.CANCELLED, "call was cancelled")
        if conn is not None and call_id is not None:
            conn.cancel_call(call_id, error)
        self._finish(_Outcome.failure(error))
        return True

    def done(self) -> bool:
        with self._cond:
            return self._outcome is not None

    def cancelled(self) -> bool:
        with self._cond:
            return self._cancelled and self._outcome is not None and self._outcome.code == StatusCode.CANCELLED

    def add_done_callback(self, fn: Callable[["UnaryCall[T]"], None]) -> None:
        """Calls `fn(call)` when the call ends (at once if it has); from the
        thread that ends it, so keep `fn` short."""
        with self._cond:
            if self._outcome is None:
                self._callbacks.append(fn)
                return
        fn(self)

    @property
    def initial_metadata(self) -> Optional[Metadata]:
        """The server's initial metadata, once the call has ended."""
        return None if self._outcome is None else self._outcome.initial_metadata

    @property
    def trailing_metadata(self) -> Optional[Metadata]:
        """The server's trailing metadata, once the call has ended."""
        return None if self._outcome is None else self._outcome.trailing_metadata

    def _wait(self, timeout: Optional[float]) -> _Outcome:
        with self._cond:
            if not self._cond.wait_for(lambda: self._outcome is not None, timeout):
                raise TimeoutError(f"{self.method} has not ended yet")
            assert self._outcome is not None
            return self._outcome


_MSG, _END = 0, 1


class ResponseStream(Generic[T]):
    """The responses of a server-streaming call, as an iterator.

    The call starts when the stream is created. Iterating yields the
    messages; a non-OK end raises RPCError; a normal end stops the iteration.
    `cancel()` (from any thread) or leaving a ``with`` block cancels the call.
    """

    def __init__(self, channel: Channel, method: str, payload: bytes, response_type: Type[T],
                 deadline: Optional[float], metadata: List[Any], wait_for_ready: bool) -> None:
        self.method = method
        self._channel = channel
        self._payload = payload
        self._response_type = response_type
        self._deadline = deadline
        self._metadata = metadata
        self._wait_for_ready = wait_for_ready
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._items: List[Tuple[int, Any, Any]] = []
        self._conn: Optional[Connection] = None
        self._call_id: Optional[int] = None
        self._cancelled = False
        self._done = False
        self._retried = False
        self.initial_metadata: Optional[Metadata] = None
        self.trailing_metadata: Optional[Metadata] = None
        self.code: Optional[StatusCode] = None
        self._start()

    def _put(self, item: Tuple[int, Any, Any]) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify()

    def _start(self) -> None:
        try:
            conn = self._channel._connection(self._deadline, self._wait_for_ready)
            remaining = _remaining(self._deadline)
        except RPCError as e:
            self._put((_END, _Outcome.failure(e), None))
            return
        with self._lock:
            if self._cancelled:
                return
            self._conn, self._call_id = conn, None
        call_id = conn.start_call(self.method, remaining, self._metadata, self._payload,
                                  on_end=lambda o: self._put((_END, o, None)),
                                  on_message=lambda p, md: self._put((_MSG, p, md)))
        with self._lock:
            if self._conn is conn:
                self._call_id = call_id
            cancelled = self._cancelled
        if cancelled and call_id is not None:
            conn.cancel_call(call_id, RPCError(StatusCode.CANCELLED, "call was cancelled"))

    def __iter__(self) -> "ResponseStream[T]":
        return self

    def __next__(self) -> T:
        while True:
            with self._cond:
                if self._done:
                    raise StopIteration
                if self._cancelled:
                    self._done = True
                    self.code = StatusCode.CANCELLED
                    raise RPCError(StatusCode.CANCELLED, "call was cancelled")
                while not self._items:
                    self._cond.wait()
                    if self._cancelled:
                        break
                if self._cancelled:
                    continue
                kind, a, b = self._items.pop(0)
            if kind == _MSG:
                if b and self.initial_metadata is None:
                    self.initial_metadata = b
                try:
                    return self._response_type.FromString(a)
                except DecodeError as e:
                    self.cancel()
                    raise RPCError(StatusCode.INTERNAL, f"stream message of {self.method} could not be decoded: {e}")
            outcome: _Outcome = a
            if outcome.not_started and not self._retried and not self._cancelled:
                # The server went away before starting the call: once more on a fresh connection.
                self._retried = True
                self._start()
                continue
            with self._lock:
                self._done = True
            if self.initial_metadata is None and outcome.initial_metadata:
                self.initial_metadata = outcome.initial_metadata
            self.trailing_metadata = outcome.trailing_metadata
            self.code = outcome.code
            error = outcome.error()
            if error is not None:
                raise error
            raise StopIteration

    def cancel(self) -> bool:
        """Cancels the call (the server is told); the iterator then raises
        RPCError(CANCELLED). False when the call had already ended."""
        with self._cond:
            if self._done or self._cancelled:
                return False
            self._cancelled = True
            conn, call_id = self._conn, self._call_id
            self._cond.notify_all()
        if conn is not None and call_id is not None:
            conn.cancel_call(call_id, RPCError(StatusCode.CANCELLED, "call was cancelled"))
        return True

    def close(self) -> None:
        """Cancels the call if it is still running; never raises."""
        self.cancel()

    def __enter__(self) -> "ResponseStream[T]":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def done(self) -> bool:
        with self._lock:
            return self._done


__all__ = [
    "Channel", "Connection", "DEADLINE_GRACE", "DEFAULT_MAX_FRAME_BYTES", "Metadata", "MetadataLike", "PREFACE",
    "PROTOCOL_VERSION", "RPCError", "ResponseStream", "StatusCode", "UnaryCall", "decode_metadata",
    "encode_metadata",
]
