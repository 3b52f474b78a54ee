"""TLS on the client side: against a TLS fake server, and against sessiond with --tls-cert."""
from __future__ import annotations

import shutil
import ssl
import subprocess

import pytest
from fakeserver import FakeServer

from sessionclient import Channel, RPCError, SessionClient, StatusCode, sessions_pb2 as pb, test_service_pb2 as tpb

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def server_context(certificate) -> ssl.SSLContext:
    cert, key = certificate
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def test_calls_over_tls(certificate):
    cert, _ = certificate
    client_ctx = ssl.create_default_context(cafile=str(cert))
    with FakeServer(ssl_context=server_context(certificate)) as fake:
        with SessionClient(fake.address, "t0ken", ssl_context=client_ctx) as client:
            call = client.tokens.who_am_i_future(timeout=10)
            conn, env = fake.next_request()
            assert conn.client_preface == b"SESSRPC\x01"
            assert env.request.method == "/sessions.v1.TokenService/WhoAmI"
            assert [(m.key, m.value) for m in env.request.metadata] == [("authorization", b"Bearer t0ken")]
            conn.respond(env.call_id, payload=pb.TokenInfo(name="over-tls", role=pb.ADMIN).SerializeToString())
            assert call.result(timeout=10).name == "over-tls"

            # A stream of many frames, larger than one TLS record.
            stream = client.channel.server_streaming(
                "/t.S/Stream", tpb.StreamingOutputCallRequest(), tpb.StreamingOutputCallRequest,
                tpb.StreamingOutputCallResponse, timeout=30)
            conn, env = fake.next_request()
            for i in range(50):
                msg = type(env)(call_id=env.call_id)
                msg.stream_message.payload = tpb.StreamingOutputCallResponse(
                    payload=tpb.Payload(body=bytes([i]) * 5000)).SerializeToString()
                conn.send(msg)
            conn.respond(env.call_id, payload=None)
            bodies = [m.payload.body for m in stream]
            assert bodies == [bytes([i]) * 5000 for i in range(50)]
            assert client.channel.stats["connects"] == 1


def test_a_certificate_from_an_unknown_ca_is_refused(certificate):
    with FakeServer(ssl_context=server_context(certificate)) as fake:
        with Channel(fake.address, ssl_context=ssl.create_default_context()) as channel:
            with pytest.raises(RPCError) as info:
                channel.unary("/t.S/A", tpb.Empty(), tpb.Empty, tpb.Empty, timeout=10)
            assert info.value.code == StatusCode.UNAVAILABLE
            assert "TLS handshake" in info.value.message


def test_a_real_sessiond_over_tls(make_server, certificate):
    """sessiond --tls-cert/--tls-key: calls over TLS work; a plaintext client is told the port requires TLS."""
    cert, key = certificate
    server = make_server("sessiond-tls", args=("--tls-cert", str(cert), "--tls-key", str(key)))
    ctx = ssl.create_default_context(cafile=str(cert))
    with SessionClient(server.address, server.admin_token, ssl_context=ctx) as client:
        created = client.channels.create_channel(
            pb.ChannelRequest(channel=pb.Channel(id="web-tls", type=pb.ENHANCED_WEB_CHAT_V2)), timeout=10)
        assert created.channel.id == "web-tls"
        listed = client.channels.list_channels(pb.ListChannelsRequest(), timeout=10)
        assert [c.id for c in listed.channels] == ["web-tls"]
        assert client.tokens.who_am_i(timeout=10).role == pb.ADMIN
    with SessionClient(server.address, server.admin_token) as plain:
        with pytest.raises(RPCError) as info:
            plain.tokens.who_am_i(timeout=10)
        assert info.value.code == StatusCode.UNAVAILABLE
        assert "requires TLS" in info.value.message
    with SessionClient(server.address, server.admin_token, ssl_context=ssl.create_default_context()) as untrusting:
        with pytest.raises(RPCError) as info:
            untrusting.tokens.who_am_i(timeout=10)
        assert info.value.code == StatusCode.UNAVAILABLE
