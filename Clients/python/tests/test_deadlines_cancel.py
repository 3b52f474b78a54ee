"""Deadlines (sent to the server and enforced locally) and cancellation."""
from __future__ import annotations

import time

import pytest
from fakeserver import FakeServer
from helpers import Collector

from sessionclient import DEADLINE_GRACE, Channel, RPCError, SessionClient, StatusCode, test_service_pb2 as tpb


def slow_stream(messages: int, interval_s: float) -> tpb.StreamingOutputCallRequest:
    return tpb.StreamingOutputCallRequest(response_parameters=[
        tpb.ResponseParameters(size=4, interval_us=int(interval_s * 1_000_000)) for _ in range(messages)])


def test_timeout_is_sent_and_enforced_locally_when_the_server_never_answers():
    with FakeServer() as fake, Channel(fake.address) as channel:
        started = time.monotonic()
        call = channel.unary_call("/grpc.testing.TestService/EmptyCall", tpb.Empty(), tpb.Empty, tpb.Empty,
                                  timeout=1.0)
        conn, env = fake.next_request()
        assert conn.client_preface == b"SESSRPC\x01"
        assert env.request.method == "/grpc.testing.TestService/EmptyCall"
        # The relative deadline in microseconds, counted from when the frame was built.
        assert 500_000 <= env.request.timeout_micros <= 1_000_000
        e = call.exception(timeout=10)
        elapsed = time.monotonic() - started
        assert e is not None and e.code == StatusCode.DEADLINE_EXCEEDED
        assert 1.0 <= elapsed < 1.0 + DEADLINE_GRACE + 2.0
        # The client tells the server it gave up.
        cancel = conn.next(timeout=10)
        assert cancel.WhichOneof("kind") == "cancel" and cancel.call_id == env.call_id
        # A late answer is ignored, and the connection carries on.
        conn.respond(env.call_id)
        later = channel.unary_call("/x.Y/Z", tpb.Empty(), tpb.Empty, tpb.Empty, timeout=10)
        _, env2 = fake.next_request()
        assert env2.call_id > env.call_id
        conn.respond(env2.call_id, payload=b"")
        assert later.result(timeout=10) == tpb.Empty()
        assert channel.stats["connects"] == 1


def test_no_timeout_sends_zero():
    with FakeServer() as fake, Channel(fake.address) as channel:
        call = channel.unary_call("/x.Y/Z", tpb.Empty(), tpb.Empty, tpb.Empty)
        conn, env = fake.next_request()
        assert env.request.timeout_micros == 0
        conn.respond(env.call_id)
        call.result(timeout=10)


def test_default_timeout_applies_to_unary_calls():
    with FakeServer() as fake, Channel(fake.address, default_timeout=5.0) as channel:
        call = channel.unary_call("/x.Y/Z", tpb.Empty(), tpb.Empty, tpb.Empty)
        conn, env = fake.next_request()
        assert 4_000_000 < env.request.timeout_micros <= 5_000_000
        conn.respond(env.call_id)
        call.result(timeout=10)


def test_server_side_deadline_on_a_slow_stream(client: SessionClient):
    stream = client.test.streaming_output_call(slow_stream(3, 2.0), timeout=0.25)
    started = time.monotonic()
    with pytest.raises(RPCError) as info:
        list(stream)
    assert info.value.code == StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 2.0
    # The connection is fine afterwards.
    assert client.test.empty_call(tpb.Empty(), timeout=10) == tpb.Empty()
    assert client.channel.stats["connects"] == 1


def test_deadline_already_passed(client: SessionClient):
    with pytest.raises(RPCError) as info:
        client.tokens.who_am_i(timeout=0)
    assert info.value.code == StatusCode.DEADLINE_EXCEEDED


def test_cancel_a_unary_call_tells_the_server():
    with FakeServer() as fake, Channel(fake.address) as channel:
        call = channel.unary_call("/x.Y/Z", tpb.Empty(), tpb.Empty, tpb.Empty, timeout=30)
        conn, env = fake.next_request()
        assert not call.done()
        assert call.cancel()
        assert call.done() and call.cancelled()
        assert not call.cancel()
        with pytest.raises(RPCError) as info:
            call.result(timeout=1)
        assert info.value.code == StatusCode.CANCELLED
        cancel = conn.next(timeout=10)
        assert cancel.WhichOneof("kind") == "cancel" and cancel.call_id == env.call_id


def test_cancel_a_stream_from_another_thread(client: SessionClient):
    stream = client.test.streaming_output_call(slow_stream(3, 30.0))
    collector = Collector(stream)  # blocks in next() on a thread of its own
    assert stream.cancel()
    collector.join(timeout=15)
    assert isinstance(collector.error, RPCError) and collector.error.code == StatusCode.CANCELLED
    assert collector.items.empty()
    # The shared connection is unharmed.
    assert client.test.empty_call(tpb.Empty(), timeout=10) == tpb.Empty()
    assert client.channel.stats["connects"] == 1


def test_leaving_a_with_block_cancels_the_stream(client: SessionClient):
    with client.test.streaming_output_call(slow_stream(5, 0.01)) as stream:
        first = next(stream)
        assert first.payload.body == b"\x00" * 4
    with pytest.raises(RPCError) as info:
        next(stream)
    assert info.value.code == StatusCode.CANCELLED


def test_cancelled_server_stream_frees_the_server(client: SessionClient):
    # Cancel many long streams; the server must answer further calls at once.
    streams = [client.test.streaming_output_call(slow_stream(1, 60.0)) for _ in range(50)]
    for s in streams:
        s.cancel()
    for s in streams:
        with pytest.raises(RPCError) as info:
            next(s)
        assert info.value.code == StatusCode.CANCELLED
    assert client.test.empty_call(tpb.Empty(), timeout=10) == tpb.Empty()


def test_result_wait_timeout_is_not_the_call_deadline():
    with FakeServer() as fake, Channel(fake.address) as channel:
        call = channel.unary_call("/x.Y/Z", tpb.Empty(), tpb.Empty, tpb.Empty)
        conn, env = fake.next_request()
        with pytest.raises(TimeoutError):
            call.result(timeout=0.05)
        assert not call.done()
        conn.respond(env.call_id)
        assert call.result(timeout=10) == tpb.Empty()
