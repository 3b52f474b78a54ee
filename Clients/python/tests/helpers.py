"""Small helpers shared by the tests."""
from __future__ import annotations

import queue
import threading
from typing import Any, Iterable, List, Optional

from sessionclient import SessionClient, sessions_pb2 as pb

WEB_CHAT_PERMISSIONS = [pb.ENHANCED_CHAT_USER, pb.ENHANCED_CHAT_REP]


class Collector:
    """Drains an iterator on a thread of its own into a queue, so a test can
    wait for items with a timeout instead of blocking in next()."""

    def __init__(self, iterable: Iterable[Any]) -> None:
        self.iterable = iterable
        self.items: "queue.Queue[Any]" = queue.Queue()
        self.error: Optional[BaseException] = None
        self.finished = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for item in self.iterable:
                self.items.put(item)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            self.error = e
        finally:
            self.finished.set()

    def take(self, n: int, timeout: float = 15.0) -> List[Any]:
        """The next `n` items; fails if they do not arrive within `timeout` in all."""
        import time
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            try:
                out.append(self.items.get(timeout=max(0.0, left)))
            except queue.Empty:
                raise AssertionError(f"got {len(out)} of {n} items within {timeout} s; error: {self.error!r}")
        return out

    def join(self, timeout: float = 15.0) -> None:
        assert self.finished.wait(timeout), "the iterator did not end in time"
        self.thread.join(timeout)


def make_channel(client: SessionClient, channel_id: str, capacity_model=pb.TAB_BASED) -> pb.Channel:
    return client.channels.create_channel(pb.ChannelRequest(channel=pb.Channel(
        id=channel_id, type=pb.ENHANCED_WEB_CHAT_V2, capacity_model=capacity_model))).channel


def make_rep(client: SessionClient, rep_id: str, capacity: int = 1, presence=pb.OFFLINE) -> pb.Rep:
    return client.reps.create_rep(pb.RepRequest(rep=pb.Rep(
        id=rep_id, display_name=rep_id.title(), capacity=capacity, presence=presence,
        permissions=WEB_CHAT_PERMISSIONS))).rep


def customer_message(client: SessionClient, conversation: str, channel: str, message_id: str,
                     text: str = "Hello", **kw) -> pb.SessionResponse:
    return client.sessions.post_customer_message(pb.PostCustomerMessageRequest(
        conversation_id=conversation, channel_id=channel, message_id=message_id, text=text), **kw)
