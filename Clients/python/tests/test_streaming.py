"""Server streaming: WatchEvents as an iterator, resumed from a cursor."""
from __future__ import annotations

import pytest
from helpers import Collector, customer_message, make_channel

from sessionclient import RPCError, SessionClient, StatusCode, sessions_pb2 as pb


def test_watch_replays_then_resumes_after_a_cursor(make_server, make_client):
    server = make_server()
    client = make_client(server.address, server.admin_token)
    make_channel(client, "web")
    sessions = [customer_message(client, f"conv-{i}", "web", f"m{i}").session for i in range(4)]

    with client.events.watch_events(pb.WatchEventsRequest(after_cursor=0)) as stream:
        first = [next(stream) for _ in range(4)]
    assert [e.session_id for e in first] == [s.id for s in sessions]
    cursors = [e.cursor for e in first]
    assert cursors == sorted(cursors) and len(set(cursors)) == 4
    assert all(e.to_status == pb.WAITING and e.sequence == 1 for e in first)

    # Resume after the second event: exactly the events after it, in order.
    with client.events.watch_events(pb.WatchEventsRequest(after_cursor=cursors[1])) as stream:
        resumed = [next(stream) for _ in range(2)]
    assert [e.cursor for e in resumed] == cursors[2:]
    assert resumed == first[2:]

    # One session only.
    with client.events.watch_events(pb.WatchEventsRequest(session_id=sessions[3].id)) as stream:
        only = next(stream)
    assert only.session_id == sessions[3].id

    # A watch after the head sees only what happens next, live.
    head = client.events.get_event_head().cursor
    assert head == cursors[-1]
    stream = client.events.watch_events(pb.WatchEventsRequest(after_cursor=head))
    live = Collector(stream)
    ended = client.sessions.end_session(pb.EndSessionRequest(session_id=sessions[0].id)).session
    [event] = live.take(1)
    assert event.session_id == ended.id and event.to_status == pb.ENDED and event.cursor > head
    stream.cancel()
    live.join()
    assert isinstance(live.error, RPCError) and live.error.code == StatusCode.CANCELLED


def test_event_watch_from_now_and_from_a_cursor(make_server, make_client):
    server = make_server()
    client = make_client(server.address, server.admin_token)
    make_channel(client, "web")
    before = customer_message(client, "old", "web", "m-old").session

    with client.watch("now") as watch:
        assert watch.cursor == client.event_head() > 0
        collector = Collector(watch)
        new = customer_message(client, "new", "web", "m-new").session
        [event] = collector.take(1)
        assert event.session_id == new.id
        assert watch.cursor == event.cursor
        resume_at = watch.cursor
    collector.join()
    assert collector.error is None  # close() ends the iteration quietly

    with client.watch("beginning") as watch:
        events = Collector(watch).take(2)
    assert [e.session_id for e in events] == [before.id, new.id]

    with client.watch(0, session_id=new.id) as watch:
        [only] = Collector(watch).take(1)
    assert only.session_id == new.id

    # A later watch from the cursor the first one reached sees only what came after it.
    client.sessions.end_session(pb.EndSessionRequest(session_id=new.id))
    with client.watch(resume_at) as watch:
        [after] = Collector(watch).take(1)
    assert after.cursor > resume_at and after.to_status == pb.ENDED and after.session_id == new.id

    # "now" for one session is the last cursor of its events.
    assert client.event_head(new.id) == after.cursor


def test_event_watch_raises_what_a_reconnect_cannot_cure(server, make_client, client, uid):
    anonymous = make_client(server.address, "bad-token")
    watch = anonymous.watch(0)
    with pytest.raises(RPCError) as info:
        next(watch)
    assert info.value.code == StatusCode.UNAUTHENTICATED
    with pytest.raises(RPCError) as info:
        next(client.watch(0, session_id=f"missing-{uid}"))
    assert info.value.code == StatusCode.NOT_FOUND
    with pytest.raises(ValueError):
        client.watch("yesterday")
