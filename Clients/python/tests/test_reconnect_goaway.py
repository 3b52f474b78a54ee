"""Reconnect with back-off after a restart, and GoAway: calls in flight
finish on the old connection, new calls go to a new one."""
from __future__ import annotations

import signal
import time

import pytest
from fakeserver import FakeServer
from helpers import Collector, customer_message, make_channel
from sessiond import Sessiond, wait_until

from sessionclient import Channel, RPCError, StatusCode, sessions_pb2 as pb, test_service_pb2 as tpb

EXIT_CANNOT_LISTEN = 69


def restart_on_same_port(server: Sessiond, port: int, timeout: float = 30.0) -> None:
    """Starts `server` again on `port`. The port is free once the old process
    has exited (sessiond binds with SO_REUSEADDR, so TIME_WAIT does not
    block it); should another socket hold it for a moment, binding is retried
    until `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            server.start(listen=f"127.0.0.1:{port}")
            assert server.port == port
            return
        except AssertionError:
            if server.proc is None or server.proc.returncode != EXIT_CANNOT_LISTEN or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def slow_stream(messages: int, interval_s: float) -> tpb.StreamingOutputCallRequest:
    return tpb.StreamingOutputCallRequest(response_parameters=[
        tpb.ResponseParameters(size=2, interval_us=int(interval_s * 1_000_000)) for _ in range(messages)])


def test_reconnect_and_resume_the_watch_after_a_restart(make_server, make_client):
    server = make_server(args=["--test-service"])
    port = server.port
    client = make_client(server.address, server.admin_token, initial_backoff=0.05, max_backoff=0.5)
    make_channel(client, "web")
    s1 = customer_message(client, "conv-1", "web", "m1").session

    watch = client.watch("beginning")
    watch.initial_backoff = 0.05
    watch.max_backoff = 0.5
    collector = Collector(watch)
    [e1] = collector.take(1)
    assert e1.session_id == s1.id

    assert server.stop() == 0
    wait_until(lambda: client.channel.stats["goaways"] >= 1, 10, "the server's GoAway")

    # While the server is down: UNAVAILABLE at once, then fast failures during the back-off...
    with pytest.raises(RPCError) as info:
        client.tokens.who_am_i(timeout=5)
    assert info.value.code == StatusCode.UNAVAILABLE
    # ... and a call that waits for the server runs out of its deadline.
    with pytest.raises(RPCError) as info:
        client.tokens.who_am_i(timeout=0.3, wait_for_ready=True)
    assert info.value.code == StatusCode.DEADLINE_EXCEEDED

    restart_on_same_port(server, port)

    # wait_for_ready rides out the back-off; the data survived the restart.
    assert client.tokens.who_am_i(timeout=30, wait_for_ready=True).role == pb.ADMIN
    assert client.channels.get_channel(pb.GetChannelRequest(channel_id="web")).channel.id == "web"
    assert client.channel.stats["connects"] >= 2

    # The watch reconnected by itself and resumes after e1: nothing missed, nothing repeated.
    s2 = customer_message(client, "conv-2", "web", "m2").session
    s3 = customer_message(client, "conv-3", "web", "m3").session
    e2, e3 = collector.take(2, timeout=30)
    assert [e2.session_id, e3.session_id] == [s2.id, s3.id]
    assert e1.cursor < e2.cursor < e3.cursor
    assert watch.streams_opened >= 2
    assert watch.last_error is not None and watch.last_error.code == StatusCode.UNAVAILABLE
    watch.close()
    collector.join()
    assert collector.error is None
    assert collector.items.empty()


def test_graceful_goaway_lets_the_call_in_flight_finish(make_server, make_client):
    server = make_server(args=["--test-service", "--shutdown-grace", "30"])
    client = make_client(server.address, server.admin_token, initial_backoff=0.05, max_backoff=0.5)
    stream = client.test.streaming_output_call(slow_stream(4, 0.3), timeout=60)
    collector = Collector(stream)
    collector.take(1)  # the call runs on the server

    server.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: client.channel.stats["goaways"] >= 1, 10, "the server's GoAway")

    # A new call does not go to the old connection: the server closed its
    # listener at once, so the new connection is refused.
    with pytest.raises(RPCError) as info:
        client.tokens.who_am_i(timeout=5)
    assert info.value.code == StatusCode.UNAVAILABLE

    # The call in flight runs to its end on the old connection.
    assert len(collector.take(3, timeout=30)) == 3
    collector.join()
    assert collector.error is None and stream.code == StatusCode.OK
    assert server.proc.wait(30) == 0


def test_idle_goaway_moves_new_calls_to_a_new_connection(make_server, make_client):
    server = make_server(args=["--idle-timeout", "0.5"])
    client = make_client(server.address, server.admin_token)
    assert client.tokens.who_am_i(timeout=10).role == pb.ADMIN
    wait_until(lambda: client.channel.stats["goaways"] == 1, 15, "the idle GoAway")
    assert client.tokens.who_am_i(timeout=10).role == pb.ADMIN
    # (A second idle GoAway may already have come, on a slow machine.)
    assert client.channel.stats["connects"] == 2


def test_goaway_finishes_started_calls_and_retries_the_others_on_a_new_connection():
    with FakeServer() as fake, Channel(fake.address) as channel:
        a = channel.unary_call("/t.S/A", tpb.Empty(), tpb.Empty, tpb.Empty, timeout=30)
        b = channel.unary_call("/t.S/B", tpb.SimpleRequest(response_size=7), tpb.SimpleRequest, tpb.Empty, timeout=30)
        conn1 = fake.next_connection()
        _, ea = fake.next_request()
        _, eb = fake.next_request()
        assert (ea.request.method, eb.request.method) == ("/t.S/A", "/t.S/B")
        assert eb.call_id > ea.call_id

        conn1.go_away(last_call_id=ea.call_id, reason="draining")
        # b was never started: the client sends it again, on a new connection.
        conn2 = fake.next_connection()
        c2, eb2 = fake.next_request()
        assert c2 is conn2
        assert eb2.request.method == "/t.S/B" and eb2.request.payload == eb.request.payload
        assert 0 < eb2.request.timeout_micros <= 30_000_000
        conn2.respond(eb2.call_id)
        assert b.result(timeout=10) == tpb.Empty()

        # a, started before the GoAway, still ends on the old connection...
        assert not a.done()
        conn1.respond(ea.call_id)
        assert a.result(timeout=10) == tpb.Empty()
        # ... which the client then closes.
        assert conn1.next(timeout=10) is None

        # New calls go to the new connection.
        c = channel.unary_call("/t.S/C", tpb.Empty(), tpb.Empty, tpb.Empty, timeout=30)
        c3, ec = fake.next_request()
        assert c3 is conn2
        conn2.respond(ec.call_id)
        c.result(timeout=10)
        assert channel.stats == {"connects": 2, "goaways": 1}


def test_a_call_refused_by_goaway_twice_fails_with_its_code():
    def refuse(conn, env):
        if env.WhichOneof("kind") == "request":
            conn.go_away(last_call_id=0, code=8, reason="over the connection limit")

    with FakeServer(on_envelope=refuse) as fake, Channel(fake.address) as channel:
        call = channel.unary_call("/t.S/A", tpb.Empty(), tpb.Empty, tpb.Empty, timeout=30)
        e = call.exception(timeout=20)
        assert e is not None and e.code == StatusCode.RESOURCE_EXHAUSTED
        assert "over the connection limit" in e.message
        assert channel.stats["connects"] == 2  # one retry, as the Swift client


def test_a_stream_refused_by_goaway_is_retried_once():
    answered = []

    def handler(conn, env):
        if env.WhichOneof("kind") != "request":
            return
        if conn.index == 0:
            conn.go_away(last_call_id=env.call_id - 1, reason="draining")
        else:
            answered.append(env.call_id)
            msg = type(env)(call_id=env.call_id)
            msg.stream_message.payload = tpb.StreamingOutputCallResponse(
                payload=tpb.Payload(body=b"ok")).SerializeToString()
            conn.send(msg)
            conn.respond(env.call_id, payload=None)

    with FakeServer(on_envelope=handler) as fake, Channel(fake.address) as channel:
        stream = channel.server_streaming("/t.S/Stream", tpb.StreamingOutputCallRequest(),
                                          tpb.StreamingOutputCallRequest, tpb.StreamingOutputCallResponse,
                                          timeout=30)
        assert [m.payload.body for m in Collector(stream).take(1)] == [b"ok"]
        assert answered == [1]


def test_server_closing_the_connection_fails_calls_in_flight_then_reconnects():
    with FakeServer() as fake, Channel(fake.address, initial_backoff=0.01) as channel:
        call = channel.unary_call("/t.S/A", tpb.Empty(), tpb.Empty, tpb.Empty, timeout=30)
        conn1, _ = fake.next_request()
        conn1.close()
        e = call.exception(timeout=10)
        assert e is not None and e.code == StatusCode.UNAVAILABLE and "lost" in e.message
        again = channel.unary_call("/t.S/A", tpb.Empty(), tpb.Empty, tpb.Empty, timeout=30)
        conn2, env = fake.next_request()
        assert conn2 is not conn1
        conn2.respond(env.call_id)
        again.result(timeout=10)


def test_back_off_fails_fast_then_connects():
    # A port with a listener that is then closed: nothing accepts there.
    probe = FakeServer()
    address = probe.address
    probe.close()
    channel = Channel(address, initial_backoff=5.0, max_backoff=5.0)
    try:
        with pytest.raises(RPCError) as first:
            channel.unary("/t.S/A", tpb.Empty(), tpb.Empty, tpb.Empty, timeout=5)
        assert first.value.code == StatusCode.UNAVAILABLE and "cannot connect" in first.value.message
        started = time.monotonic()
        with pytest.raises(RPCError) as second:
            channel.unary("/t.S/A", tpb.Empty(), tpb.Empty, tpb.Empty, timeout=5)
        assert second.value.code == StatusCode.UNAVAILABLE and "retrying in" in second.value.message
        assert time.monotonic() - started < 1.0
    finally:
        channel.close()


def test_wrong_preface_version():
    with FakeServer(preface=b"SESSRPC\x02") as fake, Channel(fake.address) as channel:
        e = channel.unary_call("/t.S/A", tpb.Empty(), tpb.Empty, tpb.Empty, timeout=10).exception(timeout=10)
        assert e is not None and e.code == StatusCode.UNAVAILABLE and "protocol version 2" in e.message


def test_not_a_session_rpc_server():
    with FakeServer(preface=b"HTTP/1.1") as fake, Channel(fake.address) as channel:
        e = channel.unary_call("/t.S/A", tpb.Empty(), tpb.Empty, tpb.Empty, timeout=10).exception(timeout=10)
        assert e is not None and e.code == StatusCode.UNAVAILABLE and "not a session RPC server" in e.message


def test_oversized_frame_from_the_server_closes_the_connection():
    with FakeServer() as fake, Channel(fake.address, max_frame_bytes=1024) as channel:
        call = channel.unary_call("/t.S/A", tpb.Empty(), tpb.Empty, tpb.Empty, timeout=10)
        conn, _ = fake.next_request()
        conn.send_raw((2048).to_bytes(4, "big"))
        e = call.exception(timeout=10)
        assert e is not None and e.code == StatusCode.UNAVAILABLE and "over the limit" in e.message


def test_oversized_request_is_refused_locally():
    with FakeServer() as fake, Channel(fake.address, max_frame_bytes=4096) as channel:
        e = channel.unary_call("/t.S/A", tpb.SimpleRequest(payload=tpb.Payload(body=b"x" * 8000)),
                               tpb.SimpleRequest, tpb.Empty, timeout=10).exception(timeout=10)
        assert e is not None and e.code == StatusCode.RESOURCE_EXHAUSTED


def test_client_answers_the_servers_ping():
    with FakeServer() as fake, Channel(fake.address) as channel:
        call = channel.unary_call("/t.S/A", tpb.Empty(), tpb.Empty, tpb.Empty, timeout=30)
        conn, env = fake.next_request()
        ping = type(env)(call_id=0)
        ping.ping.opaque = 77
        conn.send(ping)
        pong = conn.next(timeout=10)
        assert pong.WhichOneof("kind") == "pong" and pong.pong.opaque == 77
        conn.respond(env.call_id)
        call.result(timeout=10)
