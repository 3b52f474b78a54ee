#!/usr/bin/env python3
"""A hostile peer against a running sessiond: connections that pipeline many
large unary calls (ListSessions, page_size 1000) and never read the answers.

Prints sessiond's resident memory before, while the peers hold their
connections, and after they close. The per-connection output bound
(--max-buffered-bytes, 8 MiB by default) must hold for every kind of call.

    scripts/probe-output-bound.py --address 127.0.0.1:7411 --token "$(cat DATA/admin-token)" --pid PID

Speaks the wire protocol of docs/PROTOCOL.md with a hand-written protobuf
encoder (no generated code needed).
"""
import argparse
import socket
import struct
import time

PREFACE = b"SESSRPC\x01"


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(number, data):
    return varint(number << 3 | 2) + varint(len(data)) + data


def field_varint(number, value):
    return varint(number << 3) + varint(value)


def request_frame(call_id, method, payload, token):
    md = field_bytes(1, b"authorization") + field_bytes(2, ("Bearer " + token).encode())
    req = field_bytes(1, method.encode()) + field_bytes(3, md) + field_bytes(4, payload)
    env = field_varint(1, call_id) + field_bytes(2, req)
    return struct.pack(">I", len(env)) + env


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def connect(host, port, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect((host, port))
    s.sendall(PREFACE)
    return s


def read_frames(sock, count):
    """Reads `count` frames (after the 8-byte preface) and returns them."""
    buf = b""
    while len(buf) < 8:
        buf += sock.recv(65536)
    buf = buf[8:]
    frames = []
    while len(frames) < count:
        while len(buf) < 4:
            buf += sock.recv(65536)
        (n,) = struct.unpack(">I", buf[:4])
        while len(buf) < 4 + n:
            buf += sock.recv(65536)
        frames.append(buf[4 : 4 + n])
        buf = buf[4 + n :]
    return frames


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--address", default="127.0.0.1:7411")
    ap.add_argument("--token", required=True)
    ap.add_argument("--pid", type=int, required=True, help="sessiond's pid, to read its RSS")
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--calls", type=int, default=1024)
    a = ap.parse_args()
    host, port = a.address.rsplit(":", 1)
    port = int(port)

    # Data for 80 KB pages: one channel, `sessions` waiting sessions.
    setup = connect(host, port)
    channel = field_bytes(1, field_bytes(1, b"probe-web") + field_varint(2, 3))
    frames = [request_frame(1, "/sessions.v1.ChannelService/CreateChannel", channel, a.token)]
    stamp = int(time.time() * 1000)
    for i in range(a.sessions):
        body = field_bytes(1, f"probe-{stamp}-{i}".encode()) + field_bytes(2, b"probe-web")
        frames.append(request_frame(2 + i, "/sessions.v1.SessionService/CreateSession", body, a.token))
    setup.sendall(b"".join(frames))
    read_frames(setup, len(frames))
    setup.close()

    list_page = field_varint(5, 1000)
    burst = b"".join(request_frame(1 + i, "/sessions.v1.SessionService/ListSessions", list_page, a.token) for i in range(a.calls))
    before = rss_mib(a.pid)
    hogs = []
    for _ in range(a.connections):
        s = connect(host, port, rcvbuf=4096)
        s.setblocking(False)
        hogs.append([s, memoryview(burst)])
    # Send as much of each burst as the server reads; never read an answer.
    deadline = time.time() + 20
    peak = before
    while time.time() < deadline:
        for h in hogs:
            if len(h[1]):
                try:
                    n = h[0].send(h[1])
                    h[1] = h[1][n:]
                except BlockingIOError:
                    pass
        peak = max(peak, rss_mib(a.pid))
        time.sleep(0.05)
    held = rss_mib(a.pid)
    unsent = sum(len(h[1]) for h in hogs)
    for h in hogs:
        h[0].close()
    time.sleep(3)
    after = rss_mib(a.pid)
    print(f"sessiond RSS: before {before:.0f} MiB, peak {peak:.0f} MiB, held {held:.0f} MiB "
          f"({(peak - before) / a.connections:.1f} MiB per connection), after close {after:.0f} MiB; "
          f"request bytes the server never read: {unsent}")


if __name__ == "__main__":
    main()
