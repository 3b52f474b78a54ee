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
// --tls-ca FILE: every connection (setup included) handshakes TLS first (OpenSSL, certificate
// checked against FILE and the --host address), then the same protocol runs inside it; a
// TLS run sits beside a plaintext one to show what the encryption costs.
//
// usage: session-bench --host 127.0.0.1 --port 7411 --conns C --depth D --size 256
//                      --duration 5 [--warmup 1] [--threads 1]
// output (one line): rps=... p50_us=... p99_us=... p999_us=... n=... errors=...
//
// ---- --workload lifecycle (the domain benchmark; `echo` above stays the default)
// The same closed loop, but every call is a state-changing RPC of sessions.v1.SessionService
// carrying `authorization: Bearer <token>` metadata (--token T, or --token-file F: its first line,
// e.g. DATA_DIR/admin-token; an admin token may do everything). Each of the D in-flight slots of a
// connection runs conversation cycles, one call at a time:
//   1. PostCustomerMessage(new conversation id, new message id, --channel)   -> expects ACTIVE (routed)
//   2. MarkInactive(the session id of step 1's response)                     -> expects INACTIVE
//   3. PostCustomerMessage(same conversation, new message id): the customer returns -> expects ACTIVE
//   4. EndSession(the session id)                                           -> expects ENDED
// A status other than 0 (or a session in another status than expected) counts in `errors`, the
// first few are printed to stderr, and the slot starts a new cycle. Conversation and message ids
// carry a per-run prefix (pid + start time), so runs against one server never collide.
// output: rps=... p50_us=... p99_us=... p999_us=... n=... errors=... cycles=...
// where n counts every state-changing RPC completing in the window and cycles the cycles whose
// last call (EndSession) completed in it.
//
//   session-bench --workload lifecycle --token-file D/admin-token --channel bench-web
//                 --host 127.0.0.1 --port 7411 --conns 8 --depth 8 --duration 5 [--warmup 1]
//
// ---- --setup (before a lifecycle run)
// Creates the channel (--channel, ENHANCED_WEB_CHAT_V2, tab-based; 24 h auto-end) and --reps reps
// (default 40) named <--rep-prefix>-NNN with --capacity (default 100, the most a rep may have)
// units, both Enhanced Chat permissions and presence AVAILABLE, so that routing always finds room
// for C x D open sessions (keep C x D <= reps x capacity). ALREADY_EXISTS counts as done.
//   session-bench --setup --token-file D/admin-token --channel bench-web [--reps 40 --capacity 100]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "rpc_envelope.pb-c.h"
#include "sessions.pb-c.h"
#include "test_service.pb-c.h"

#define METHOD "/grpc.testing.TestService/UnaryCall"
#define MAX_FRAME (4u * 1024u * 1024u)   // the protocol's default limit; refuse larger frames
static const uint8_t PREFACE[8] = { 'S', 'E', 'S', 'S', 'R', 'P', 'C', 0x01 };

typedef struct { uint64_t id, ts; uint32_t lane; } slot_t;   // id 0 = free (0 is never a call id)

// lifecycle: one conversation cycle in progress per in-flight slot ("lane") of a connection
enum { STEP_MESSAGE = 0, STEP_INACTIVE = 1, STEP_RETURN = 2, STEP_END = 3, STEPS = 4 };
#define ID_MAX 160
typedef struct {
    int step;
    uint64_t cycle;                  // per-lane cycle number, part of the conversation id
    char conv[ID_MAX];               // conversation id of the current cycle
    char sess[ID_MAX + 96];          // session id returned by step 1
} lane_t;

typedef struct {
    int fd;
    slot_t *slots; uint64_t mask;  // in-flight calls, slot = call_id & mask (capacity >= 2*depth)
    size_t inflight;
    uint64_t next_id;              // call ids start at 1 and only grow
    int got_preface;
    uint8_t *rbuf; size_t rcap, rlen;
    uint8_t *wbuf; size_t wcap, wlen, woff;
    int want_out, dead;
    int idx;                       // connection number (lifecycle ids)
    lane_t *lanes;                 // lifecycle: D lanes
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
    Sessionrpc__V1__Envelope env;   // the request envelope; only call_id changes (echo)
    Sessionrpc__V1__Request req;
    // lifecycle
    Sessionrpc__V1__MetadataEntry auth; Sessionrpc__V1__MetadataEntry *authp;
    uint8_t pbuf[2048];             // the packed request message of the call being sent
    long cycles;
    long per_method_errors[STEPS];
    pthread_t th;
} thr_t;

static const char *g_host = "127.0.0.1";

// ---------------------------------------------------------------- optional TLS
static SSL_CTX *g_tls;          // set by --tls-ca
#define MAX_FDS 65536
static SSL *g_ssl_of_fd[MAX_FDS];

// read(2)/write(2), or SSL_read/SSL_write when the fd carries TLS; a TLS "want" is EAGAIN.
static ssize_t io_read(int fd, void *p, size_t n) {
    SSL *ssl = fd >= 0 && fd < MAX_FDS ? g_ssl_of_fd[fd] : NULL;
    if (!ssl) return read(fd, p, n);
    int r = SSL_read(ssl, p, n > 1u << 30 ? 1 << 30 : (int)n);
    if (r > 0) return r;
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) { errno = EAGAIN; return -1; }
    if (e == SSL_ERROR_ZERO_RETURN) return 0;
    errno = EIO;
    return -1;
}
static ssize_t io_write(int fd, const void *p, size_t n) {
    SSL *ssl = fd >= 0 && fd < MAX_FDS ? g_ssl_of_fd[fd] : NULL;
    if (!ssl) return write(fd, p, n);
    int r = SSL_write(ssl, p, n > 1u << 30 ? 1 << 30 : (int)n);
    if (r > 0) return r;
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) { errno = EAGAIN; return -1; }
    errno = EIO;
    return -1;
}
static void tls_init(const char *ca) {
    g_tls = SSL_CTX_new(TLS_client_method());
    if (!g_tls || SSL_CTX_load_verify_locations(g_tls, ca, NULL) != 1) {
        fprintf(stderr, "session-bench: cannot load the TLS CA %s\n", ca); ERR_print_errors_fp(stderr); exit(2);
    }
    SSL_CTX_set_verify(g_tls, SSL_VERIFY_PEER, NULL);
    // Retries after EAGAIN may pass a grown buffer from another address.
    SSL_CTX_set_mode(g_tls, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}
// On a connected, still blocking socket.
static void tls_connect(int fd) {
    if (!g_tls) return;
    if (fd >= MAX_FDS) { fprintf(stderr, "session-bench: fd %d too large for TLS\n", fd); exit(2); }
    SSL *ssl = SSL_new(g_tls);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), g_host);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) {
        fprintf(stderr, "session-bench: TLS handshake with %s failed\n", g_host); ERR_print_errors_fp(stderr); exit(1);
    }
    g_ssl_of_fd[fd] = ssl;
}
static int g_port = 7411, g_conns = 1, g_depth = 1, g_size = 256, g_threads = 1;
static double g_duration = 5.0, g_warmup = 1.0;
static uint64_t g_t_start, g_t_end;  // measurement window (ns, CLOCK_MONOTONIC)
static uint8_t *g_simple_req; static size_t g_simple_req_len;  // SimpleRequest, packed once
static size_t g_env_max;             // largest packed request envelope (call_id = UINT64_MAX)
// lifecycle / setup
static int g_lifecycle = 0, g_setup = 0, g_reps = 40, g_capacity = 100;
static const char *g_channel = "bench-web", *g_rep_prefix = "bench-rep", *g_token = NULL;
static char g_auth_value[1024];      // "Bearer <token>"
static char g_run_prefix[64];        // makes ids unique per run: lc-<pid>-<start ms>
static long g_error_prints = 0;      // stderr lines printed so far (all threads; approximate)
static const char *const STEP_METHOD[STEPS] = {
    "/sessions.v1.SessionService/PostCustomerMessage",
    "/sessions.v1.SessionService/MarkInactive",
    "/sessions.v1.SessionService/PostCustomerMessage",
    "/sessions.v1.SessionService/EndSession",
};
static const char *const STEP_NAME[STEPS] = { "PostCustomerMessage(new)", "MarkInactive", "PostCustomerMessage(return)", "EndSession" };
static const Sessions__V1__SessionStatus STEP_EXPECT[STEPS] = {
    SESSIONS__V1__SESSION_STATUS__ACTIVE, SESSIONS__V1__SESSION_STATUS__INACTIVE,
    SESSIONS__V1__SESSION_STATUS__ACTIVE, SESSIONS__V1__SESSION_STATUS__ENDED,
};

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

// ---------------------------------------------------------------- lifecycle requests
static void lane_new_cycle(conn_t *c, lane_t *l, int lane_idx, int thr_idx) {
    l->step = STEP_MESSAGE;
    l->cycle++;
    l->sess[0] = 0;
    snprintf(l->conv, sizeof l->conv, "%s-t%d-c%d-l%d-%llu", g_run_prefix, thr_idx, c->idx, lane_idx,
             (unsigned long long)l->cycle);
}

// Packs the lane's current step as a request envelope into the write buffer.
static void enqueue_lifecycle(thr_t *t, conn_t *c, uint32_t lane_idx, uint64_t ts) {
    lane_t *l = &c->lanes[lane_idx];
    uint64_t id = c->next_id;
    while (c->slots[id & c->mask].id) id++;
    c->next_id = id + 1;
    slot_t *s = &c->slots[id & c->mask];
    s->id = id; s->ts = ts; s->lane = lane_idx;
    c->inflight++;

    char msg_id[ID_MAX + 8];
    size_t plen = 0;
    switch (l->step) {
    case STEP_MESSAGE:
    case STEP_RETURN: {
        Sessions__V1__PostCustomerMessageRequest m = SESSIONS__V1__POST_CUSTOMER_MESSAGE_REQUEST__INIT;
        snprintf(msg_id, sizeof msg_id, "%s-m%d", l->conv, l->step == STEP_MESSAGE ? 1 : 2);
        m.conversation_id = l->conv;
        m.channel_id = (char *)g_channel;
        m.message_id = msg_id;
        m.text = l->step == STEP_MESSAGE ? (char *)"Hello, my order is late" : (char *)"I'm back";
        plen = sessions__v1__post_customer_message_request__pack(&m, t->pbuf);
        break;
    }
    case STEP_INACTIVE: {
        Sessions__V1__MarkInactiveRequest m = SESSIONS__V1__MARK_INACTIVE_REQUEST__INIT;
        m.session_id = l->sess;
        plen = sessions__v1__mark_inactive_request__pack(&m, t->pbuf);
        break;
    }
    default: {
        Sessions__V1__EndSessionRequest m = SESSIONS__V1__END_SESSION_REQUEST__INIT;
        m.session_id = l->sess;
        plen = sessions__v1__end_session_request__pack(&m, t->pbuf);
        break;
    }
    }
    t->req.method = (char *)STEP_METHOD[l->step];
    t->req.payload.data = t->pbuf;
    t->req.payload.len = plen;
    t->env.call_id = id;
    size_t need = sessionrpc__v1__envelope__get_packed_size(&t->env);
    ensure(&c->wbuf, &c->wcap, c->wlen + 4 + need);
    uint8_t *p = c->wbuf + c->wlen;
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
        ssize_t n = io_write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
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
static void report_error(long *printed, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report_error(long *printed, const char *fmt, ...) {
    if (__atomic_fetch_add(printed, 1, __ATOMIC_RELAXED) >= 5) return;   // the first few only
    va_list ap;
    va_start(ap, fmt);
    fputs("session-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static const char *status_name(Sessions__V1__SessionStatus st) {
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&sessions__v1__session_status__descriptor, (int)st);
    return v ? v->name : "?";
}

// lifecycle: the response of the lane's current step. Advances the lane, or starts a new cycle after
// an error. Always sends the lane's next call while the window is open.
static int on_lifecycle_response(thr_t *t, conn_t *c, uint32_t lane_idx, uint64_t id, Sessionrpc__V1__Response *r,
                                 uint64_t sent, uint64_t now) {
    lane_t *l = &c->lanes[lane_idx];
    int step = l->step, ok = 0;
    if (!r) {
        report_error(&g_error_prints, "call %llu (%s): response without body", (unsigned long long)id, STEP_NAME[step]);
    } else if (r->status_code != 0) {
        report_error(&g_error_prints, "call %llu (%s, conversation %s): status %u: %s", (unsigned long long)id,
                     STEP_NAME[step], l->conv, r->status_code, r->status_message ? r->status_message : "");
    } else if (r->result_case != SESSIONRPC__V1__RESPONSE__RESULT_PAYLOAD) {
        report_error(&g_error_prints, "call %llu (%s): status 0 without payload", (unsigned long long)id, STEP_NAME[step]);
    } else {
        Sessions__V1__SessionResponse *sr = sessions__v1__session_response__unpack(&t->alloc, r->payload.len, r->payload.data);
        if (!sr || !sr->session || !sr->session->id || !sr->session->id[0]) {
            report_error(&g_error_prints, "call %llu (%s): the payload is not a SessionResponse with a session",
                         (unsigned long long)id, STEP_NAME[step]);
        } else if (sr->session->status != STEP_EXPECT[step]) {
            report_error(&g_error_prints, "call %llu (%s, conversation %s): session %s is %s, expected %s",
                         (unsigned long long)id, STEP_NAME[step], l->conv, sr->session->id,
                         status_name(sr->session->status), status_name(STEP_EXPECT[step]));
        } else if (step == STEP_MESSAGE) {
            size_t n = strlen(sr->session->id);
            if (n >= sizeof l->sess) {
                report_error(&g_error_prints, "session id too long (%zu bytes)", n);
            } else {
                memcpy(l->sess, sr->session->id, n + 1);
                ok = 1;
            }
        } else {
            ok = strcmp(sr->session->id, l->sess) == 0;
            if (!ok) report_error(&g_error_prints, "call %llu (%s): answered for session %s, not %s",
                                  (unsigned long long)id, STEP_NAME[step], sr->session->id, l->sess);
        }
    }
    if (sent >= g_t_start && now <= g_t_end) {
        record(t, now - sent);
        if (ok && step == STEP_END) t->cycles++;
    }
    if (!ok) {
        t->errors++;
        t->per_method_errors[step]++;
        lane_new_cycle(c, l, (int)lane_idx, t->idx);
    } else if (step == STEP_END) {
        lane_new_cycle(c, l, (int)lane_idx, t->idx);
    } else {
        l->step = step + 1;
    }
    // After the window a lane still finishes the cycle it is in (not counted), so that the run
    // leaves no session open holding a rep's capacity for the next run on the same server.
    if (now < g_t_end || (ok && step != STEP_END)) enqueue_lifecycle(t, c, lane_idx, now);
    return 0;
}

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
    if (g_lifecycle) return on_lifecycle_response(t, c, s->lane, id, r, sent, now);
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
        ssize_t n = io_read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
        if (n == 0) return -1;
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            return -1;
        }
        c->rlen += (size_t)n;
        // A short read drained the socket; TLS returns one record at a time, so it reads on.
        if (c->rlen < c->rcap && !g_tls) break;
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
        if (g_lifecycle) {
            c->lanes = calloc((size_t)g_depth, sizeof(lane_t));
            if (!c->lanes) die("calloc lanes");
            for (int d = 0; d < g_depth; d++) {
                lane_new_cycle(c, &c->lanes[d], d, t->idx);
                enqueue_lifecycle(t, c, (uint32_t)d, t0);
            }
        } else {
            for (int d = 0; d < g_depth; d++) enqueue_request(t, c, t0);
        }
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
    if (g_lifecycle || g_setup) {
        Sessionrpc__V1__MetadataEntry m = SESSIONRPC__V1__METADATA_ENTRY__INIT;
        m.key = (char *)"authorization";
        m.value.data = (uint8_t *)g_auth_value;
        m.value.len = strlen(g_auth_value);
        t->auth = m;
        t->authp = &t->auth;
        t->req.n_metadata = 1;
        t->req.metadata = &t->authp;
    }
}

// ---------------------------------------------------------------- --setup
// One blocking connection, one call at a time.
static int setup_call(int fd, thr_t *t, uint64_t id, const char *method, const uint8_t *payload, size_t plen,
                      uint32_t *status, char *message, size_t mcap) {
    t->req.method = (char *)method;
    t->req.payload.data = (uint8_t *)payload;
    t->req.payload.len = plen;
    t->env.call_id = id;
    size_t n = sessionrpc__v1__envelope__get_packed_size(&t->env);
    uint8_t *out = malloc(4 + n);
    if (!out) die("malloc");
    put_be32(out, (uint32_t)n);
    sessionrpc__v1__envelope__pack(&t->env, out + 4);
    for (size_t off = 0; off < 4 + n;) {
        ssize_t w = io_write(fd, out + off, 4 + n - off);
        if (w <= 0) { if (w < 0 && errno == EINTR) continue; free(out); return -1; }
        off += (size_t)w;
    }
    free(out);
    for (;;) {   // frames until the Response of this call
        uint8_t hdr[4];
        uint32_t len;
        for (size_t off = 0; off < 4;) {
            ssize_t r = io_read(fd, hdr + off, 4 - off);
            if (r <= 0) { if (r < 0 && errno == EINTR) continue; return -1; }
            off += (size_t)r;
        }
        memcpy(&len, hdr, 4);
        len = ntohl(len);
        if (len > MAX_FRAME) return -1;
        uint8_t *f = malloc(len + 1);
        if (!f) die("malloc");
        for (size_t off = 0; off < len;) {
            ssize_t r = io_read(fd, f + off, len - off);
            if (r <= 0) { if (r < 0 && errno == EINTR) continue; free(f); return -1; }
            off += (size_t)r;
        }
        Sessionrpc__V1__Envelope *e = sessionrpc__v1__envelope__unpack(NULL, len, f);
        free(f);
        if (!e) return -1;
        if (e->kind_case == SESSIONRPC__V1__ENVELOPE__KIND_GO_AWAY) {
            fprintf(stderr, "session-bench: GoAway: %s\n", e->go_away && e->go_away->reason ? e->go_away->reason : "");
            sessionrpc__v1__envelope__free_unpacked(e, NULL);
            return -1;
        }
        if (e->kind_case == SESSIONRPC__V1__ENVELOPE__KIND_RESPONSE && e->call_id == id && e->response) {
            *status = e->response->status_code;
            snprintf(message, mcap, "%s", e->response->status_message ? e->response->status_message : "");
            sessionrpc__v1__envelope__free_unpacked(e, NULL);
            return 0;
        }
        sessionrpc__v1__envelope__free_unpacked(e, NULL);   // pings and anything else: ignore
    }
}

static int run_setup(void) {
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)g_port) };
    if (inet_pton(AF_INET, g_host, &a.sin_addr) != 1) die("inet_pton");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    tls_connect(fd);
    uint8_t pre[sizeof PREFACE];
    if (io_write(fd, PREFACE, sizeof PREFACE) != (ssize_t)sizeof PREFACE) die("write preface");
    for (size_t off = 0; off < sizeof pre;) {
        ssize_t r = io_read(fd, pre + off, sizeof pre - off);
        if (r <= 0) die("read preface");
        off += (size_t)r;
    }
    if (memcmp(pre, PREFACE, sizeof PREFACE)) { fprintf(stderr, "session-bench: not a SESSRPC v1 server\n"); return 1; }
    thr_t t;
    memset(&t, 0, sizeof t);
    init_thread_messages(&t);
    uint8_t buf[1024];
    uint32_t status;
    char message[512];
    uint64_t id = 1;
    int created = 0, existed = 0;

    Sessions__V1__Channel ch = SESSIONS__V1__CHANNEL__INIT;
    ch.id = (char *)g_channel;
    ch.type = SESSIONS__V1__CHANNEL_TYPE__ENHANCED_WEB_CHAT_V2;
    ch.capacity_model = SESSIONS__V1__CAPACITY_MODEL__TAB_BASED;
    Sessions__V1__ChannelRequest creq = SESSIONS__V1__CHANNEL_REQUEST__INIT;
    creq.channel = &ch;
    size_t n = sessions__v1__channel_request__pack(&creq, buf);
    if (setup_call(fd, &t, id++, "/sessions.v1.ChannelService/CreateChannel", buf, n, &status, message, sizeof message)) {
        fprintf(stderr, "session-bench: setup: the connection failed\n"); return 1;
    }
    if (status != 0 && status != 6) { fprintf(stderr, "session-bench: setup: CreateChannel %s: status %u: %s\n", g_channel, status, message); return 1; }
    status == 0 ? created++ : existed++;

    Sessions__V1__Permission perms[2] = { SESSIONS__V1__PERMISSION__ENHANCED_CHAT_USER, SESSIONS__V1__PERMISSION__ENHANCED_CHAT_REP };
    for (int i = 1; i <= g_reps; i++) {
        char rid[160], name[200];
        snprintf(rid, sizeof rid, "%s-%03d", g_rep_prefix, i);
        snprintf(name, sizeof name, "Bench rep %d", i);
        Sessions__V1__Rep rep = SESSIONS__V1__REP__INIT;
        rep.id = rid;
        rep.display_name = name;
        rep.capacity = g_capacity;
        rep.presence = SESSIONS__V1__PRESENCE__AVAILABLE;
        rep.n_permissions = 2;
        rep.permissions = perms;
        Sessions__V1__RepRequest rreq = SESSIONS__V1__REP_REQUEST__INIT;
        rreq.rep = &rep;
        n = sessions__v1__rep_request__pack(&rreq, buf);
        if (setup_call(fd, &t, id++, "/sessions.v1.RepService/CreateRep", buf, n, &status, message, sizeof message)) {
            fprintf(stderr, "session-bench: setup: the connection failed\n"); return 1;
        }
        if (status != 0 && status != 6) { fprintf(stderr, "session-bench: setup: CreateRep %s: status %u: %s\n", rid, status, message); return 1; }
        status == 0 ? created++ : existed++;
    }
    close(fd);
    printf("setup: channel=%s reps=%d capacity=%d created=%d already_existed=%d\n", g_channel, g_reps, g_capacity, created, existed);
    return 0;
}

int main(int argc, char **argv) {
    const char *workload = "echo", *token_file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        if (!strcmp(k, "--setup")) { g_setup = 1; continue; }   // the only flag without a value
        if (i + 1 >= argc) { fprintf(stderr, "missing value for %s\n", k); return 2; }
        const char *v = argv[++i];
        if (!strcmp(k, "--host")) g_host = v;
        else if (!strcmp(k, "--port")) g_port = atoi(v);
        else if (!strcmp(k, "--conns")) g_conns = atoi(v);
        else if (!strcmp(k, "--depth")) g_depth = atoi(v);
        else if (!strcmp(k, "--size")) g_size = atoi(v);
        else if (!strcmp(k, "--duration")) g_duration = atof(v);
        else if (!strcmp(k, "--warmup")) g_warmup = atof(v);
        else if (!strcmp(k, "--threads")) g_threads = atoi(v);
        else if (!strcmp(k, "--workload")) workload = v;
        else if (!strcmp(k, "--token")) g_token = v;
        else if (!strcmp(k, "--token-file")) token_file = v;
        else if (!strcmp(k, "--channel")) g_channel = v;
        else if (!strcmp(k, "--reps")) g_reps = atoi(v);
        else if (!strcmp(k, "--capacity")) g_capacity = atoi(v);
        else if (!strcmp(k, "--rep-prefix")) g_rep_prefix = v;
        else if (!strcmp(k, "--tls-ca")) tls_init(v);
        else { fprintf(stderr, "unknown arg %s\n", k); return 2; }
    }
    if (!strcmp(workload, "lifecycle")) g_lifecycle = 1;
    else if (strcmp(workload, "echo")) { fprintf(stderr, "unknown workload %s (echo | lifecycle)\n", workload); return 2; }
    if (g_conns < 1 || g_depth < 1 || g_depth > 65536 || g_size < 0 || g_size > 1024 * 1024 ||
        g_threads < 1 || g_duration <= 0 || g_warmup < 0 || g_reps < 1 || g_reps > 9999 || g_capacity < 1) {
        fprintf(stderr, "bad args\n"); return 2;
    }
    if (g_lifecycle || g_setup) {
        static char file_token[512];
        if (token_file) {
            FILE *f = fopen(token_file, "r");
            if (!f) { perror(token_file); return 2; }
            if (!fgets(file_token, sizeof file_token, f)) file_token[0] = 0;
            fclose(f);
            size_t n = strlen(file_token);
            while (n && (file_token[n - 1] == '\n' || file_token[n - 1] == '\r' || file_token[n - 1] == ' ')) file_token[--n] = 0;
            g_token = file_token;
        }
        if (!g_token || !g_token[0]) { fprintf(stderr, "the %s needs --token or --token-file\n", g_setup ? "setup" : "lifecycle workload"); return 2; }
        snprintf(g_auth_value, sizeof g_auth_value, "Bearer %s", g_token);
        snprintf(g_run_prefix, sizeof g_run_prefix, "lc-%x-%llx", (unsigned)getpid(), (unsigned long long)time(NULL) * 1000ull + (now_ns() / 1000000ull) % 1000ull);
    }
    if (g_setup) { signal(SIGPIPE, SIG_IGN); return run_setup(); }
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
        tls_connect(fd);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        conns[i].fd = fd;
        conns[i].slots = calloc((size_t)cap, sizeof(slot_t));
        conns[i].mask = cap - 1;
        conns[i].next_id = 1;
        conns[i].idx = i;
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
    if (g_lifecycle) {
        long cycles = 0, per[STEPS] = { 0 };
        for (int i = 0; i < g_threads; i++) {
            cycles += ts[i].cycles;
            for (int s = 0; s < STEPS; s++) per[s] += ts[i].per_method_errors[s];
        }
        if (errors)
            fprintf(stderr, "session-bench: errors by step: %s=%ld %s=%ld %s=%ld %s=%ld (connection errors: %ld)\n",
                    STEP_NAME[0], per[0], STEP_NAME[1], per[1], STEP_NAME[2], per[2], STEP_NAME[3], per[3],
                    errors - per[0] - per[1] - per[2] - per[3]);
        printf("rps=%.0f p50_us=%.1f p99_us=%.1f p999_us=%.1f n=%zu errors=%ld cycles=%ld\n",
               (double)total / g_duration, pct(all, total, 0.50), pct(all, total, 0.99),
               pct(all, total, 0.999), total, errors, cycles);
    } else {
        printf("rps=%.0f p50_us=%.1f p99_us=%.1f p999_us=%.1f n=%zu errors=%ld\n",
               (double)total / g_duration, pct(all, total, 0.50), pct(all, total, 0.99),
               pct(all, total, 0.999), total, errors);
    }
    for (int i = 0; i < g_conns; i++) close(conns[i].fd);
    return errors ? 1 : 0;
}
