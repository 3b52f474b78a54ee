"""`SessionClient`: every service of Protos/ on one shared connection, plus
`EventWatch`, a watch of the event log that survives reconnects."""
from __future__ import annotations

import random
import ssl
import threading
import time
from typing import Any, Iterator, Optional, Union

from .generated import sessions_pb2
from .generated.services import (ChannelServiceClient, ClockServiceClient, EventServiceClient, HealthServiceClient,
                                 PermissionServiceClient, RepServiceClient, ServiceClients, SessionServiceClient,
                                 TestServiceClient, TokenServiceClient, UnimplementedServiceClient)
from .rpc import DEFAULT_MAX_FRAME_BYTES, Channel, MetadataLike, ResponseStream, RPCError, StatusCode, _metadata_pairs

# Largest page of ListEvents (the server's cap).
_MAX_PAGE = 1000


class SessionClient(ServiceClients):
    """One connection to sessiond with a typed client per service, all
    sharing the channel's single multiplexed connection::

        client = SessionClient("127.0.0.1:7411", token="...")
        session = client.sessions.create_session(sessions_pb2.CreateSessionRequest(...)).session

    `token` is sent as ``authorization: Bearer <token>`` on every call. The
    connection opens on the first call. Keyword options go to `Channel`
    (`ssl_context`, `connect_timeout`, back-off, `default_timeout`, ...).
    """

    health: HealthServiceClient
    sessions: SessionServiceClient
    reps: RepServiceClient
    channels: ChannelServiceClient
    permissions: PermissionServiceClient
    events: EventServiceClient
    tokens: TokenServiceClient
    clock: ClockServiceClient
    test: TestServiceClient
    unimplemented: UnimplementedServiceClient

    def __init__(self, address: str = "127.0.0.1:7411", token: Optional[str] = None, *,
                 metadata: MetadataLike = (), ssl_context: Optional[ssl.SSLContext] = None,
                 server_hostname: Optional[str] = None, connect_timeout: float = 5.0,
                 initial_backoff: float = 0.1, max_backoff: float = 5.0, backoff_multiplier: float = 1.6,
                 max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES, default_timeout: Optional[float] = None) -> None:
        pairs = _metadata_pairs(metadata)
        if token:
            pairs.append(("authorization", f"Bearer {token}"))
        self.channel = Channel(address, metadata=pairs, ssl_context=ssl_context, server_hostname=server_hostname,
                               connect_timeout=connect_timeout, initial_backoff=initial_backoff,
                               max_backoff=max_backoff, backoff_multiplier=backoff_multiplier,
                               max_frame_bytes=max_frame_bytes, default_timeout=default_timeout)
        super().__init__(self.channel)

    def close(self) -> None:
        """Closes the connection."""
        self.channel.close()

    def __enter__(self) -> "SessionClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def ping(self, timeout: float = 5.0) -> float:
        """Round trip of a protocol Ping, in seconds."""
        return self.channel.ping(timeout)

    def event_head(self, session_id: str = "", *, timeout: Optional[float] = None) -> int:
        """The cursor of the newest event (0 when none): of the whole log
        (GetEventHead), or of one session (the last of its ListEvents)."""
        if not session_id:
            return self.events.get_event_head(sessions_pb2.GetEventHeadRequest(), timeout=timeout).cursor
        head = 0
        request = sessions_pb2.ListEventsRequest(session_id=session_id, limit=_MAX_PAGE)
        while True:
            page = self.events.list_events(request, timeout=timeout).events
            for e in page:
                head = max(head, e.cursor)
            if len(page) < _MAX_PAGE:
                return head
            request.after_sequence = page[-1].sequence

    def watch(self, after_cursor: Union[int, str] = "now", session_id: str = "", *,
              metadata: MetadataLike = ()) -> "EventWatch":
        """Watches the event log (EventService/WatchEvents) until closed.

        `after_cursor`: ``"now"`` (only events that happen from now on),
        ``"beginning"`` or 0 (the whole log first), or a cursor (the events
        after it). When the stream breaks (server restart, network) the watch
        reconnects with back-off and resumes after the last cursor it handed
        out, so no event is missed or repeated. Errors a reconnect cannot cure
        (UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND, INVALID_ARGUMENT, ...)
        are raised.
        """
        return EventWatch(self, after_cursor, session_id, metadata)


class EventWatch:
    """Iterator over `sessions_pb2.Event`, resuming after `cursor` across
    reconnects; see `SessionClient.watch`. `close()` (any thread) ends it:
    the iteration then stops. Use it as a context manager to close it."""

    #: Codes a reconnect can cure; any other ends the watch with the error.
    TRANSIENT = frozenset({StatusCode.UNAVAILABLE, StatusCode.CANCELLED, StatusCode.DEADLINE_EXCEEDED,
                           StatusCode.ABORTED, StatusCode.RESOURCE_EXHAUSTED, StatusCode.INTERNAL,
                           StatusCode.UNKNOWN})

    def __init__(self, client: SessionClient, after_cursor: Union[int, str], session_id: str,
                 metadata: MetadataLike = (), *, initial_backoff: float = 0.25, max_backoff: float = 10.0) -> None:
        self._client = client
        self.session_id = session_id
        self._metadata = metadata
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        if isinstance(after_cursor, str):
            word = after_cursor.strip().lower()
            if word == "now":
                after_cursor = client.event_head(session_id)
            elif word in ("beginning", "start"):
                after_cursor = 0
            else:
                try:
                    after_cursor = int(word)
                except ValueError:
                    raise ValueError(f"after_cursor {after_cursor!r} is not 'now', 'beginning' or a cursor") from None
        if after_cursor < 0:
            raise ValueError("after_cursor must be 0 or more")
        #: The cursor of the last event handed out (or where the watch started).
        self.cursor: int = int(after_cursor)
        #: How many times the stream was (re)opened.
        self.streams_opened = 0
        #: Why the stream last broke, or None.
        self.last_error: Optional[RPCError] = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._stream: Optional[ResponseStream[sessions_pb2.Event]] = None
        self._events = self._run()

    def __iter__(self) -> "EventWatch":
        return self

    def __next__(self) -> sessions_pb2.Event:
        return next(self._events)

    def close(self) -> None:
        """Ends the watch (the stream is cancelled); safe from any thread."""
        self._stop.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.cancel()

    def __enter__(self) -> "EventWatch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _backoff(self, failures: int) -> float:
        base = min(self.initial_backoff * 2 ** min(failures - 1, 10), self.max_backoff)
        return base * random.uniform(0.8, 1.2)

    def _run(self) -> Iterator[sessions_pb2.Event]:
        failures = 0
        while not self._stop.is_set():
            request = sessions_pb2.WatchEventsRequest(after_cursor=self.cursor, session_id=self.session_id)
            started = time.monotonic()
            stream = self._client.events.watch_events(request, metadata=self._metadata)
            with self._lock:
                self._stream = stream
                self.streams_opened += 1
            if self._stop.is_set():  # closed while the stream was being opened
                stream.cancel()
                return
            try:
                for event in stream:
                    failures = 0
                    # Never hand out an event twice, even if the server replays one.
                    if event.cursor <= self.cursor:
                        continue
                    self.cursor = event.cursor
                    yield event
                self.last_error = RPCError(StatusCode.UNAVAILABLE, "the server ended the stream")
            except RPCError as e:
                if self._stop.is_set():
                    return
                if e.code not in self.TRANSIENT:
                    raise
                self.last_error = e
            finally:
                stream.cancel()
            if time.monotonic() - started > 30:
                failures = 0
            failures += 1
            if self._stop.wait(self._backoff(failures)):
                return
