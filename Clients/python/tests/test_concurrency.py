"""Many threads share one client and its one connection."""
from __future__ import annotations

import threading

from helpers import make_channel

from sessionclient import RPCError, SessionClient, StatusCode, sessions_pb2 as pb, test_service_pb2 as tpb

THREADS = 16
CALLS_PER_THREAD = 25


def test_threads_share_one_connection(client: SessionClient, uid):
    channel_id = f"conc-{uid}"
    make_channel(client, channel_id)
    errors = []
    seen = {}
    barrier = threading.Barrier(THREADS)

    def worker(t: int) -> None:
        try:
            barrier.wait(timeout=30)
            for i in range(CALLS_PER_THREAD):
                conversation = f"conv-{uid}-{t}-{i}"
                created = client.sessions.create_session(
                    pb.CreateSessionRequest(conversation_id=conversation, channel_id=channel_id), timeout=30)
                # Each answer belongs to its own request: no mix-up between interleaved calls.
                assert created.session.conversation_id == conversation
                got = client.sessions.get_session(pb.GetSessionRequest(session_id=created.session.id), timeout=30)
                assert got.session.id == created.session.id
                size = (t * CALLS_PER_THREAD + i) % 5000
                echoed = client.test.unary_call(tpb.SimpleRequest(response_size=size), timeout=30)
                assert len(echoed.payload.body) == size
                if i % 5 == 0:
                    messages = list(client.test.streaming_output_call(tpb.StreamingOutputCallRequest(
                        response_parameters=[tpb.ResponseParameters(size=k) for k in range(1, 4)]), timeout=30))
                    assert [len(m.payload.body) for m in messages] == [1, 2, 3]
                if i % 7 == 0:
                    try:
                        client.sessions.get_session(pb.GetSessionRequest(session_id=f"missing-{t}-{i}"), timeout=30)
                        raise AssertionError("expected NOT_FOUND")
                    except RPCError as e:
                        assert e.code == StatusCode.NOT_FOUND
                seen[conversation] = created.session.id
        except BaseException as e:  # noqa: BLE001
            errors.append((t, e))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not any(th.is_alive() for th in threads), "a worker hung"
    assert not errors, errors[:3]
    assert len(seen) == THREADS * CALLS_PER_THREAD
    assert len(set(seen.values())) == THREADS * CALLS_PER_THREAD
    assert client.channel.stats == {"connects": 1, "goaways": 0}
    listed = client.sessions.list_sessions(pb.ListSessionsRequest(channel_id=channel_id, page_size=1000)).sessions
    assert len(listed) == THREADS * CALLS_PER_THREAD


def test_many_futures_in_flight_at_once(client: SessionClient):
    calls = [client.test.unary_call_future(tpb.SimpleRequest(response_size=i), timeout=60) for i in range(300)]
    assert [len(c.result(timeout=60).payload.body) for c in calls] == list(range(300))
    done = threading.Event()
    calls[-1].add_done_callback(lambda c: done.set())
    assert done.is_set()
    assert client.channel.stats["connects"] == 1


def test_concurrent_first_calls_open_a_single_connection(server, make_client):
    client = make_client(server.address, server.admin_token)
    barrier = threading.Barrier(12)
    errors = []

    def first_call() -> None:
        try:
            barrier.wait(timeout=30)
            assert client.tokens.who_am_i(timeout=30).role == pb.ADMIN
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=first_call) for _ in range(12)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors, errors[:3]
    assert client.channel.stats["connects"] == 1
