// session-bench - closed-loop load client for sessiond's RPC protocol (docs/PROTOCOL.md).
//
// A port of the anchors' loadgen.c (../shared/bench-anchors/c/loadgen.c) to our wire protocol,
// with the same flags, the same closed loop and the same output line, so that its numbers sit
// next to the anchors' in one table.
//
// C connections; each sends the 8-byte preface, checks the server's, and keeps D unary calls
// of /grpc.testing.TestService/UnaryCall in flight (pipelined). When a Response arrives, its
// latency (send -> receive) is recorded and a new call is sent on the same connection. Call ids
// increase per connection. Responses may arrive in any order (PROTOCOL.md 4.2): each in-flight
// call sits in a slot indexed by call_id & mask, so finding it is O(1).
//
// Each request is Envelope{call_id, Request{method, payload = SimpleRequest{payload{body = SIZE
// bytes}, response_size = SIZE}}}: the SimpleRequest bytes are packed once, the envelope is
// packed per request with protobuf-c straight into the write buffer. Each Response must name a
// call in flight, carry status 0 and a payload that decodes as SimpleResponse with SIZE body
// bytes; anything else counts in `errors`. Decoding uses protobuf-c with a per-thread bump
// allocator reset after every frame (no malloc/free per response).
//
// Only calls completing inside the measurement window [warmup, warmup+duration] count.
//
// usage: session-bench --host 127.0.0.1 --port 7411 --conns C --depth D --size 256
//                      --duration 5 [--warmup 1] [--threads 1]
// output (one line): rps=... p50_us=... p99_us=... p999_us=... n=... errors=...
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rpc_envelope.pb-c.h"
#include "test_service.pb-c.h"

#define METHOD "/grpc.testing.TestService/UnaryCall"
#define MAX_FRAME (4u * 1024u * 1024u)   // the protocol's default limit; refuse larger frames
static const uint8_t PREFACE[8] = { 'S', 'E', 'S', 'S', 'R', 'P', 'C', 0x01 };

typedef struct { uint64_t id, ts; } slot_t;   // id 0 = free (0 is never a call id)

typedef struct {
    int fd;
    slot_t *slots; uint64_t mask;  // in-flight calls, slot = call_id & mask (capacity >= 2*depth)
    size_t inflight;
    uint64_t next_id;              // call ids start at 1 and only grow
    int got_preface;
    uint8_t *rbuf; size_t rcap, rlen;
    uint8_t *wbuf; size_t wcap, wlen, woff;
    int want_out, dead;
} conn_t;

// Bump allocator for protobuf-c unpacking: reset after each frame. Allocations that do not fit
// fall back to malloc and are freed at the next reset.
typedef struct big_t { struct big_t *next; } big_t;
typedef struct {
    uint8_t *buf; size_t cap, used;
    big_t *big;
} arena_t;

typedef struct {
    int idx, nconns;
    conn_t *conns;
    uint64_t *lat; size_t nlat, cap;
    long errors;
    arena_t arena;
    ProtobufCAllocator alloc;
    Sessionrpc__V1__Envelope env;   // the request envelope; only call_id changes
    Sessionrpc__V1__Request req;
    pthread_t th;
} thr_t;

static const char *g_host = "127.0.0.1";
static int g_port = 7411, g_conns = 1, g_depth = 1, g_size = 256, g_threads = 1;
static double g_duration = 5.0, g_warmup = 1.0;
static uint64_t g_t_start, g_t_end;  // measurement window (ns, CLOCK_MONOTONIC)
static uint8_t *g_simple_req; static size_t g_simple_req_len;  // SimpleRequest, packed once
static size_t g_env_max;             // largest packed request envelope (call_id = UINT64_MAX)

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
static void die(const char *m) { perror(m); exit(1); }

static void ensure(uint8_t **buf, size_t *cap, size_t need) {
    if (need <= *cap) return;
    size_t n = *cap ? *cap : 65536;
    while (n < need) n *= 2;
    *buf = realloc(*buf, n);
    if (!*buf) die("realloc");
    *cap = n;
}

// ---------------------------------------------------------------- arena allocator
static void *arena_alloc(void *data, size_t size) {
    arena_t *a = data;
    size_t off = (a->used + 15) & ~(size_t)15;
    if (off + size <= a->cap) { a->used = off + size; return a->buf + off; }
    big_t *b = malloc(sizeof(big_t) + 16 + size);   // header padded to keep 16-byte alignment
    if (!b) return NULL;
    b->next = a->big; a->big = b;
    return (uint8_t *)b + 16;
}
static void arena_free(void *data, void *p) { (void)data; (void)p; }  // freed at reset
static void arena_reset(arena_t *a, size_t frame_len) {
    while (a->big) { big_t *n = a->big->next; free(a->big); a->big = n; }
    a->used = 0;
    size_t need = 2 * frame_len + 4096;              // envelope + its payload copy + the body copy
    if (need > a->cap) { free(a->buf); a->cap = 0; a->buf = NULL; ensure(&a->buf, &a->cap, need); }
}

// ---------------------------------------------------------------- requests
static void put_be32(uint8_t *p, uint32_t v) { v = htonl(v); memcpy(p, &v, 4); }

static void enqueue_request(thr_t *t, conn_t *c, uint64_t ts) {
    uint64_t id = c->next_id;
    while (c->slots[id & c->mask].id) id++;          // only when responses came out of order
    c->next_id = id + 1;
    slot_t *s = &c->slots[id & c->mask];
    s->id = id; s->ts = ts;
    c->inflight++;
    ensure(&c->wbuf, &c->wcap, c->wlen + 4 + g_env_max);
    uint8_t *p = c->wbuf + c->wlen;
    t->env.call_id = id;
    size_t n = sessionrpc__v1__envelope__pack(&t->env, p + 4);
    put_be32(p, (uint32_t)n);
    c->wlen += 4 + n;
}

static void enqueue_pong(conn_t *c, uint64_t opaque) {
    Sessionrpc__V1__Pong pong = SESSIONRPC__V1__PONG__INIT;
    Sessionrpc__V1__Envelope e = SESSIONRPC__V1__ENVELOPE__INIT;
    pong.opaque = opaque;
    e.kind_case = SESSIONRPC__V1__ENVELOPE__KIND_PONG;
    e.pong = &pong;
    size_t n = sessionrpc__v1__envelope__get_packed_size(&e);
    ensure(&c->wbuf, &c->wcap, c->wlen + 4 + n);
    put_be32(c->wbuf + c->wlen, (uint32_t)n);
    sessionrpc__v1__envelope__pack(&e, c->wbuf + c->wlen + 4);
    c->wlen += 4 + n;
}

static int flush_out(int epfd, conn_t *c) {
    while (c->woff < c->wlen) {
        ssize_t n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
        if (n > 0) { c->woff += (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        return -1;
    }
    if (c->woff == c->wlen) c->woff = c->wlen = 0;
    int want = c->wlen > 0;
    if (want != c->want_out) {
        struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c };
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = want;
    }
    return 0;
}

static void record(thr_t *t, uint64_t v) {
    if (t->nlat == t->cap) {
        t->cap = t->cap ? t->cap * 2 : (1u << 20);
        t->lat = realloc(t->lat, t->cap * sizeof *t->lat);
        if (!t->lat) die("realloc lat");
    }
    t->lat[t->nlat++] = v;
}

// ---------------------------------------------------------------- responses
// One frame (the envelope bytes). Returns -1 when the connection is unusable.
static int on_frame(thr_t *t, conn_t *c, const uint8_t *f, size_t len, uint64_t now) {
    arena_reset(&t->arena, len);
    Sessionrpc__V1__Envelope *e = sessionrpc__v1__envelope__unpack(&t->alloc, len, f);
    if (!e) { t->errors++; return -1; }                       // not an envelope: stream is lost
    switch (e->kind_case) {
    case SESSIONRPC__V1__ENVELOPE__KIND_RESPONSE: break;
    case SESSIONRPC__V1__ENVELOPE__KIND_PING: enqueue_pong(c, e->ping ? e->ping->opaque : 0); return 0;
    case SESSIONRPC__V1__ENVELOPE__KIND_PONG: return 0;
    case SESSIONRPC__V1__ENVELOPE__KIND_GO_AWAY:
        fprintf(stderr, "session-bench: GoAway code %u: %s\n", e->go_away ? e->go_away->error_code : 0,
                e->go_away && e->go_away->reason ? e->go_away->reason : "");
        t->errors++; return -1;
    default: t->errors++; return 0;                             // a stream message on a unary call
    }
    uint64_t id = e->call_id;
    slot_t *s = &c->slots[id & c->mask];
    if (id == 0 || s->id != id) { t->errors++; return 0; }      // not a call in flight
    uint64_t sent = s->ts;
    s->id = 0;
    c->inflight--;
    Sessionrpc__V1__Response *r = e->response;
    int ok = r && r->status_code == 0 && r->result_case == SESSIONRPC__V1__RESPONSE__RESULT_PAYLOAD;
    if (ok) {
        Grpc__Testing__SimpleResponse *sr = grpc__testing__simple_response__unpack(&t->alloc, r->payload.len, r->payload.data);
        ok = sr && sr->payload && sr->payload->body.len == (size_t)g_size;
    } else if (r && r->status_code != 0 && t->errors < 3) {
        fprintf(stderr, "session-bench: call %llu status %u: %s\n", (unsigned long long)id, r->status_code,
                r->status_message ? r->status_message : "");
    }
    if (!ok) t->errors++;
    if (sent >= g_t_start && now <= g_t_end) record(t, now - sent);
    if (now < g_t_end) enqueue_request(t, c, now);
    return 0;
}

static int on_readable(int epfd, thr_t *t, conn_t *c) {
    for (;;) {
        ensure(&c->rbuf, &c->rcap, c->rlen + 65536);
        ssize_t n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
        if (n == 0) return -1;
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            return -1;
        }
        c->rlen += (size_t)n;
        if (c->rlen < c->rcap) break;   // short read: socket drained
    }
    uint64_t now = now_ns();
    size_t off = 0;
    if (!c->got_preface) {
        if (c->rlen < sizeof PREFACE) return flush_out(epfd, c);
        if (memcmp(c->rbuf, PREFACE, sizeof PREFACE)) {
            fprintf(stderr, "session-bench: the server did not answer with the SESSRPC v1 preface\n");
            t->errors++; return -1;
        }
        c->got_preface = 1;
        off = sizeof PREFACE;
    }
    while (c->rlen - off >= 4) {
        uint32_t len;
        memcpy(&len, c->rbuf + off, 4);
        len = ntohl(len);
        if (len > MAX_FRAME) { t->errors++; return -1; }
        if (c->rlen - off - 4 < len) break;
        if (on_frame(t, c, c->rbuf + off + 4, len, now)) return -1;
        off += 4 + (size_t)len;
    }
    if (off) { memmove(c->rbuf, c->rbuf + off, c->rlen - off); c->rlen -= off; }
    return flush_out(epfd, c);
}

static void *thr_main(void *arg) {
    thr_t *t = arg;
    int epfd = epoll_create1(0);
    if (epfd < 0) die("epoll_create1");
    uint64_t t0 = now_ns();
    for (int i = 0; i < t->nconns; i++) {
        conn_t *c = &t->conns[i];
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
        ensure(&c->wbuf, &c->wcap, sizeof PREFACE);
        memcpy(c->wbuf, PREFACE, sizeof PREFACE);   // preface and the first D calls in one write
        c->wlen = sizeof PREFACE;
        for (int d = 0; d < g_depth; d++) enqueue_request(t, c, t0);
        if (flush_out(epfd, c)) { c->dead = 1; t->errors++; }
    }
    struct epoll_event evs[256];
    uint64_t drain_deadline = g_t_end + 2000000000ull;  // allow 2s to drain in-flight
    for (;;) {
        uint64_t now = now_ns();
        size_t inflight = 0;
        for (int i = 0; i < t->nconns; i++) if (!t->conns[i].dead) inflight += t->conns[i].inflight;
        if (now >= g_t_end && inflight == 0) break;
        if (now >= drain_deadline) break;
        int n = epoll_wait(epfd, evs, 256, 10);
        if (n < 0) { if (errno == EINTR) continue; die("epoll_wait"); }
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c->dead) continue;
            int rc = 0;
            if (evs[i].events & (EPOLLERR | EPOLLHUP)) rc = -1;
            if (!rc && (evs[i].events & EPOLLIN)) rc = on_readable(epfd, t, c);
            if (!rc && (evs[i].events & EPOLLOUT)) rc = flush_out(epfd, c);
            if (rc) { c->dead = 1; t->errors++; epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL); }
        }
    }
    close(epfd);
    return NULL;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}
static double pct(uint64_t *v, size_t n, double p) {
    if (!n) return 0.0 / 0.0;
    size_t i = (size_t)(p * (double)n + 0.999999999);
    if (i < 1) i = 1;
    if (i > n) i = n;
    return (double)v[i - 1] / 1000.0;
}

static void init_thread_messages(thr_t *t) {
    t->alloc.alloc = arena_alloc;
    t->alloc.free = arena_free;
    t->alloc.allocator_data = &t->arena;
    arena_reset(&t->arena, 65536);
    Sessionrpc__V1__Request req = SESSIONRPC__V1__REQUEST__INIT;
    req.method = (char *)METHOD;
    req.payload.data = g_simple_req;
    req.payload.len = g_simple_req_len;
    t->req = req;
    Sessionrpc__V1__Envelope env = SESSIONRPC__V1__ENVELOPE__INIT;
    env.kind_case = SESSIONRPC__V1__ENVELOPE__KIND_REQUEST;
    t->env = env;
    t->env.request = &t->req;
}

int main(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--host")) g_host = v;
        else if (!strcmp(k, "--port")) g_port = atoi(v);
        else if (!strcmp(k, "--conns")) g_conns = atoi(v);
        else if (!strcmp(k, "--depth")) g_depth = atoi(v);
        else if (!strcmp(k, "--size")) g_size = atoi(v);
        else if (!strcmp(k, "--duration")) g_duration = atof(v);
        else if (!strcmp(k, "--warmup")) g_warmup = atof(v);
        else if (!strcmp(k, "--threads")) g_threads = atoi(v);
        else { fprintf(stderr, "unknown arg %s\n", k); return 2; }
    }
    if (argc % 2 == 0) { fprintf(stderr, "missing value for %s\n", argv[argc - 1]); return 2; }
    if (g_conns < 1 || g_depth < 1 || g_depth > 65536 || g_size < 0 || g_size > 1024 * 1024 ||
        g_threads < 1 || g_duration <= 0 || g_warmup < 0) {
        fprintf(stderr, "bad args\n"); return 2;
    }
    if (g_threads > g_conns) g_threads = g_conns;
    signal(SIGPIPE, SIG_IGN);

    // The SimpleRequest is the same for every call: pack it once.
    uint8_t *body = malloc((size_t)g_size + 1);
    memset(body, 'x', (size_t)g_size);
    Grpc__Testing__Payload payload = GRPC__TESTING__PAYLOAD__INIT;
    payload.body.data = body;
    payload.body.len = (size_t)g_size;
    Grpc__Testing__SimpleRequest sreq = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    sreq.response_size = g_size;
    sreq.payload = &payload;
    g_simple_req_len = grpc__testing__simple_request__get_packed_size(&sreq);
    g_simple_req = malloc(g_simple_req_len + 1);
    grpc__testing__simple_request__pack(&sreq, g_simple_req);
    {
        thr_t probe;
        memset(&probe, 0, sizeof probe);
        init_thread_messages(&probe);
        probe.env.call_id = UINT64_MAX;
        g_env_max = sessionrpc__v1__envelope__get_packed_size(&probe.env);
        free(probe.arena.buf);
    }

    // connect everything first (blocking), then switch to non-blocking
    uint64_t cap = 1;
    while (cap < 2 * (uint64_t)g_depth) cap <<= 1;
    conn_t *conns = calloc((size_t)g_conns, sizeof *conns);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)g_port) };
    if (inet_pton(AF_INET, g_host, &a.sin_addr) != 1) die("inet_pton");
    int one = 1;
    for (int i = 0; i < g_conns; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) die("socket");
        if (connect(fd, (struct sockaddr *)&a, sizeof a)) die("connect");
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        conns[i].fd = fd;
        conns[i].slots = calloc((size_t)cap, sizeof(slot_t));
        conns[i].mask = cap - 1;
        conns[i].next_id = 1;
    }
    uint64_t t0 = now_ns();
    g_t_start = t0 + (uint64_t)(g_warmup * 1e9);
    g_t_end = g_t_start + (uint64_t)(g_duration * 1e9);

    thr_t *ts = calloc((size_t)g_threads, sizeof *ts);
    int per = g_conns / g_threads, extra = g_conns % g_threads, base = 0;
    for (int i = 0; i < g_threads; i++) {
        ts[i].idx = i;
        ts[i].nconns = per + (i < extra);
        ts[i].conns = conns + base;
        base += ts[i].nconns;
        init_thread_messages(&ts[i]);
        pthread_create(&ts[i].th, NULL, thr_main, &ts[i]);
    }
    size_t total = 0; long errors = 0;
    for (int i = 0; i < g_threads; i++) { pthread_join(ts[i].th, NULL); total += ts[i].nlat; errors += ts[i].errors; }
    uint64_t *all = malloc((total ? total : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < g_threads; i++) { memcpy(all + k, ts[i].lat, ts[i].nlat * sizeof *all); k += ts[i].nlat; }
    qsort(all, total, sizeof *all, cmp_u64);
    printf("rps=%.0f p50_us=%.1f p99_us=%.1f p999_us=%.1f n=%zu errors=%ld\n",
           (double)total / g_duration, pct(all, total, 0.50), pct(all, total, 0.99),
           pct(all, total, 0.999), total, errors);
    for (int i = 0; i < g_conns; i++) close(conns[i].fd);
    return errors ? 1 : 0;
}
