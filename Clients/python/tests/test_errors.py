"""Status codes come back as RPCError with the gRPC code and the message."""
from __future__ import annotations

import pytest
from fakeserver import FakeServer

from sessionclient import Channel, RPCError, SessionClient, StatusCode, sessions_pb2 as pb, test_service_pb2 as tpb


def code_of(fn, *args, **kw) -> RPCError:
    with pytest.raises(RPCError) as info:
        fn(*args, **kw)
    assert isinstance(info.value.code, StatusCode)
    return info.value


def test_not_found(client: SessionClient, uid):
    e = code_of(client.sessions.get_session, pb.GetSessionRequest(session_id=f"missing-{uid}"))
    assert e.code == StatusCode.NOT_FOUND and e.code.name == "NOT_FOUND"
    assert f"missing-{uid}" in e.message
    assert str(e).startswith("NOT_FOUND: ")
    e = code_of(client.channels.get_channel, pb.GetChannelRequest(channel_id=f"nope-{uid}"))
    assert e.code == StatusCode.NOT_FOUND


def test_invalid_argument(client: SessionClient, uid):
    e = code_of(client.channels.create_channel, pb.ChannelRequest(channel=pb.Channel(id=f"c-{uid}")))
    assert e.code == StatusCode.INVALID_ARGUMENT
    e = code_of(client.sessions.get_session, pb.GetSessionRequest(session_id="not a valid id!" * 20))
    assert e.code == StatusCode.INVALID_ARGUMENT


def test_unauthenticated_with_a_bad_token_or_none(server, make_client):
    bad = make_client(server.address, "not-a-real-token")
    e = code_of(bad.tokens.who_am_i)
    assert e.code == StatusCode.UNAUTHENTICATED
    anonymous = make_client(server.address)
    assert code_of(anonymous.channels.list_channels).code == StatusCode.UNAUTHENTICATED
    # The health service is open.
    assert anonymous.health.check().status == 1


def test_permission_denied_for_a_service_token(client: SessionClient, server, make_client, uid):
    issued = client.tokens.issue_token(pb.IssueTokenRequest(name=f"svc-{uid}", role=pb.SERVICE))
    service = make_client(server.address, issued.token)
    e = code_of(service.channels.create_channel,
                pb.ChannelRequest(channel=pb.Channel(id=f"c-{uid}", type=pb.ENHANCED_SMS)))
    assert e.code == StatusCode.PERMISSION_DENIED


def test_failed_precondition_without_test_clock(client: SessionClient):
    assert code_of(client.clock.advance_clock, pb.AdvanceClockRequest(by_ms=1000)).code == StatusCode.FAILED_PRECONDITION


def test_unimplemented(client: SessionClient):
    assert code_of(client.test.unimplemented_call).code == StatusCode.UNIMPLEMENTED
    e = code_of(client.unimplemented.unimplemented_call)
    assert e.code == StatusCode.UNIMPLEMENTED
    e = code_of(client.channel.unary, "/sessions.v1.NoSuchService/Nothing", tpb.Empty(), tpb.Empty, tpb.Empty)
    assert e.code == StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize("code", [c for c in StatusCode if c != StatusCode.OK])
def test_every_code_round_trips(client: SessionClient, code: StatusCode):
    request = tpb.SimpleRequest(response_status=tpb.EchoStatus(code=int(code), message=f"echo {code.name}"))
    e = code_of(client.test.unary_call, request)
    assert e.code == code
    assert e.message == f"echo {code.name}"


def test_bad_metadata_is_refused_before_sending(client: SessionClient):
    for md in ([("Upper", "x")], [("grpc-timeout", "1")], [("x-ok", "caf\u00e9")], [("x-ok", b"\x01")],
               [("", "x")]):
        e = code_of(client.tokens.who_am_i, metadata=md)
        assert e.code == StatusCode.INVALID_ARGUMENT, md
    with pytest.raises(RPCError) as info:
        SessionClient(client.channel.address, metadata=[("Bad Key", "v")])
    assert info.value.code == StatusCode.INVALID_ARGUMENT


def test_wrong_request_type_is_a_type_error(client: SessionClient):
    with pytest.raises(TypeError):
        client.sessions.get_session(pb.GetChannelRequest(channel_id="x"))  # type: ignore[arg-type]


def test_bad_address():
    with pytest.raises(RPCError) as info:
        SessionClient("no-port-here")
    assert info.value.code == StatusCode.INVALID_ARGUMENT


def test_code_above_16_is_unknown_and_trailing_metadata_is_kept():
    with FakeServer() as fake, Channel(fake.address) as channel:
        call = channel.unary_call("/x.Y/Z", tpb.Empty(), tpb.Empty, tpb.Empty, timeout=10)
        conn, env = fake.next_request()
        reply = type(env)(call_id=env.call_id)
        reply.response.status_code = 42
        reply.response.status_message = "odd"
        reply.response.trailing_metadata.add(key="why", value=b"because")
        conn.send(reply)
        e = call.exception(timeout=10)
        assert e is not None and e.code == StatusCode.UNKNOWN and e.message == "odd"
        assert e.trailing_metadata == [("why", "because")]


def test_ok_without_a_payload_is_internal():
    with FakeServer() as fake, Channel(fake.address) as channel:
        call = channel.unary_call("/x.Y/Z", tpb.Empty(), tpb.Empty, tpb.Empty, timeout=10)
        conn, env = fake.next_request()
        conn.respond(env.call_id, payload=None)
        assert call.exception(timeout=10).code == StatusCode.INTERNAL
