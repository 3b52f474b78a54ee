"""Unary calls of several services against a real sessiond."""
from __future__ import annotations

from helpers import customer_message, make_channel, make_rep

from sessionclient import SessionClient, StatusCode, health_pb2, sessions_pb2 as pb, test_service_pb2 as tpb


def test_session_lifecycle_across_services(make_server, make_client):
    # A server of this test alone: routing picks any available rep, so reps of other tests must not exist.
    server = make_server()
    admin = make_client(server.address, server.admin_token)

    assert admin.health.check().status == health_pb2.HealthCheckResponse.SERVING
    me = admin.tokens.who_am_i()
    assert me.role == pb.ADMIN

    channel = make_channel(admin, "web-eu")
    assert channel.type == pb.ENHANCED_WEB_CHAT_V2
    assert [c.id for c in admin.channels.list_channels().channels] == ["web-eu"]
    assert admin.channels.get_channel(pb.GetChannelRequest(channel_id="web-eu")).channel == channel

    make_rep(admin, "alice", capacity=1, presence=pb.OFFLINE)
    check = admin.permissions.check_permission(pb.CheckPermissionRequest(rep_id="alice", channel_id="web-eu"))
    assert check.allowed

    # Nobody is available: the customer's session waits.
    first = customer_message(admin, "conv-1", "web-eu", "m1", "My order is late")
    assert not first.replayed
    s1 = first.session
    assert s1.status == pb.WAITING and s1.rep_id == "" and s1.channel_id == "web-eu"

    # A retry of the same message is a replay and changes nothing.
    again = customer_message(admin, "conv-1", "web-eu", "m1", "My order is late")
    assert again.replayed and again.session.id == s1.id

    # alice comes online: routing gives her the waiting session.
    rep = admin.reps.set_presence(pb.SetPresenceRequest(rep_id="alice", presence=pb.AVAILABLE)).rep
    assert rep.presence == pb.AVAILABLE
    s1 = admin.sessions.get_session(pb.GetSessionRequest(session_id=s1.id)).session
    assert s1.status == pb.ACTIVE and s1.rep_id == "alice"

    # A second customer waits: alice is full.
    s2 = customer_message(admin, "conv-2", "web-eu", "m2", "Hello?").session
    assert s2.status == pb.WAITING
    waiting = admin.sessions.list_sessions(pb.ListSessionsRequest(status=pb.WAITING)).sessions
    assert [s.id for s in waiting] == [s2.id]
    workload = admin.reps.get_workload(pb.GetRepRequest(rep_id="alice"))
    assert (workload.capacity, workload.used, workload.free) == (1, 1, 0)
    assert [s.id for s in workload.active_sessions] == [s1.id]

    # alice, with her own token, answers and ends the first session; the second reaches her.
    issued = admin.tokens.issue_token(pb.IssueTokenRequest(name="alice-desktop", role=pb.REP, rep_id="alice"))
    alice = make_client(server.address, issued.token)
    assert alice.tokens.who_am_i().rep_id == "alice"
    answered = alice.sessions.post_rep_message(pb.PostRepMessageRequest(session_id=s1.id, message_id="r1", text="On it"))
    assert answered.session.id == s1.id
    ended = alice.sessions.end_session(pb.EndSessionRequest(session_id=s1.id)).session
    assert ended.status == pb.ENDED and ended.end_reason == pb.ENDED_BY_REP
    s2 = admin.sessions.get_session(pb.GetSessionRequest(session_id=s2.id)).session
    assert s2.status == pb.ACTIVE and s2.rep_id == "alice"

    # The admin ends the second one.
    ended2 = admin.sessions.end_session(pb.EndSessionRequest(session_id=s2.id)).session
    assert ended2.status == pb.ENDED and ended2.end_reason == pb.ENDED_BY_ADMIN

    events = admin.events.list_events(pb.ListEventsRequest(session_id=s1.id)).events
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert [(e.from_status, e.to_status, e.reason) for e in events] == [
        (pb.SESSION_STATUS_UNSPECIFIED, pb.WAITING, pb.CUSTOMER_MESSAGE),
        (pb.WAITING, pb.ACTIVE, pb.ROUTED),
        (pb.ACTIVE, pb.ENDED, pb.ENDED_BY_REP),
    ]
    assert admin.events.get_event_head().cursor >= events[-1].cursor
    clock = admin.clock.get_time()
    assert clock.now_ms > 0 and not clock.test_clock
    # Everything above went over one connection per client.
    assert admin.channel.stats["connects"] == 1


def test_request_defaults_to_an_empty_message(client: SessionClient):
    assert client.tokens.who_am_i(None).role == pb.ADMIN
    assert client.channels.list_channels() is not None


def test_metadata_goes_out_and_comes_back(client: SessionClient):
    call = client.test.unary_call_future(
        tpb.SimpleRequest(response_size=3),
        metadata=[("x-grpc-test-echo-initial", "hello"), ("x-grpc-test-echo-trailing-bin", b"\x00\xffbin")])
    assert call.result(timeout=10).payload.body == b"\x00\x00\x00"
    assert call.initial_metadata == [("x-grpc-test-echo-initial", "hello")]
    assert call.trailing_metadata == [("x-grpc-test-echo-trailing-bin", b"\x00\xffbin")]


def test_ping(client: SessionClient):
    rtt = client.ping(timeout=5)
    assert 0 < rtt < 5


def test_empty_call_and_large_response(client: SessionClient):
    assert client.test.empty_call(tpb.Empty()) == tpb.Empty()
    big = client.test.unary_call(tpb.SimpleRequest(response_size=1_000_000))
    assert len(big.payload.body) == 1_000_000


def test_context_manager_closes(server, uid):
    with SessionClient(server.address, server.admin_token) as c:
        assert c.tokens.who_am_i().role == pb.ADMIN
    try:
        c.tokens.who_am_i()
    except Exception as e:  # noqa: BLE001
        assert getattr(e, "code", None) == StatusCode.UNAVAILABLE
    else:
        raise AssertionError("a closed client still made a call")


def test_mark_inactive_and_the_test_clock(make_server, make_client):
    server = make_server(args=["--test-clock"])
    admin = make_client(server.address, server.admin_token)
    make_channel(admin, "web")
    make_rep(admin, "bob", presence=pb.AVAILABLE)
    session = customer_message(admin, "conv", "web", "m1").session
    assert session.status == pb.ACTIVE and session.rep_id == "bob"
    inactive = admin.sessions.mark_inactive(pb.MarkInactiveRequest(session_id=session.id)).session
    assert inactive.status == pb.INACTIVE and inactive.auto_end_deadline_ms > 0

    assert admin.clock.get_time().test_clock
    now = admin.clock.advance_clock(pb.AdvanceClockRequest(by_ms=24 * 3600 * 1000 - 60_000)).now_ms
    assert admin.sessions.get_session(pb.GetSessionRequest(session_id=session.id)).session.status == pb.INACTIVE
    later = admin.clock.advance_clock(pb.AdvanceClockRequest(by_ms=60_000)).now_ms
    assert later >= now + 60_000
    ended = admin.sessions.get_session(pb.GetSessionRequest(session_id=session.id)).session
    assert ended.status == pb.ENDED and ended.end_reason == pb.AUTO_ENDED
