#!/usr/bin/env bash
# scripts/bench-domain.sh - the domain benchmark: sessiond's state-changing RPCs under a closed-loop
# load, and the timer sweeper's cost; writes the "Domain workload" section of BENCHMARKS.md
# (replacing that section only: the RPC section written by scripts/bench.sh stays as it is).
#
# Lifecycle workload (session-bench --workload lifecycle, Sources/session-bench/main.c): C connections
# x D calls in flight; each in-flight slot runs conversation cycles PostCustomerMessage (new
# conversation -> routed ACTIVE), MarkInactive, PostCustomerMessage (the customer returns -> ACTIVE
# again), EndSession, as the admin. Every call is a state-changing RPC answered only after its
# transaction committed (durability full: fsynced, which is what "acknowledged-durable" means).
# sessiond runs on a fresh data directory per durability; `session-bench --setup` first creates the
# channel and REPS reps x REP_CAPACITY units, AVAILABLE, so routing always finds room.
#
# Sweeper (session-sweep-bench, Sources/session-sweep-bench): SWEEP_SESSIONS INACTIVE sessions with
# auto-end timers, SWEEP_DUE of them due at once; a real TimerSweeper over a SessionBackend fires them.
#
# Comparisons, measured in the same run so that the ratios against them hold on one machine state:
#   - echo: sessiond's RPC path without the domain: /grpc.testing.TestService/UnaryCall (session-bench's
#     default echo workload, ECHO_SIZE-byte payload) at ECHO_POINT, same DURATION/WARMUP/REPEATS, median,
#     on a fresh sessiond started with --test-service (as scripts/bench.sh measures it);
#   - redis: ../shared/bench-anchors/redis-durable.sh (Redis, appendonly + appendfsync always; its
#     `lua-route` line is one routed state change: HSET session + HINCRBY rep + XADD event in Lua) at
#     REDIS_POINTS. redis-benchmark runs a fixed number of requests, not a time window, so per point warmup
#     runs (not counted; N = max(200, 100 x C x P), grown until one lasts >= WARMUP s, at most 4) size N to
#     about DURATION seconds of lua-route (REDIS_N fixes it instead), then REPEATS runs, median; each run is one redis-durable.sh invocation with a fresh
#     redis-server, its AOF in the results directory (the disk sessiond's SQLite uses). Redis is installed
#     with apt-get if missing (as root); if that fails the Redis rows say so.
#   - "Ratios": the domain figures against these and against fixed targets, with PASS/MISS verdicts
#     (lifecycle = SQLite `full`, the acknowledged-durable figure; a lifecycle point with errors is a MISS).
#
# PostgreSQL (STORES contains postgres): a throwaway PostgreSQL cluster (the newest
# /usr/lib/postgresql/*/bin; as root its commands run as the postgres user via runuser) in a temporary
# directory owned by postgres, on 127.0.0.1 only, a free port, fsync on, synchronous_commit left at its
# default (on); stopped and removed by the EXIT trap. On it:
#   - one instance: sessiond --store postgres://postgres@127.0.0.1:PORT/bench, the same lifecycle points;
#   - two instances: two sessiond processes on one database (bench2), each driven by its own session-bench
#     client with half the connections (C/2 each, at least 1), both running for the same window: state
#     changes/s summed, p50/p99/p99.9 the worse of the two, errors of both, server CPU of both processes;
#   - pgbench's own figure as a reference: pgbench -i -s PGBENCH_SCALE into database pgbench, then
#     -c PGBENCH_CLIENTS -j PGBENCH_THREADS -T PGBENCH_DURATION, TPC-B-like (default script) and -S;
#   - the sweeper on a fresh database per layout (session-sweep-bench --store postgres://...).
#   The PostgreSQL server's CPU (postmaster and all its children, reaped ones included) is measured like
#   sessiond's. PG_PROFILE=1 also loads pg_stat_statements and turns on track_wal_io_timing, and for the
#   first run of every PostgreSQL point records statements, execution time, round trips per state change and WAL
#   flushes per write transaction (= per state-changing RPC), and samples sessiond's backends in
#   pg_stat_activity every 20 ms (where the time goes).
#
# Knobs (environment):
#   DURATION=5 WARMUP=1 REPEATS=3 (median shown; keep it odd)
#   MATRIX="1x1 8x8 32x16 64x32"        points as CONNSxDEPTH
#   DURABILITIES="full process-crash"   sessiond --durability values to measure (SQLite)
#   CLIENT_THREADS=1  REPS=40  REP_CAPACITY=100  (REPS x REP_CAPACITY must be >= the largest C x D; the
#                 client finishes the cycles in flight at the end of its window, uncounted, so a run leaves
#                 no session open for the next; before it did, the 64x32 runs found no room)
#   SWEEP_SESSIONS=1000000  SWEEP_DUE=100000  SWEEP_BATCH=256  SWEEP=0 skips the sweeper
#   SWEEP_LAYOUTS="time-ordered spread"  the first one is held against the target (time-ordered: the due
#                 sessions are the oldest, as with production ids; spread: every 10th id, the worst case)
#   STORES="sqlite postgres"            which stores to measure (either may be left out)
#   PG_MATRIX=$MATRIX  PG_INSTANCES="1 2"  PG_DURABILITIES="full"  PG_PROFILE=1
#   PGBENCH=1  PGBENCH_SCALE=10  PGBENCH_CLIENTS=8  PGBENCH_THREADS=2  PGBENCH_DURATION=10  (PGBENCH=0 skips)
#   PG_SWEEP_SESSIONS=$SWEEP_SESSIONS  PG_SWEEP_DUE=$SWEEP_DUE  PG_SWEEP_LAYOUTS=$SWEEP_LAYOUTS
#   PG_LOAD_LIMIT=180  a PostgreSQL sweeper load (bulk, not measured) slower than this many seconds is flagged:
#                 use a smaller PG_SWEEP_SESSIONS then (the output says so whenever it differs from SQLite's)
#   PG_BIN=/usr/lib/postgresql/<newest>/bin  PG_PORT=<free>
#   ECHO=1  ECHO_POINT=8x16  ECHO_SIZE=256                  (ECHO=0 skips the echo comparison)
#   REDIS=1  REDIS_POINTS="1x1 32x16"  REDIS_N=<sized from the warmup run>  REDIS_PORT=<free>
#            ANCHORS=../shared/bench-anchors                 (REDIS=0 skips the Redis comparison)
#   SKIP_BUILD=1  reuse the binaries of an earlier run          BASE_PORT=17151
#   WRITE_BENCHMARKS=0  print the section but leave BENCHMARKS.md alone (partial runs, experiments)
#
# Output: tables on stdout, the "Domain workload" section of BENCHMARKS.md, raw data (points.csv,
# comparisons.csv, server logs, client stderr, redis-durable.sh output, sweeper output, PostgreSQL logs
# and profiles) under
# .build-bench/results/domain-<stamp>/ (not committed).
# Builds: swift build -c release --scratch-path .build-bench (never .build); one build at a time.
# Bounds: servers, clients and tools run under `timeout`; an EXIT trap stops what this script started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
REPEATS=${REPEATS:-3}
MATRIX=${MATRIX:-"1x1 8x8 32x16 64x32"}
DURABILITIES=${DURABILITIES:-"full process-crash"}
CLIENT_THREADS=${CLIENT_THREADS:-1}
REPS=${REPS:-40}
REP_CAPACITY=${REP_CAPACITY:-100}
SWEEP=${SWEEP:-1}
SWEEP_SESSIONS=${SWEEP_SESSIONS:-1000000}
SWEEP_DUE=${SWEEP_DUE:-100000}
SWEEP_BATCH=${SWEEP_BATCH:-256}
SWEEP_LAYOUTS=${SWEEP_LAYOUTS:-"time-ordered spread"}
STORES=${STORES:-"sqlite postgres"}
PG_MATRIX=${PG_MATRIX:-$MATRIX}
PG_INSTANCES=${PG_INSTANCES:-"1 2"}
PG_DURABILITIES=${PG_DURABILITIES:-full}
PG_PROFILE=${PG_PROFILE:-1}
PGBENCH=${PGBENCH:-1}
PGBENCH_SCALE=${PGBENCH_SCALE:-10}
PGBENCH_CLIENTS=${PGBENCH_CLIENTS:-8}
PGBENCH_THREADS=${PGBENCH_THREADS:-2}
PGBENCH_DURATION=${PGBENCH_DURATION:-10}
PG_SWEEP_SESSIONS=${PG_SWEEP_SESSIONS:-$SWEEP_SESSIONS}
PG_SWEEP_DUE=${PG_SWEEP_DUE:-$SWEEP_DUE}
PG_SWEEP_LAYOUTS=${PG_SWEEP_LAYOUTS:-$SWEEP_LAYOUTS}
PG_LOAD_LIMIT=${PG_LOAD_LIMIT:-180}
PG_BIN=${PG_BIN:-}
PG_PORT=${PG_PORT:-}
ECHO=${ECHO:-1}
ECHO_POINT=${ECHO_POINT:-8x16}
ECHO_SIZE=${ECHO_SIZE:-256}
REDIS=${REDIS:-1}
REDIS_POINTS=${REDIS_POINTS:-"1x1 32x16"}
REDIS_N=${REDIS_N:-}
REDIS_PORT=${REDIS_PORT:-}
ANCHORS=${ANCHORS:-$ROOT/../shared/bench-anchors}
BASE_PORT=${BASE_PORT:-17151}
HOST=127.0.0.1
CHANNEL=bench-web
SERVER_LIFETIME=3600
PG_LIFETIME=7200
RUN_CAP=$(awk -v w="$WARMUP" -v d="$DURATION" 'BEGIN{printf "%d", w + d + 30}')
BUILD_CAP=1800
SWEEP_CAP=1800

BENCH=$ROOT/.build-bench
STAMP=$(date +%Y%m%d-%H%M%S)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
RAW=$BENCH/results/domain-$STAMP
mkdir -p "$RAW"
CSV=$RAW/points.csv
echo "store,durability,conns,depth,run,rps,p50_us,p99_us,p999_us,errors,cycles,srv_cpu_us_per_req,pg_cpu_us_per_req" > "$CSV"
CMP_CSV=$RAW/comparisons.csv    # echo and Redis runs, the same columns (depth = pipeline depth P for Redis)
head -1 "$CSV" > "$CMP_CSV"
PROFILE=$RAW/pg-profile.csv
echo "store,durability,conns,depth,rpcs,batches,rpcs_per_batch,statements_per_rpc,exec_us_per_rpc,wal_flush_us_per_rpc,wal_flushes_per_rpc,ms_per_wal_flush,waits" > "$PROFILE"

log() { echo "[bench-domain] $*" >&2; }
has_store() { [[ " $STORES " == *" $1 "* ]]; }
for st in $STORES; do
  [[ "$st" == sqlite || "$st" == postgres ]] || { log "STORES: sqlite and/or postgres (got $st)"; exit 2; }
done

max_slots=0
for pt in $MATRIX $PG_MATRIX; do s=$(( ${pt%x*} * ${pt#*x} )); (( s > max_slots )) && max_slots=$s; done
if (( REPS * REP_CAPACITY < max_slots )); then
  log "REPS x REP_CAPACITY = $((REPS * REP_CAPACITY)) < $max_slots calls in flight: routing would run out of room"; exit 2
fi

# ---------------------------------------------------------------- processes we start
# SERVER_PIDS: the `timeout` wrappers of the sessiond processes, SERVER_PROCS: the sessiond processes;
# CLIENT_PIDS: `timeout` wrappers of session-bench clients; FG_PID: a tool we wait for (setup, pgbench,
# sweeper, psql); SAMPLER_PID: the wait-event sampler; PG_WRAPPER: runuser/timeout around the postmaster
# PG_PID. Everything is stopped by PID. `timeout` passes TERM on to its command.
SERVER_PIDS=(); SERVER_PROCS=(); CLIENT_PIDS=(); FG_PID=""; SAMPLER_PID=""
PG_WRAPPER=""; PG_PID=""; PG_ROOT=""
stop_pid() {  # stop_pid PID: TERM, then KILL after 10 s
  local pid=$1
  [[ -n "$pid" ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
stop_servers() {
  local i
  for i in "${!SERVER_PIDS[@]}"; do
    stop_pid "${SERVER_PIDS[$i]}"
    [[ -n "${SERVER_PROCS[$i]:-}" ]] && kill -KILL "${SERVER_PROCS[$i]}" 2>/dev/null || true
  done
  SERVER_PIDS=(); SERVER_PROCS=()
}
stop_pg() {
  if [[ -n "$PG_PID" ]] && kill -0 "$PG_PID" 2>/dev/null; then
    kill -INT "$PG_PID" 2>/dev/null || true               # fast shutdown
    for _ in $(seq 1 300); do kill -0 "$PG_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$PG_PID" 2>/dev/null; then
      kill -QUIT "$PG_PID" 2>/dev/null || true            # immediate shutdown
      for _ in $(seq 1 50); do kill -0 "$PG_PID" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$PG_PID" 2>/dev/null && kill -KILL "$PG_PID" 2>/dev/null || true
    fi
  fi
  PG_PID=""
  if [[ -n "$PG_WRAPPER" ]]; then
    kill -0 "$PG_WRAPPER" 2>/dev/null && kill -KILL "$PG_WRAPPER" 2>/dev/null || true
    wait "$PG_WRAPPER" 2>/dev/null || true
  fi
  PG_WRAPPER=""
  [[ -n "$PG_ROOT" && -d "$PG_ROOT" ]] && rm -rf "$PG_ROOT"
  PG_ROOT=""
}
cleanup() {
  local pid
  for pid in "${CLIENT_PIDS[@]}"; do stop_pid "$pid"; done
  CLIENT_PIDS=()
  stop_pid "$SAMPLER_PID"; SAMPLER_PID=""
  stop_pid "$FG_PID"; FG_PID=""
  stop_servers
  stop_pg
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# fg CAP OUT ERR CMD...: runs CMD under `timeout -s KILL CAP`, in the background so that a signal to this
# script is handled at once, and waits for it; returns its status. fg_sig SIG CAP OUT ERR CMD...: the same
# with another signal (TERM for a script that must run its own EXIT trap, or apt-get).
fg() { fg_sig KILL "$@"; }
fg_sig() {
  local sig=$1 cap=$2 out=$3 err=$4; shift 4
  local kill_after=(); [[ "$sig" != KILL ]] && kill_after=(-k 30)
  timeout "${kill_after[@]}" -s "$sig" "$cap" "$@" > "$out" 2> "$err" < /dev/null &
  FG_PID=$!
  local rc=0
  wait "$FG_PID" || rc=$?
  FG_PID=""
  return "$rc"
}

# ---------------------------------------------------------------- CPU accounting (as scripts/bench.sh)
CLK_TCK=$(getconf CLK_TCK)
proc_ticks() {  # proc_ticks PID [FIELDS]: user+sys (+ children's with FIELDS=4) ticks, 0 if gone
  local v
  v=$(awk -v f="${2:-2}" '{ sub(/.*\) /, ""); print (f == 4) ? $12 + $13 + $14 + $15 : $12 + $13 }' "/proc/$1/stat" 2>/dev/null || true)
  echo "${v:-0}"
}
cpu_ticks() {  # every sessiond process
  local t=0 p
  for p in "${SERVER_PROCS[@]}"; do t=$(( t + $(proc_ticks "$p") )); done
  echo "$t"
}
pg_cpu_ticks() {  # the postmaster (its own and its reaped children's time) and its live children
  local t=0 p
  [[ -n "$PG_PID" ]] || { echo 0; return; }
  t=$(proc_ticks "$PG_PID" 4)
  for p in $(pgrep -P "$PG_PID" || true); do t=$(( t + $(proc_ticks "$p") )); done
  echo "$t"
}
# The time of a backend that just exited shows up in the postmaster's reaped-children time only a moment later
# (seen: up to ~1 s under load), so PostgreSQL CPU is read once it has been stable for 100 ms (at most 3 s).
pg_cpu_settled() {
  local a b
  a=$(pg_cpu_ticks); b=$a
  [[ -n "$PG_PID" ]] || { echo 0; return; }
  for _ in $(seq 1 30); do
    sleep 0.1
    b=$(pg_cpu_ticks)
    (( b - a <= 1 )) && break
    a=$b
  done
  echo "$b"
}
per_req_us() {  # per_req_us SECONDS N: requests of warmup + window estimated as n * (W + D) / D
  awk -v s="$1" -v n="$2" -v w="$WARMUP" -v d="$DURATION" \
    'BEGIN{ r = n * (w + d) / d; if (r > 0) printf "%.1f", s * 1e6 / r; else print "nan" }'
}
ticks_s() { awk -v t="$1" -v hz="$CLK_TCK" 'BEGIN{print t / hz}'; }

wait_port() {
  for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  log "server on port $1 did not come up (see $RAW/*.server.log)"; return 1
}
port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# ---------------------------------------------------------------- build
BUILD_NOTES=()
timed() {
  local label=$1; shift
  local t0; t0=$(date +%s)
  log "build: $label"
  if ! timeout -s TERM "$BUILD_CAP" "$@" > "$RAW/build.log.tmp" 2>&1; then
    cat "$RAW/build.log.tmp" >> "$RAW/build.log"; tail -30 "$RAW/build.log.tmp" >&2
    log "build failed: $label (full log: $RAW/build.log)"; exit 1
  fi
  cat "$RAW/build.log.tmp" >> "$RAW/build.log"; rm -f "$RAW/build.log.tmp"
  BUILD_NOTES+=("$label: $(( $(date +%s) - t0 ))s")
}
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  # One build at a time: the machine has 2 cores and is shared.
  timed "sessiond (release)" swift build -c release --product sessiond --scratch-path "$BENCH"
  timed "session-bench (release)" swift build -c release --product session-bench --scratch-path "$BENCH"
  [[ "$SWEEP" == 1 ]] && timed "session-sweep-bench (release)" swift build -c release --product session-sweep-bench --scratch-path "$BENCH"
fi
BIN=$(swift build -c release --scratch-path "$BENCH" --show-bin-path 2>/dev/null || echo "$BENCH/release")

# ---------------------------------------------------------------- sessiond
start_sessiond() {  # start_sessiond LOG PORT DATA_DIR [sessiond options...]
  local slog=$1 port=$2 data=$3; shift 3
  if port_busy "$port"; then log "port $port is in use; set BASE_PORT"; exit 1; fi
  mkdir -p "$data"
  timeout -s TERM "$SERVER_LIFETIME" "$BIN/sessiond" --listen "$HOST:$port" --data-dir "$data" "$@" \
    > "$slog" 2>&1 < /dev/null &
  local pid=$!
  SERVER_PIDS+=("$pid")
  wait_port "$port"
  SERVER_PROCS+=("$(pgrep -P "$pid" | head -1)")
  return 0
}
bench_setup() {  # bench_setup PORT TOKEN_FILE
  fg 120 "$RAW/setup.out" "$RAW/setup.err" "$BIN/session-bench" --setup --host "$HOST" --port "$1" \
    --token-file "$2" --channel "$CHANNEL" --reps "$REPS" --capacity "$REP_CAPACITY" || {
    cat "$RAW/setup.err" >&2; log "session-bench --setup failed"; exit 1; }
  cat "$RAW/setup.out" >&2
  return 0
}

# ---------------------------------------------------------------- lifecycle workload
kv() { sed -n "s/.*[ ^]$1=\([^ ]*\).*/\1/p" <<<" $2"; }
run_point() {  # run_point STORE DURABILITY TOKEN_FILE C D RUN PORT... (one client per port, C split among them)
  local store=$1 dur=$2 tok=$3 c=$4 d=$5 r=$6; shift 6
  local ports=("$@") k=$#
  local cc=$(( c / k )); (( cc < 1 )) && cc=1
  local tag; tag=$(tr -c 'a-z0-9\n' '-' <<<"$store" | tr -s '-' | sed 's/-$//')-$dur
  local profiling=0 t0 p0 t1 p1 i
  [[ "$store" == postgres* && "$PG_PROFILE" == 1 && "$r" == 1 ]] && profiling=1
  if (( profiling )); then pg_profile_begin "${ports[0]}"; fi
  p0=$(pg_cpu_settled); t0=$(cpu_ticks)
  CLIENT_PIDS=()
  for i in "${!ports[@]}"; do
    timeout -s KILL "$RUN_CAP" "$BIN/session-bench" --workload lifecycle --host "$HOST" --port "${ports[$i]}" \
      --token-file "$tok" --channel "$CHANNEL" --conns "$cc" --depth "$d" --duration "$DURATION" \
      --warmup "$WARMUP" --threads "$CLIENT_THREADS" > "$RAW/client.$i.out" 2>> "$RAW/$tag.client.err" < /dev/null &
    CLIENT_PIDS+=("$!")
  done
  for i in "${!CLIENT_PIDS[@]}"; do wait "${CLIENT_PIDS[$i]}" || true; done
  CLIENT_PIDS=()
  t1=$(cpu_ticks); p1=$(pg_cpu_settled)
  # combine: rates, counts and errors add up; latencies: the worse client
  local rps=0 p50=0 p99=0 p999=0 n=0 err=0 cyc=0 failed=0 line conns=""
  for i in "${!ports[@]}"; do
    line=$(grep '^rps=' "$RAW/client.$i.out" | tail -1 || true)
    if [[ -z "$line" ]]; then failed=1; continue; fi
    rps=$(( rps + $(kv rps "$line") )); n=$(( n + $(kv n "$line") ))
    err=$(( err + $(kv errors "$line") )); cyc=$(( cyc + $(kv cycles "$line") ))
    p50=$(awk -v a="$p50" -v b="$(kv p50_us "$line")" 'BEGIN{print (b + 0 > a + 0) ? b : a}')
    p99=$(awk -v a="$p99" -v b="$(kv p99_us "$line")" 'BEGIN{print (b + 0 > a + 0) ? b : a}')
    p999=$(awk -v a="$p999" -v b="$(kv p999_us "$line")" 'BEGIN{print (b + 0 > a + 0) ? b : a}')
    conns+="${conns:++}$cc"
  done
  (( k == 1 )) && conns=$c
  local scpu pcpu="nan"
  scpu=$(per_req_us "$(ticks_s $((t1 - t0)))" "$n")
  [[ "$store" == postgres* ]] && pcpu=$(per_req_us "$(ticks_s $((p1 - p0)))" "$n")
  if (( failed )); then
    log "$store/$dur C=$c D=$d run $r: FAILED (a client printed no result; see $RAW/$tag.client.err)"
    echo "$store,$dur,$conns,$d,$r,0,nan,nan,nan,fail,0,nan,nan" >> "$CSV"
  else
    log "$store/$dur C=$conns D=$d run $r: rps=$rps p50_us=$p50 p99_us=$p99 p999_us=$p999 n=$n errors=$err cycles=$cyc srv_cpu_us/req=$scpu pg_cpu_us/req=$pcpu"
    echo "$store,$dur,$conns,$d,$r,$rps,$p50,$p99,$p999,$err,$cyc,$scpu,$pcpu" >> "$CSV"
  fi
  if (( profiling )); then pg_profile_end "$store" "$dur" "$conns" "$d" "${ports[0]}"; fi
  return 0
}

# ---------------------------------------------------------------- PostgreSQL
PG_VERSION=""; PG_DB=""
pg_url() { echo "postgres://postgres@$HOST:$PG_PORT/$1"; }
psql_q() {  # psql_q DB SQL: runs SQL, prints unaligned tuples
  timeout -s KILL 120 "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$HOST" -p "$PG_PORT" -U postgres -d "$1" -c "$2" < /dev/null
}
free_port() {
  local p
  if command -v python3 > /dev/null && p=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null); then
    echo "$p"; return
  fi
  for _ in $(seq 1 200); do p=$(( 20000 + RANDOM % 30000 )); port_busy "$p" || { echo "$p"; return; }; done
  log "no free port found"; exit 1
}
pg_start() {
  if [[ -z "$PG_BIN" ]]; then
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  fi
  for tool in initdb postgres psql createdb pgbench pg_isready; do
    [[ -x "$PG_BIN/$tool" ]] || { log "no $tool in '$PG_BIN' (apt-get install postgresql; or set PG_BIN)"; exit 1; }
  done
  local as_pg=()
  PG_ROOT=$(mktemp -d /tmp/bench-domain-pg.XXXXXX)
  if [[ $(id -u) == 0 ]]; then
    getent passwd postgres > /dev/null || { log "running as root needs the postgres system user"; exit 1; }
    chown postgres: "$PG_ROOT"
    as_pg=(runuser -u postgres --)
  fi
  log "PostgreSQL: initdb in $PG_ROOT/data ($PG_BIN)"
  "${as_pg[@]}" timeout -s KILL 300 "$PG_BIN/initdb" -D "$PG_ROOT/data" -U postgres -A trust --encoding=UTF8 \
    --no-locale --no-sync > "$RAW/pg-initdb.log" 2>&1 < /dev/null || { tail -20 "$RAW/pg-initdb.log" >&2; exit 1; }
  PG_PORT=${PG_PORT:-$(free_port)}
  {
    echo
    echo "# scripts/bench-domain.sh: a throwaway cluster"
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $PG_PORT"
    echo "unix_socket_directories = ''"
    echo "fsync = on"
    echo "max_connections = 300"
    echo "max_wal_size = '2GB'"
    echo "log_min_messages = warning"
    if [[ "$PG_PROFILE" == 1 ]]; then
      echo "shared_preload_libraries = 'pg_stat_statements'"
      echo "track_wal_io_timing = on"
    fi
  } >> "$PG_ROOT/data/postgresql.conf"
  # The postmaster runs in the foreground under `timeout` (as postgres), so that it is bounded even if this
  # script is killed without its trap; the trap stops it by PID (SIGINT: fast shutdown).
  "${as_pg[@]}" timeout -s INT "$PG_LIFETIME" "$PG_BIN/postgres" -D "$PG_ROOT/data" > "$RAW/pg-server.log" 2>&1 < /dev/null &
  PG_WRAPPER=$!
  local ok=0
  for _ in $(seq 1 600); do
    if "$PG_BIN/pg_isready" -q -h "$HOST" -p "$PG_PORT" -t 1 > /dev/null 2>&1; then ok=1; break; fi
    kill -0 "$PG_WRAPPER" 2>/dev/null || break
    sleep 0.1
  done
  [[ -f "$PG_ROOT/data/postmaster.pid" ]] && PG_PID=$(head -1 "$PG_ROOT/data/postmaster.pid")
  if (( ! ok )) || [[ -z "$PG_PID" ]]; then tail -20 "$RAW/pg-server.log" >&2; log "PostgreSQL did not start"; exit 1; fi
  PG_VERSION=$(psql_q postgres "SHOW server_version")
  [[ "$PG_PROFILE" == 1 ]] && psql_q postgres "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" > /dev/null
  log "PostgreSQL $PG_VERSION on $HOST:$PG_PORT (postmaster $PG_PID), data $PG_ROOT/data"
  psql_q postgres "SELECT name || '=' || current_setting(name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit',
    'wal_sync_method', 'shared_buffers', 'max_wal_size', 'wal_level', 'full_page_writes', 'commit_delay')
    ORDER BY name" | paste -sd' ' - > "$RAW/pg-settings.txt"
  return 0
}
createdb_() { timeout -s KILL 120 "$PG_BIN/createdb" -h "$HOST" -p "$PG_PORT" -U postgres "$1" < /dev/null; }
dropdb_() { timeout -s KILL 120 "$PG_BIN/dropdb" -h "$HOST" -p "$PG_PORT" -U postgres --if-exists "$1" < /dev/null || true; }

# Where the time goes: pg_stat_statements over the point, pg_stat_wal, and a sampler of sessiond's backends.
cat > "$RAW/pg-wait-sampler.sql" <<'SQL'
CREATE TEMP TABLE samples (s text);
DO $sampler$
BEGIN
  FOR i IN 1 .. current_setting('bench.samples')::int LOOP
    PERFORM pg_stat_clear_snapshot();
    INSERT INTO samples
      SELECT CASE WHEN state = 'active' THEN 'active ' || coalesce(wait_event_type || ':' || wait_event, 'CPU')
                  ELSE state || coalesce(' ' || wait_event_type || ':' || wait_event, '') END
      FROM pg_stat_activity WHERE application_name = 'sessiond' AND pid <> pg_backend_pid();
    PERFORM pg_sleep(0.02);
  END LOOP;
END
$sampler$;
SELECT s || ' ' || round(100.0 * count(*) / sum(count(*)) OVER (), 0) || '%' FROM samples GROUP BY s ORDER BY count(*) DESC;
SQL
# The state-changing calls the owner (the first instance) answered, from its /metrics.
owner_calls() {
  curl -s --max-time 10 "http://$HOST:$1/metrics" | awk '/^sessiond_calls_total[{]/ && /sessions[.]v1/ { s += $NF } END { printf "%d", s }'
}
pg_profile_begin() {  # pg_profile_begin OWNER_PORT
  OWNER_CALLS0=$(owner_calls "$1")
  psql_q postgres "SELECT pg_stat_statements_reset(); SELECT pg_stat_reset_shared('wal')" > /dev/null
  local samples; samples=$(awk -v w="$WARMUP" -v d="$DURATION" 'BEGIN{printf "%d", (w + d) / 0.021}')
  PGOPTIONS="-c bench.samples=$samples" timeout -s KILL "$RUN_CAP" "$PG_BIN/psql" -X -q -At -h "$HOST" -p "$PG_PORT" \
    -U postgres -d postgres -f "$RAW/pg-wait-sampler.sql" > "$RAW/pg-waits.out" 2>> "$RAW/pg-waits.err" < /dev/null &
  SAMPLER_PID=$!
}
pg_profile_end() {  # pg_profile_end STORE DURABILITY CONNS DEPTH OWNER_PORT
  local store=$1 dur=$2 conns=$3 d=$4 port=$5
  wait "$SAMPLER_PID" 2>/dev/null || true
  SAMPLER_PID=""
  local waits stats rpcs
  # Every call of the run, the ones answered after the window included (so do the database's counters).
  rpcs=$(( $(owner_calls "$port") - OWNER_CALLS0 ))
  waits=$(head -6 "$RAW/pg-waits.out" | paste -sd';' - | sed 's/,/ /g')
  {
    echo "== $store/$dur C=$conns D=$d ($rpcs state-changing calls answered by the owner)"
    cat "$RAW/pg-waits.out"
    psql_q postgres "SELECT calls || ' calls ' || round(total_exec_time::numeric, 0) || ' ms ' || left(regexp_replace(query, '\s+', ' ', 'g'), 120)
      FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '$PG_DB')
      ORDER BY total_exec_time DESC LIMIT 12"
  } >> "$RAW/pg-profile.txt"
  # A journal batch is one statement (WITH ... INSERT ... SELECT FROM unnest(...)), one transaction.
  stats=$(psql_q postgres "WITH s AS (SELECT * FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '$PG_DB'))
    SELECT (SELECT coalesce(sum(calls), 0) FROM s WHERE query LIKE 'WITH %INSERT INTO%')
      || ' ' || (SELECT coalesce(sum(calls), 0) FROM s) || ' ' || (SELECT round(coalesce(sum(total_exec_time), 0)::numeric, 1) FROM s)
      || ' ' || (SELECT wal_sync || ' ' || round(wal_sync_time::numeric, 1) FROM pg_stat_wal)")
  read -r batches calls exec_ms syncs sync_ms <<<"$stats"
  awk -v n="$rpcs" -v b="$batches" -v calls="$calls" -v ex="$exec_ms" \
      -v sy="$syncs" -v sm="$sync_ms" -v key="$store,$dur,$conns,$d" -v waits="$waits" 'BEGIN{
    r = n; if (r <= 0) r = 1
    printf "%s,%d,%d,%.1f,%.3f,%.1f,%.1f,%.3f,%.3f,%s\n", key, n, b, (b > 0 ? n / b : 0), calls / r, ex * 1000 / r,
      sm * 1000 / r, sy / r, (sy > 0 ? sm / sy : 0), waits }' >> "$PROFILE"
  return 0
}

PGBENCH_ROWS=()
run_pgbench() {
  log "pgbench: -i -s $PGBENCH_SCALE into database pgbench"
  createdb_ pgbench
  fg 1200 "$RAW/pgbench-init.out" "$RAW/pgbench-init.err" "$PG_BIN/pgbench" -i -q -s "$PGBENCH_SCALE" \
    -h "$HOST" -p "$PG_PORT" -U postgres pgbench || { tail -5 "$RAW/pgbench-init.err" >&2; log "pgbench -i failed"; return 0; }
  local mode args label t0 t1 out tps lat nx failed cpu syncs sync_ms
  for mode in tpcb select; do
    args=(); label="TPC-B-like (default script: 3 UPDATE + 1 SELECT + 1 INSERT, one durable commit)"
    [[ "$mode" == select ]] && { args=(-S); label="select-only (-S: one SELECT by primary key, no commit to flush)"; }
    [[ "$PG_PROFILE" == 1 ]] && psql_q postgres "SELECT pg_stat_reset_shared('wal')" > /dev/null
    t0=$(pg_cpu_settled)
    out=$RAW/pgbench-$mode.out
    fg $(( PGBENCH_DURATION + 120 )) "$out" "$RAW/pgbench-$mode.err" "$PG_BIN/pgbench" -c "$PGBENCH_CLIENTS" \
      -j "$PGBENCH_THREADS" -T "$PGBENCH_DURATION" "${args[@]}" -h "$HOST" -p "$PG_PORT" -U postgres pgbench || true
    t1=$(pg_cpu_settled)
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without.*/\1/p' "$out" | head -1)
    lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$out" | head -1)
    nx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out" | head -1)
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out" | head -1)
    cpu=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="${nx:-0}" 'BEGIN{ if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "n/a" }')
    syncs="n/a"
    if [[ "$PG_PROFILE" == 1 && -n "$nx" ]]; then
      read -r s sm <<<"$(psql_q postgres "SELECT wal_sync || ' ' || round(wal_sync_time::numeric, 1) FROM pg_stat_wal")"
      syncs=$(awk -v s="$s" -v sm="$sm" -v n="$nx" 'BEGIN{ printf "%.2f (%.2f ms each)", s / n, (s > 0 ? sm / s : 0) }')
    fi
    log "pgbench $mode: tps=${tps:-FAILED} latency_avg_ms=${lat:-?} transactions=${nx:-?} failed=${failed:-0} pg_cpu_us/txn=$cpu (PostgreSQL CPU ticks $t0 -> $t1)"
    PGBENCH_ROWS+=("| $label | $PGBENCH_CLIENTS | $PGBENCH_THREADS | $( [[ -n "$tps" ]] && printf '%.0f' "$tps" || echo FAILED) | ${lat:-n/a} | ${failed:-0} | $cpu | $syncs |")
  done
  dropdb_ pgbench
  return 0
}

run_pg_lifecycle() {  # run_pg_lifecycle INSTANCES DURABILITY
  local k=$1 dur=$2 i data ports=() store
  store="postgres ($k sessiond)"
  PG_DB=bench; (( k > 1 )) && PG_DB=bench$k
  [[ "$dur" != full ]] && PG_DB=${PG_DB}_${dur//-/_}
  createdb_ "$PG_DB"
  for i in $(seq 1 "$k"); do
    data=$RAW/pg-data-$PG_DB-$i
    # The first instance creates the schema and an admin token (DATA_DIR/admin-token); the others accept it.
    if (( i == 1 )); then
      log "sessiond --store $(pg_url "$PG_DB") --durability $dur on $HOST:$port"
      start_sessiond "$RAW/pg-$PG_DB-$i.server.log" "$port" "$data" --store "$(pg_url "$PG_DB")" --durability "$dur"
      for _ in $(seq 1 50); do [[ -s "$data/admin-token" ]] && break; sleep 0.1; done
    else
      log "sessiond #$i on the same database, $HOST:$port"
      start_sessiond "$RAW/pg-$PG_DB-$i.server.log" "$port" "$data" --store "$(pg_url "$PG_DB")" --durability "$dur" \
        --admin-token-file "$RAW/pg-data-$PG_DB-1/admin-token"
    fi
    ports+=("$port")
    port=$((port + 1))
  done
  bench_setup "${ports[0]}" "$RAW/pg-data-$PG_DB-1/admin-token"
  for pt in $PG_MATRIX; do
    for r in $(seq 1 "$REPEATS"); do
      run_point "$store" "$dur" "$RAW/pg-data-$PG_DB-1/admin-token" "${pt%x*}" "${pt#*x}" "$r" "${ports[@]}"
    done
  done
  stop_servers
  log "database $PG_DB after the runs: $(psql_q postgres "SELECT pg_size_pretty(pg_database_size('$PG_DB'))")"
  dropdb_ "$PG_DB"
  for i in $(seq 1 "$k"); do rm -rf "$RAW/pg-data-$PG_DB-$i"; done
  return 0
}

# ---------------------------------------------------------------- sweeper
SWEEP_LINE=""      # SQLite's first layout's result: held against the target
SWEEP_LINES=()
PG_SWEEP_NOTES=()
run_sweep() {  # run_sweep STORE LAYOUT SESSIONS DUE
  local store=$1 layout=$2 sessions=$3 due=$4 line args=() db=""
  local tag=$store-$layout
  if [[ "$store" == sqlite ]]; then
    args=(--store sqlite --dir "$RAW/sweep-store")
  else
    db=sweep_${layout//-/_}
    createdb_ "$db"
    args=(--store "$(pg_url "$db")")
    [[ "$PG_PROFILE" == 1 ]] && psql_q postgres "SELECT pg_stat_statements_reset()" > /dev/null
  fi
  log "sweeper ($store, $layout): $sessions sessions, $due due (the load takes a while)"
  local p0 p1
  p0=$(pg_cpu_settled)
  fg "$SWEEP_CAP" "$RAW/sweep-$tag.out" "$RAW/sweep-$tag.err" "$BIN/session-sweep-bench" "${args[@]}" \
    --sessions "$sessions" --due "$due" --layout "$layout" --sweep-batch "$SWEEP_BATCH" --durability full || true
  p1=$(pg_cpu_settled)
  [[ "$store" == sqlite ]] && rm -rf "$RAW/sweep-store"
  if [[ -n "$db" && "$PG_PROFILE" == 1 ]]; then
    { echo "== sweeper ($layout; load and sweep together: the load is the unnest INSERTs, VACUUM and CHECKPOINT)"
      psql_q postgres "SELECT calls || ' calls ' || round(total_exec_time::numeric, 0) || ' ms ' || left(regexp_replace(query, '\s+', ' ', 'g'), 120)
        FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '$db')
        ORDER BY total_exec_time DESC LIMIT 15" || true; } >> "$RAW/pg-profile.txt"
  fi
  [[ -n "$db" ]] && dropdb_ "$db"
  line=$(grep '^sweep ' "$RAW/sweep-$tag.out" | tail -1 || true)
  log "sweeper ($store, $layout): ${line:-FAILED (see $RAW/sweep-$tag.err)}"
  SWEEP_LINES+=("${line:-sweep store=$store layout=$layout FAILED (see sweep-$tag.err)}")
  if [[ "$store" == sqlite ]]; then
    [[ -z "$SWEEP_LINE" && -n "$line" && "$layout" == "${SWEEP_LAYOUTS%% *}" ]] && SWEEP_LINE=$line
  elif [[ -n "$line" ]]; then
    local load; load=$(kv load_s "$line")
    if awk -v l="$load" -v m="$PG_LOAD_LIMIT" 'BEGIN{exit !(l > m)}'; then
      PG_SWEEP_NOTES+=("loading $sessions sessions into PostgreSQL took ${load} s (> ${PG_LOAD_LIMIT} s): use fewer (PG_SWEEP_SESSIONS)")
      log "${PG_SWEEP_NOTES[-1]}"
    fi
    # PostgreSQL server CPU over the whole tool run (load included): for the record
    log "sweeper ($store, $layout): PostgreSQL CPU over load + sweep: $(ticks_s $((p1 - p0))) s"
  fi
  return 0
}

# ---------------------------------------------------------------- comparisons: echo and Redis
# run_echo_point PORT C D RUN: one session-bench echo run (UnaryCall) against the --test-service sessiond
run_echo_point() {
  local port=$1 c=$2 d=$3 r=$4 t0 t1 line scpu
  t0=$(cpu_ticks)
  CLIENT_PIDS=()
  timeout -s KILL "$RUN_CAP" "$BIN/session-bench" --host "$HOST" --port "$port" --conns "$c" --depth "$d" \
    --size "$ECHO_SIZE" --duration "$DURATION" --warmup "$WARMUP" --threads "$CLIENT_THREADS" \
    > "$RAW/echo-client.out" 2>> "$RAW/echo.client.err" < /dev/null &
  CLIENT_PIDS+=("$!")
  wait "${CLIENT_PIDS[0]}" || true
  CLIENT_PIDS=()
  t1=$(cpu_ticks)
  line=$(grep '^rps=' "$RAW/echo-client.out" | tail -1 || true)
  if [[ -z "$line" ]]; then
    log "echo C=$c D=$d run $r: FAILED (the client printed no result; see $RAW/echo.client.err)"
    echo "echo UnaryCall,-,$c,$d,$r,0,nan,nan,nan,fail,0,nan,nan" >> "$CMP_CSV"
    return 0
  fi
  scpu=$(per_req_us "$(ticks_s $((t1 - t0)))" "$(kv n "$line")")
  log "echo C=$c D=$d run $r: $line srv_cpu_us/req=$scpu"
  echo "echo UnaryCall,-,$c,$d,$r,$(kv rps "$line"),$(kv p50_us "$line"),$(kv p99_us "$line"),$(kv p999_us "$line"),$(kv errors "$line"),0,$scpu,nan" >> "$CMP_CSV"
  return 0
}

REDIS_NOTE=""       # why Redis was not measured, if it was not
REDIS_VERSION=""
REDIS_SIZING=()     # "CxP N=..." per point, for the record
redis_ready() {  # redis_ready: redis-server, redis-cli, redis-benchmark present (installed via apt-get if not)
  local t
  have_redis() { for t in redis-server redis-cli redis-benchmark; do command -v "$t" > /dev/null || return 1; done; }
  if [[ ! -r "$ANCHORS/redis-durable.sh" ]]; then REDIS_NOTE="no $ANCHORS/redis-durable.sh"; return 1; fi
  if ! have_redis; then
    if [[ $(id -u) != 0 ]]; then REDIS_NOTE="redis-server/redis-tools are not installed and this is not root"; return 1; fi
    log "redis: apt-get update && apt-get install -y redis-server redis-tools"
    if ! fg_sig TERM 900 "$RAW/redis-apt.out" "$RAW/redis-apt.err" \
        env DEBIAN_FRONTEND=noninteractive sh -c 'apt-get update && apt-get install -y redis-server redis-tools'; then
      tail -5 "$RAW/redis-apt.err" >&2
      REDIS_NOTE="apt-get install -y redis-server redis-tools failed (see redis-apt.err)"; return 1
    fi
    have_redis || { REDIS_NOTE="apt-get install -y redis-server redis-tools left no redis-server/redis-benchmark"; return 1; }
  fi
  REDIS_VERSION=$(redis-server --version 2>/dev/null | sed -n 's/.* v=\([^ ]*\).*/\1/p' || true)
  [[ -n "$REDIS_PORT" ]] || REDIS_PORT=$(free_port)
  return 0
}
# redis_once C P N RUN: one redis-durable.sh run of one point (its own fresh redis-server; AOF under $RAW);
# records both of its lines (lua-route: the comparison; incr: for reference) unless RUN is "warmup";
# sets REDIS_LAST_RPS to the lua-route rps (empty if it failed). (Not called in $(...): FG_PID must be
# this shell's, for the EXIT trap.)
REDIS_LAST_RPS=""
redis_once() {
  local c=$1 p=$2 n=$3 r=$4 out=$RAW/redis-${1}x$2-$4.out kind line rps p50
  if port_busy "$REDIS_PORT"; then log "redis: port $REDIS_PORT is in use; set REDIS_PORT"; return 0; fi
  mkdir -p "$RAW/redis-tmp"
  # redis-durable.sh stops its redis-server in its EXIT trap: TERM (never KILL first) lets it run
  fg_sig TERM 330 "$out" "$out.err" \
    env TMPDIR="$RAW/redis-tmp" PORT="$REDIS_PORT" N="$n" POINTS="${c}x$p" bash "$ANCHORS/redis-durable.sh" || true
  if port_busy "$REDIS_PORT"; then log "redis: something still listens on $REDIS_PORT after redis-durable.sh"; fi
  for kind in lua-route incr; do
    line=$(grep "^redis-durable $kind " "$out" | tail -1 || true)
    rps=$(kv rps "$line"); p50=$(kv p50_ms "$line")
    log "redis $kind C=$c P=$p N=$n run $r: ${line:-FAILED (see $out.err)}${rps:+ (~$(awk -v n="$n" -v e="$rps" 'BEGIN{printf "%.1f", n / e}') s)}"
    [[ "$r" == warmup ]] && continue
    if [[ -n "$rps" && -n "$p50" ]]; then
      echo "redis $kind,appendfsync always,$c,$p,$r,$rps,$(awk -v m="$p50" 'BEGIN{printf "%.1f", m * 1000}'),nan,nan,0,0,nan,nan" >> "$CMP_CSV"
    else
      echo "redis $kind,appendfsync always,$c,$p,$r,0,nan,nan,nan,fail,0,nan,nan" >> "$CMP_CSV"
    fi
  done
  REDIS_LAST_RPS=$(kv rps "$(grep '^redis-durable lua-route ' "$out" | tail -1 || true)")
  return 0
}
run_redis_point() {  # run_redis_point C P
  local c=$1 p=$2 n0 est n r i
  n0=$(( c * p * 100 )); (( n0 < 200 )) && n0=200
  # warmup = calibration: until a warmup run lasted at least WARMUP s (at most 4 runs), each sized by the last
  for i in 1 2 3 4; do
    redis_once "$c" "$p" "$n0" warmup; est=$REDIS_LAST_RPS
    [[ -n "$est" ]] || break
    awk -v n="$n0" -v e="$est" -v w="$WARMUP" 'BEGIN{ exit !(n / e >= 0.8 * w) }' && break
    n0=$(awk -v n="$n0" -v e="$est" -v w="$WARMUP" 'BEGIN{ m = int(e * w * 1.25); if (m < 2 * n) m = 2 * n; if (m > 5000000) m = 5000000; print m }')
  done
  if [[ -n "$REDIS_N" ]]; then
    n=$REDIS_N
  elif [[ -n "$est" ]]; then
    # the slower of the two lines of a run (incr, lua-route) is about as fast: N ~ DURATION seconds of lua-route
    n=$(awk -v e="$est" -v d="$DURATION" -v m=$(( c * p * 4 )) 'BEGIN{ n = int(e * d); if (n < m) n = m; if (n > 5000000) n = 5000000; print n }')
  else
    n=$(( n0 * 10 ))
  fi
  REDIS_SIZING+=("${c}x$p N=$n")
  for r in $(seq 1 "$REPEATS"); do redis_once "$c" "$p" "$n" "$r"; done
  return 0
}

# ---------------------------------------------------------------- the runs
port=$BASE_PORT
if has_store sqlite; then
  for dur in $DURABILITIES; do
    data=$RAW/data-$dur
    log "sessiond --durability $dur on $HOST:$port, data $data"
    start_sessiond "$RAW/sqlite-$dur.server.log" "$port" "$data" --durability "$dur"
    for _ in $(seq 1 50); do [[ -s "$data/admin-token" ]] && break; sleep 0.1; done
    bench_setup "$port" "$data/admin-token"
    for pt in $MATRIX; do
      for r in $(seq 1 "$REPEATS"); do
        run_point sqlite "$dur" "$data/admin-token" "${pt%x*}" "${pt#*x}" "$r" "$port"
      done
    done
    stop_servers
    du -sh "$data" 2>/dev/null | awk '{print "[bench-domain] data dir after the runs: " $1}' >&2
    rm -rf "$data"
    port=$((port + 1))
  done
  if [[ "$SWEEP" == 1 ]]; then
    for layout in $SWEEP_LAYOUTS; do run_sweep sqlite "$layout" "$SWEEP_SESSIONS" "$SWEEP_DUE"; done
  fi
fi

if [[ "$ECHO" == 1 ]]; then
  data=$RAW/data-echo
  log "sessiond --test-service on $HOST:$port (echo: UnaryCall at $ECHO_POINT, ${ECHO_SIZE}-byte payload)"
  start_sessiond "$RAW/echo.server.log" "$port" "$data" --test-service
  for r in $(seq 1 "$REPEATS"); do run_echo_point "$port" "${ECHO_POINT%x*}" "${ECHO_POINT#*x}" "$r"; done
  stop_servers
  rm -rf "$data"
  port=$((port + 1))
fi

if [[ "$REDIS" == 1 ]]; then
  if redis_ready; then
    log "redis: $ANCHORS/redis-durable.sh (Redis ${REDIS_VERSION:-?}, appendfsync always) at $REDIS_POINTS on port $REDIS_PORT"
    for pt in $REDIS_POINTS; do run_redis_point "${pt%x*}" "${pt#*x}"; done
  else
    log "redis: not measured: $REDIS_NOTE"
  fi
fi

if has_store postgres; then
  pg_start
  for dur in $PG_DURABILITIES; do
    for k in $PG_INSTANCES; do run_pg_lifecycle "$k" "$dur"; done
  done
  [[ "$PGBENCH" == 1 ]] && run_pgbench
  if [[ "$SWEEP" == 1 ]]; then
    for layout in $PG_SWEEP_LAYOUTS; do run_sweep postgres "$layout" "$PG_SWEEP_SESSIONS" "$PG_SWEEP_DUE"; done
  fi
  stop_pg
fi

# ---------------------------------------------------------------- summary
# summarize POINTS_CSV: one row per (store, durability, C, D): medians of the runs with a result
summarize() {
  awk -F, 'NR>1 {
    key=$1","$2","$3","$4; if (!(key in seen)) { order[++nk]=key; seen[key]=1 }
    runs[key]++
    if ($10 != "fail" && $6 + 0 <= 0) zero[key]++        # the client ran, but no call completed in the window
    if ($10 == "fail" || $6 + 0 <= 0) next
    n[key]++; k=n[key]
    rps[key, k]=$6; p50[key, k]=$7; p99[key, k]=($8 == "nan" ? 0 : $8); p999[key, k]=($9 == "nan" ? 0 : $9)
    cpu[key, k]=($12 == "nan" ? 0 : $12); err[key]+=$10; cyc[key, k]=$11; pg[key, k]=($13 == "nan" ? 0 : $13)
  }
  function med(arr, key, cnt,   i, j, t, v) {
    for (i=1;i<=cnt;i++) v[i]=arr[key, i]+0
    for (i=1;i<=cnt;i++) for (j=i+1;j<=cnt;j++) if (v[j]<v[i]) { t=v[i]; v[i]=v[j]; v[j]=t }
    MIN=v[1]; MAX=v[cnt]; return v[int((cnt+1)/2)]
  }
  END {
    for (q=1;q<=nk;q++) {
      key=order[q]; c=n[key]
      if (c == 0) { printf "%s,0,%d,0,0,0,nan,nan,nan,nan,0,0,nan,%d\n", key, runs[key], zero[key]; continue }
      r=med(rps, key, c); rmin=MIN; rmax=MAX
      printf "%s,%d,%d,%d,%d,%d,%.1f,%s,%.1f,%s,%d,%d,%s,%d\n", key, c, runs[key], r, rmin, rmax,
        med(p50, key, c), (med(p99, key, c) == 0 ? "nan" : sprintf("%.1f", med(p99, key, c))), med(p999, key, c),
        (med(cpu, key, c) == 0 ? "nan" : sprintf("%.1f", med(cpu, key, c))), err[key], med(cyc, key, c),
        (med(pg, key, c) == 0 ? "nan" : sprintf("%.1f", med(pg, key, c))), zero[key] + 0
    }
  }' "$1"
}
SUMMARY_HEADER="store,durability,conns,depth,runs_ok,runs,rps,rps_min,rps_max,p50_us,p99_us,p999_us,srv_cpu_us_per_req,errors,cycles,pg_cpu_us_per_req,runs_without_completions"
SUMMARY=$RAW/summary.csv
{ echo "$SUMMARY_HEADER"; summarize "$CSV"; } > "$SUMMARY"
CMP_SUMMARY=$RAW/comparisons-summary.csv
{ echo "$SUMMARY_HEADER"; summarize "$CMP_CSV"; } > "$CMP_SUMMARY"

render_table() {
  echo "| store | durability | C | D | runs | state changes/s (median) | min-max | p50 us | p99 us | p99.9 us | srv CPU us/RPC | PG CPU us/RPC | cycles/s | errors |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  awk -F, -v d="$DURATION" 'NR>1 {
      if ($5 == 0 && $17 > 0) { printf "| %s | %s | %s | %s | 0/%s | 0 (not steady: no call completed in the window) | | | | | | | | |\n", $1, $2, $3, $4, $6; next }
      if ($5 == 0) { printf "| %s | %s | %s | %s | 0/%s | FAILED | | | | | | | | |\n", $1, $2, $3, $4, $6; next }
      mark = ($10 * 4 > d * 1e6) ? " (not steady)" : ""
      printf "| %s | %s | %s | %s | %s/%s | %d%s | %d-%d | %s | %s | %s | %s | %s | %d | %s |\n", $1, $2, $3, $4, $5, $6, $7, mark, $8, $9,
        $10, $11, $12, ($13 == "nan" ? "n/a" : $13), ($16 == "nan" ? "-" : $16), $15 / d, $14
    }' "$SUMMARY"
}
any_unsteady() { awk -F, -v d="$DURATION" 'NR>1 && (($5 > 0 && $10 * 4 > d * 1e6) || $17 > 0) { f=1 } END { exit !f }' "$SUMMARY"; }

render_profile() {
  echo "| store | C | D | state-changing RPCs | journal batches | RPCs/batch | PostgreSQL statements (round trips)/RPC | SQL exec us/RPC | WAL flush us/RPC | WAL flushes/RPC | ms per WAL flush | sessiond backends (pg_stat_activity, 20 ms samples) |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  awk -F, 'NR>1 { w=$13; gsub(/;/, "; ", w); printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, w }' "$PROFILE"
}

# best STORE DURABILITY -> "rps C D p50 p99 errors" of the highest median among points without errors
best() {
  awk -F, -v st="$1" -v dur="$2" 'NR>1 && $1 == st && $2 == dur && $5 > 0 && $14 == 0 && $7 > b { b=$7; line=$7" "$3" "$4" "$10" "$11" "$14 }
    END { print line }' "$SUMMARY"
}
field() { kv "$1" "$SWEEP_LINE"; }
pgbench_tps() {  # pgbench_tps tpcb|select -> tps, empty if pgbench did not run (PGBENCH=0) or failed
  [[ -f "$RAW/pgbench-$1.out" ]] || return 0     # (a failing sed would end the script: set -e, pipefail)
  sed -n 's/^tps = \([0-9.]*\) (without.*/\1/p' "$RAW/pgbench-$1.out" | head -1 | awk '{printf "%.0f", $1}'
}

targets() {
  local b; b=$(best sqlite full)
  echo "| target | measured | verdict |"
  echo "|---|---|---|"
  if [[ -n "$b" ]]; then
    read -r rps c d p50 p99 err <<<"$b"
    echo "| >= 50,000 acknowledged-durable state changes/s on SQLite (\`--durability full\`, best point) | $rps/s at C=$c D=$d (p50 $p50 us, p99 $p99 us) | $( (( rps >= 50000 )) && echo PASS || echo MISS ) |"
  else
    echo "| >= 50,000 acknowledged-durable state changes/s on SQLite | not measured (no error-free \`full\` point) | n/a |"
  fi
  local pc; pc=$(best sqlite process-crash)
  if [[ -n "$pc" ]]; then
    read -r rps c d p50 p99 err <<<"$pc"
    echo "| (reference, not the target: \`--durability process-crash\`, survives kill -9 but not power loss) | $rps/s at C=$c D=$d | - |"
  fi
  if [[ -n "$SWEEP_LINE" ]]; then
    local secs due fired check before peak after grow
    secs=$(field seconds); due=$(field due); fired=$(field fired); check=$(field check)
    before=$(field rss_before_mb); peak=$(field rss_peak_during_mb); after=$(field rss_after_mb)
    echo "| $(printf "%'d" "$due") due timers (of $(printf "%'d" "$(field sessions)") open sessions, layout $(field layout)) all fired within 1 s | $fired fired in $secs s ($(field transitions_per_s)/s), check $check | $(awk -v s="$secs" -v f="$fired" -v d="$due" -v c="$check" 'BEGIN{ print (s <= 1 && f == d && c == "ok") ? "PASS" : "MISS" }') |"
    # With a state owner the partition is in memory before the first timer fires: growth counts from there.
    local loaded; loaded=$(field rss_loaded_mb)
    [[ -n "$loaded" && "$loaded" != "0" ]] && before=$loaded
    grow=$(awk -v a="$before" -v b="$peak" 'BEGIN{ printf "%.1f", b - a }')
    echo "| memory flat while they fire (peak RSS during - RSS once loaded <= 32 MiB) | RSS loaded $before MiB, peak during $peak MiB (+$grow), after $after MiB | $(awk -v g="$grow" 'BEGIN{ print (g <= 32) ? "PASS" : "MISS" }') |"
  else
    echo "| 100,000 due timers fired within 1 s, memory flat | not measured (SWEEP=0, STORES without sqlite, or the sweeper failed) | n/a |"
  fi
  if has_store postgres; then
    local k line tps_b tps_s
    tps_b=$(pgbench_tps tpcb); tps_s=$(pgbench_tps select)
    for k in $PG_INSTANCES; do
      line=$(best "postgres ($k sessiond)" full)
      if [[ -n "$line" ]]; then
        read -r rps c d p50 p99 err <<<"$line"
        echo "| PostgreSQL, $k sessiond (no target; reference: pgbench TPC-B-like ${tps_b:-n/a} tps, select-only ${tps_s:-n/a} tps on the same server) | $rps/s at C=$c D=$d (p50 $p50 us, p99 $p99 us) | reference |"
      else
        echo "| PostgreSQL, $k sessiond | not measured (no error-free \`full\` point) | n/a |"
      fi
    done
    local l
    for l in "${SWEEP_LINES[@]}"; do
      [[ "$l" == *"store=postgres"* ]] || continue
      echo "| PostgreSQL timers, engine $(kv engine "$l") (the 1 s target is SQLite's), layout $(kv layout "$l") | $(kv fired "$l") of $(kv due "$l") due (of $(kv sessions "$l")) fired in $(kv seconds "$l") s ($(kv transitions_per_s "$l")/s), check $(kv check "$l"), benchmark RSS loaded $(kv rss_loaded_mb "$l") MiB, peak $(kv rss_peak_during_mb "$l") MiB | reference |"
    done
  else
    echo "| PostgreSQL (one and two instances, beside pgbench on the same server) | not measured (STORES without postgres) | n/a |"
  fi
  return 0
}

# Why a target is missed (or what limits PostgreSQL), from the measured figures.
srv_cpu_at() {  # srv_cpu_at STORE DURABILITY C D -> sessiond CPU us/RPC of that summary row
  awk -F, -v st="$1" -v dur="$2" -v c="$3" -v d="$4" '$1 == st && $2 == dur && $3 == c && $4 == d { print $13 }' "$SUMMARY"
}
pg_cpu_at() { awk -F, -v st="$1" -v dur="$2" -v c="$3" -v d="$4" '$1 == st && $2 == dur && $3 == c && $4 == d { print $16 }' "$SUMMARY"; }
profile_at() {  # profile_at STORE C D FIELD
  awk -F, -v st="$1" -v c="$2" -v d="$3" -v f="$4" '$1 == st && $3 == c && $4 == d { print $f }' "$PROFILE"
}
why() {
  local b rps c d p50 p99 err cpu pc
  b=$(best sqlite full)
  if [[ -n "$b" ]]; then
    read -r rps c d p50 p99 err <<<"$b"
    cpu=$(srv_cpu_at sqlite full "$c" "$d")
    pc=$(best sqlite process-crash | cut -d' ' -f1)
    if (( rps < 50000 )); then
      echo "- SQLite, 50,000 state changes/s: MISSED: $rps/s is $(awk -v r="$rps" 'BEGIN{printf "%.0f%%", 100 * r / 50000}') of it. The limit is CPU, not"
      echo "  the disk: the store already commits in groups (one fsync per batch of queued writes), and without any fsync"
      echo "  (\`process-crash\`) the best point is only ${pc:-n/a}/s. At the best point sessiond spends ${cpu:-?} us of CPU per RPC"
      echo "  (everything it does for one call: framing, protobuf, auth, the engine, SQLite); the $(nproc) cores, shared with the"
      echo "  client, could carry at most ~$(awk -v n="$(nproc)" -v u="$cpu" 'BEGIN{ if (u > 0) printf "%.0f", n * 1e6 / u; else print "?" }')/s even if nothing else ran, and 50,000/s on $(nproc) cores needs"
      echo "  <= $(awk -v n="$(nproc)" 'BEGIN{printf "%.0f", n * 1e6 / 50000}') us per RPC, client included."
    else
      echo "- SQLite, 50,000 state changes/s: met ($rps/s)."
    fi
  fi
  if [[ -n "$SWEEP_LINE" ]]; then
    local secs due rate
    secs=$(field seconds); due=$(field due); rate=$(field transitions_per_s)
    if awk -v s="$secs" 'BEGIN{exit !(s > 1)}'; then
      local spread="" l
      for l in "${SWEEP_LINES[@]}"; do
        [[ "$l" == *"store=sqlite"* && "$l" == *"layout=spread"* ]] && spread=$(kv transitions_per_s "$l")
      done
      echo "- Timers, $due due at once within 1 s: MISSED ($secs s at $rate timers/s; 1 s needs >= $due/s). The owner fires"
      echo "  them from its heap, $SWEEP_BATCH per command between calls; each fire re-checks its session, updates it and appends"
      echo "  an event, and every command's batch is journaled.${spread:+ With the due sessions spread over the ids it runs at $spread/s.}"
    else
      if awk -v s="$secs" 'BEGIN{exit !(s > 0.8)}'; then
        echo "- Timers, $due due at once within 1 s: met ($secs s at $rate timers/s), but with less than 20% margin;"
        echo "  this is one run on a shared 2-core machine, so repeat it before relying on the verdict."
      else
        echo "- Timers, $due due at once within 1 s: met ($secs s)."
      fi
    fi
  fi
  if has_store postgres && [[ -n "$(best "postgres (1 sessiond)" full)" ]]; then
    local tps_b st pg per stm flushes k2 b2
    read -r rps c d p50 p99 err <<<"$(best "postgres (1 sessiond)" full)"
    st="postgres (1 sessiond)"
    cpu=$(srv_cpu_at "$st" full "$c" "$d"); pg=$(pg_cpu_at "$st" full "$c" "$d")
    per=$(profile_at "$st" "$c" "$d" 7); stm=$(profile_at "$st" "$c" "$d" 8); flushes=$(profile_at "$st" "$c" "$d" 11)
    tps_b=$(pgbench_tps tpcb)
    echo "- PostgreSQL, one sessiond: best $rps/s at C=$c D=$d, against pgbench's ${tps_b:-n/a} TPC-B-like tps on the same server"
    echo "  ($(awk -v a="$rps" -v b="${tps_b:-0}" 'BEGIN{ if (b > 0) printf "%.2fx", a / b; else print "n/a" }')). The owner serves from memory and"
    echo "  commits each group commit as one statement (one round trip, one transaction, one WAL flush): ${per:-?} state-changing RPCs"
    echo "  per batch, ${stm:-?} PostgreSQL statements (round trips, pings and reads included) and ${flushes:-?} WAL flushes per RPC."
    echo "  CPU per RPC: sessiond ${cpu:-?} us, PostgreSQL ${pg:-?} us."
    b2=$(best "postgres (2 sessiond)" full)
    if [[ -n "$b2" ]]; then
      read -r k2 _ <<<"$b2"
      echo "  Two sessiond on one database: $k2/s ($(awk -v a="$k2" -v b="$rps" 'BEGIN{printf "%.2f", a / b}')x one instance): the second"
      echo "  instance stands by and forwards its clients' calls to the owner (one more hop, on the same $(nproc) cores): it adds"
      echo "  availability (it takes over when the owner dies), not write throughput, until tenants are spread over instances."
    fi
  fi
  return 0
}

# ---------------------------------------------------------------- comparisons and ratios
# sum_col SUMMARY STORE DURABILITY C D COL -> that column of the row, if the point has a run with a result
# (columns: 7 rps, 10 p50_us, 11 p99_us, 13 srv CPU us/req, 14 errors)
sum_col() {
  awk -F, -v st="$2" -v dur="$3" -v c="$4" -v d="$5" -v f="$6" \
    '$1 == st && $2 == dur && $3 == c && $4 == d && $5 > 0 { print $f }' "$1"
}
render_comparisons() {
  echo "| comparison | C | D (Redis: pipeline P) | runs | req/s (median) | min-max | p50 us | p99 us | p99.9 us | srv CPU us/req | errors |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  awk -F, 'function na(v) { return (v == "nan" || v + 0 == 0) ? "n/a" : v }
    NR>1 {
      name = ($1 == "echo UnaryCall") ? "sessiond UnaryCall echo (`--test-service`)" : $1 " (" $2 ")"
      if ($5 == 0) { printf "| %s | %s | %s | 0/%s | FAILED | | | | | | |\n", name, $3, $4, $6; next }
      printf "| %s | %s | %s | %s/%s | %d | %d-%d | %s | %s | %s | %s | %s |\n", name, $3, $4, $5, $6, $7, $8, $9,
        $10, na($11), na($12), na($13), ($1 ~ /^redis/ ? "n/a" : $14)
    }' "$CMP_SUMMARY"
}
# verdict VALUE OP TARGET [ERRORS]: PASS/MISS (MISS if the lifecycle point behind it had errors)
verdict() {
  awk -v v="$1" -v op="$2" -v t="$3" -v e="${4:-0}" 'BEGIN{
    ok = (op == ">=") ? (v + 0 >= t + 0) : (v + 0 <= t + 0)
    if (e + 0 > 0) print "MISS (" e " errors)"; else print (ok ? "PASS" : "MISS") }'
}
lc_missing() {  # lc_missing CxD: why the SQLite `full` lifecycle point has no result
  if ! has_store sqlite || [[ " $DURABILITIES " != *" full "* ]]; then echo "not measured (STORES without sqlite or DURABILITIES without full)"
  elif [[ " $MATRIX " != *" $1 "* ]]; then echo "not measured ($1 not in MATRIX)"
  else echo "no result (see sqlite-full.client.err, sqlite-full.server.log)"; fi
}
div() { awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN{ if (b + 0 > 0) printf f, a / b; else print "nan" }'; }
ratio_rows() {
  local b="" rps="" c="" d="" p50="" p99="" err="" cpu e ec=${ECHO_POINT%x*} ed=${ECHO_POINT#*x} v lr le rr lp rp
  local no_echo="not measured (ECHO=0)" no_redis="not measured (REDIS=0)" no_lc="not measured (STORES without sqlite or DURABILITIES without full)"
  [[ "$ECHO" == 1 ]] && no_echo="no echo result at $ECHO_POINT (see echo.client.err, echo.server.log)"
  [[ "$REDIS" == 1 ]] && no_redis="no Redis result${REDIS_NOTE:+: $REDIS_NOTE}"
  has_store sqlite && [[ " $DURABILITIES " == *" full "* ]] && no_lc="no result (see sqlite-full.client.err, sqlite-full.server.log)"
  echo "| ratio (medians; lifecycle = SQLite \`full\`) | measured | target | verdict |"
  echo "|---|---|---:|---|"
  b=$(best sqlite full)
  [[ -n "$b" ]] && read -r rps c d p50 p99 err <<<"$b"
  if [[ -n "$b" ]]; then
    echo "| lifecycle state changes/s, best error-free point (C=$c D=$d) | $rps/s | >= 50000/s | $(verdict "$rps" ">=" 50000) |"
  else
    echo "| lifecycle state changes/s, best error-free point | ${no_lc/no result/no error-free point} | >= 50000/s | n/a |"
  fi
  e=$(sum_col "$CMP_SUMMARY" "echo UnaryCall" - "$ec" "$ed" 7)
  if [[ -n "$b" && -n "$e" ]]; then
    v=$(div "$rps" "$e" %.3f)
    echo "| lifecycle best / sessiond UnaryCall echo $ECHO_POINT ($rps / $e req/s) | $v | >= 0.08 | $(verdict "$v" ">=" 0.08 "$(sum_col "$CMP_SUMMARY" "echo UnaryCall" - "$ec" "$ed" 14)") |"
  else
    echo "| lifecycle best / sessiond UnaryCall echo $ECHO_POINT | $( [[ -z "$b" ]] && echo "lifecycle: ${no_lc/no result/no error-free point}" || echo "echo: $no_echo") | >= 0.08 | n/a |"
  fi
  lr=$(sum_col "$SUMMARY" sqlite full 32 16 7); le=$(sum_col "$SUMMARY" sqlite full 32 16 14)
  rr=$(sum_col "$CMP_SUMMARY" "redis lua-route" "appendfsync always" 32 16 7)
  if [[ -n "$lr" && -n "$rr" ]]; then
    v=$(div "$lr" "$rr")
    echo "| lifecycle 32x16 / Redis lua-route 32x16 ($lr / $rr per s) | $v | >= 0.5 | $(verdict "$v" ">=" 0.5 "$le") |"
  else
    echo "| lifecycle 32x16 / Redis lua-route 32x16 | $( [[ -z "$lr" ]] && echo "lifecycle 32x16: $(lc_missing 32x16)" || echo "Redis 32x16: $no_redis") | >= 0.5 | n/a |"
  fi
  if [[ -n "$b" ]]; then
    cpu=$(srv_cpu_at sqlite full "$c" "$d")
    if [[ -n "$cpu" && "$cpu" != nan ]]; then
      echo "| sessiond CPU us per state change at the best point (C=$c D=$d) | $cpu us | <= 20 us | $(verdict "$cpu" "<=" 20) |"
    else
      echo "| sessiond CPU us per state change at the best point (C=$c D=$d) | not measured (no CPU figure) | <= 20 us | n/a |"
    fi
  else
    echo "| sessiond CPU us per state change at the best point | ${no_lc/no result/no error-free point} | <= 20 us | n/a |"
  fi
  lp=$(sum_col "$SUMMARY" sqlite full 1 1 10); le=$(sum_col "$SUMMARY" sqlite full 1 1 14)
  rp=$(sum_col "$CMP_SUMMARY" "redis lua-route" "appendfsync always" 1 1 10)
  if [[ -n "$lp" && -n "$rp" ]]; then
    v=$(div "$lp" "$rp")
    echo "| lifecycle 1x1 p50 / Redis lua-route 1x1 p50 ($lp / $rp us) | $v | <= 1 (lifecycle p50 <= Redis p50) | $(verdict "$lp" "<=" "$rp" "$le") |"
  else
    echo "| lifecycle 1x1 p50 <= Redis lua-route 1x1 p50 | $( [[ -z "$lp" ]] && echo "lifecycle 1x1: $(lc_missing 1x1)" || echo "Redis 1x1: $no_redis") | <= 1 | n/a |"
  fi
  if has_store postgres; then
    local pb tps_b
    pb=$(best "postgres (1 sessiond)" full | cut -d' ' -f1); tps_b=$(pgbench_tps tpcb)
    if [[ -n "$pb" && -n "$tps_b" ]]; then
      v=$(div "$pb" "$tps_b")
      echo "| PostgreSQL (1 sessiond) lifecycle best / pgbench TPC-B-like tps ($pb / $tps_b) | $v | >= 3 | $(verdict "$v" ">=" 3) |"
    else
      echo "| PostgreSQL (1 sessiond) lifecycle best / pgbench TPC-B-like tps | not measured ($( [[ -z "$pb" ]] && echo "no error-free PostgreSQL \`full\` point" || echo "no pgbench result: PGBENCH=0 or it failed")) | >= 3 | n/a |"
    fi
  fi
  return 0
}

git_rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n "$(git status --porcelain 2>/dev/null | head -1)" ]] && git_rev="$git_rev + uncommitted changes"
SECTION=$RAW/domain.md
{
  echo "## Domain workload"
  echo
  echo "Written by \`scripts/bench-domain.sh\` (knobs: DURATION, WARMUP, REPEATS, MATRIX, DURABILITIES, CLIENT_THREADS,"
  echo "REPS, REP_CAPACITY, SWEEP_SESSIONS, SWEEP_DUE, SWEEP_BATCH, SWEEP_LAYOUTS, SWEEP=0, STORES, PG_MATRIX, PG_INSTANCES,"
  echo "PG_DURABILITIES, PG_PROFILE, PGBENCH*, PG_SWEEP_*, ECHO=0, ECHO_POINT, ECHO_SIZE, REDIS=0, REDIS_POINTS, REDIS_N,"
  echo "SKIP_BUILD=1, BASE_PORT); it replaces only this section. The comparisons (sessiond's UnaryCall echo, Redis with"
  echo "appendfsync always) are measured in the same run, so the ratios below hold on one machine state."
  echo
  echo "### Run $STAMP"
  echo
  echo "host: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); kernel $(uname -r); $(swift --version 2>/dev/null | head -1); data on $(df -T "$BENCH" | awk 'NR==2{print $2}')"
  echo "tree: $git_rev"
  echo "load average (1/5/15 min) at start: $LOAD_START; at the end: $(cut -d' ' -f1-3 /proc/loadavg) (the machine may be shared)"
  echo "params: STORES=\"$STORES\" DURATION=${DURATION}s WARMUP=${WARMUP}s REPEATS=$REPEATS MATRIX=\"$MATRIX\" CLIENT_THREADS=$CLIENT_THREADS REPS=$REPS REP_CAPACITY=$REP_CAPACITY loopback $HOST"
  [[ ${#BUILD_NOTES[@]} -gt 0 ]] && echo "builds: $(IFS=';'; echo "${BUILD_NOTES[*]}" | sed 's/;/; /g')"
  echo
  echo "workload: \`session-bench --workload lifecycle\`: C connections x D calls in flight; each slot loops"
  echo "PostCustomerMessage (new conversation -> routed ACTIVE), MarkInactive, PostCustomerMessage (customer returns ->"
  echo "routed ACTIVE), EndSession, as the admin, on one ENHANCED_WEB_CHAT_V2 tab-based channel with $REPS AVAILABLE reps x"
  echo "$REP_CAPACITY units. Every RPC changes state and is answered after its transaction committed (\`full\`: fsynced)."
  echo "state changes/s = those RPCs per second (every step checked: status 0 and the expected session status);"
  echo "cycles/s = completed 4-call cycles per second (all slots start together, so with a short window and long"
  echo "latencies the steps inside the window are not evenly mixed and cycles/s need not be a quarter of RPCs/s)."
  echo "srv CPU us/RPC = sessiond user+sys CPU / RPCs (10 ms ticks; two instances: both processes);"
  echo "PG CPU us/RPC = the PostgreSQL server's CPU (postmaster and every child, background processes included) / RPCs."
  echo "Client, server (and PostgreSQL) share the 2 cores. A fresh data directory (SQLite) or database (PostgreSQL)"
  echo "per durability and instance count."
  if has_store postgres; then
    echo
    echo "PostgreSQL: ${PG_VERSION:-?}, a throwaway cluster (initdb) in /tmp on the same disk, 127.0.0.1 only;"
    echo "$(cat "$RAW/pg-settings.txt" 2>/dev/null); defaults otherwise$( [[ "$PG_PROFILE" == 1 ]] && echo ", plus pg_stat_statements and track_wal_io_timing (PG_PROFILE=1)")."
    echo "sessiond on PostgreSQL: the instance holding the partition's lock serves it from memory and writes each"
    echo "group commit as one statement on the lock's connection; another instance forwards its calls to that owner."
    echo "\`postgres (1 sessiond)\`: database bench; \`postgres (2 sessiond)\`: two sessiond (owner + forwarding standby)"
    echo "on database bench2, each driven by its own session-bench client with C/2 connections (C shown as a+b; with"
    echo "C=1 each gets 1), both for the same window: state changes/s summed, p50/p99/p99.9 the worse client's,"
    echo "errors of both."
  fi
  echo
  render_table
  echo
  if any_unsteady; then
    echo "(not steady): at this point one cycle (4 calls at the p50 latency) takes longer than the ${DURATION} s window, so the"
    echo "window holds mostly the first, heaviest step (new conversations, routed) of a start-up that never settled; the"
    echo "figure is not a throughput, and its CPU/RPC is inflated (calls answered after the window are not counted). A"
    echo "longer DURATION (and more REPS: sessions left open by a run keep their capacity) measures it properly."
    echo
  fi
  if has_store postgres && [[ ${#PGBENCH_ROWS[@]} -gt 0 ]]; then
    echo "pgbench on the same PostgreSQL server (reference): \`pgbench -i -s $PGBENCH_SCALE\` into a separate database, then"
    echo "\`pgbench -c $PGBENCH_CLIENTS -j $PGBENCH_THREADS -T $PGBENCH_DURATION\` (pgbench itself runs on the same 2 cores):"
    echo
    echo "| pgbench script | clients | threads | tps | latency avg ms | failed | PG CPU us/txn | WAL flushes/txn |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for l in "${PGBENCH_ROWS[@]}"; do echo "$l"; done
    echo
  fi
  if has_store postgres && [[ "$PG_PROFILE" == 1 ]] && (( $(wc -l < "$PROFILE") > 1 )); then
    echo "Where PostgreSQL time goes (first run of each point; pg_stat_statements and pg_stat_wal over the whole client"
    echo "run; state-changing RPCs = the owner's \`sessiond_calls_total\` for sessions.v1 over the same span, so calls"
    echo "answered after the window count on both sides; a journal batch = one \`WITH ... INSERT ... unnest\` statement;"
    echo "statements/RPC = every statement of the database (batches, pings, reads of what is not in memory, the standby's"
    echo "owner lookups) per RPC: the round trips; SQL exec = executor time of every statement; WAL flush ="
    echo "pg_stat_wal's wal_sync_time; backends: share of samples of sessiond's connections by state and wait event"
    echo "(\`Lock:*\` would be a write waiting for another):"
    echo
    render_profile
    echo
  fi
  if [[ ${#SWEEP_LINES[@]} -gt 0 ]]; then
    echo "sweeper: \`session-sweep-bench\` (N INACTIVE sessions with auto-end timers in a fresh store, M due at once; the"
    echo "load is not measured; then a real TimerSweeper over a SessionBackend, batches of $SWEEP_BATCH sessions per"
    echo "transaction, \`--durability full\`; seconds = until no due session is left unfired; RSS = VmRSS of the"
    echo "benchmark process, sampled every ~10 ms: for PostgreSQL the server's memory is not in it). Layouts: time-ordered ="
    echo "ids, rows and deadlines follow creation time as with production ids, so the due sessions are the oldest;"
    echo "spread = every (N/M)th id is due (worst case: each fired session dirties pages of its own in every index)."
    echo "SQLite: $SWEEP_SESSIONS sessions, $SWEEP_DUE due, a fresh file (loaded through the repository, synchronous off)."
    if has_store postgres; then
      echo "PostgreSQL: $PG_SWEEP_SESSIONS sessions, $PG_SWEEP_DUE due, a fresh database per layout on the server above, loaded"
      echo "in bulk (multi-row INSERT ... SELECT FROM unnest of array parameters, 50,000 rows per statement,"
      echo "synchronous_commit off; load_s includes the VACUUM ANALYZE and CHECKPOINT after it)."
      if [[ "$PG_SWEEP_SESSIONS" != "$SWEEP_SESSIONS" || "$PG_SWEEP_DUE" != "$SWEEP_DUE" ]]; then
        echo "PostgreSQL used fewer sessions/due timers than SQLite (PG_SWEEP_SESSIONS=$PG_SWEEP_SESSIONS, PG_SWEEP_DUE=$PG_SWEEP_DUE)."
      fi
      for l in "${PG_SWEEP_NOTES[@]}"; do echo "Note: $l."; done
    fi
    echo
    for l in "${SWEEP_LINES[@]}"; do echo "    $l"; done
    echo
  fi
  if [[ "$ECHO" == 1 || "$REDIS" == 1 ]]; then
    echo "### Comparisons (same run)"
    echo
    echo "sessiond UnaryCall echo: \`session-bench\` (default echo workload: /grpc.testing.TestService/UnaryCall, SimpleRequest"
    echo "with a ${ECHO_SIZE}-byte body and response_size=${ECHO_SIZE}) at $ECHO_POINT, DURATION=${DURATION}s WARMUP=${WARMUP}s, $REPEATS run(s),"
    echo "median, against a fresh \`sessiond --test-service\` (no store work: sessiond's RPC path alone)."
    echo "Redis: \`../shared/bench-anchors/redis-durable.sh\` (Redis ${REDIS_VERSION:-n/a}, appendonly yes, appendfsync always, its"
    echo "AOF in the results directory on the same disk as sessiond's data; \`redis-benchmark -q\`, which gives p50 only"
    echo "and does not count error replies). lua-route = one routed state change in a Lua script (HSET session, HINCRBY"
    echo "rep, XADD event); incr = a plain durable INCR, for reference. redis-benchmark sends N requests rather than"
    echo "running for a time: per point warmup runs (not counted, until one lasted >= ${WARMUP} s) sized N to ~${DURATION} s of lua-route$( [[ -n "$REDIS_N" ]] && echo " (overridden: REDIS_N=$REDIS_N)")"
    echo "(${REDIS_SIZING[*]:-n/a}), then $REPEATS run(s), median, each with a fresh redis-server. Client and server share the 2 cores."
    [[ -n "$REDIS_NOTE" ]] && { echo; echo "Redis not measured: $REDIS_NOTE."; }
    echo
    render_comparisons
    echo
  fi
  echo "### Ratios"
  echo
  ratio_rows
  echo
  echo "### Targets"
  echo
  targets
  echo
  why
  echo
  echo "Raw data of this run (not committed): .build-bench/results/domain-$STAMP/"
} > "$SECTION"
cat "$SECTION"

if [[ "${WRITE_BENCHMARKS:-1}" == 0 ]]; then
  log "WRITE_BENCHMARKS=0: BENCHMARKS.md left as it was; this run's section: $SECTION"
  exit 0
fi
# Replace the "## Domain workload" section of BENCHMARKS.md (up to the next level-2 heading), or append it.
OUT=$ROOT/BENCHMARKS.md
[[ -f "$OUT" ]] || printf '# Benchmarks\n' > "$OUT"
awk -v section="$SECTION" '
  function emit(   l) { while ((getline l < section) > 0) print l; close(section); done = 1 }
  /^## / { if (skipping) skipping = 0 }
  /^## Domain workload[[:space:]]*$/ { if (!done) { emit(); print "" } skipping = 1; next }
  !skipping { print }
  END { if (!done) { print ""; emit() } }
' "$OUT" > "$RAW/BENCHMARKS.md.new"
# no blank-line pile-up at the end
awk 'NF { for (; blank > 0; blank--) print ""; print; next } { blank++ }' "$RAW/BENCHMARKS.md.new" > "$OUT"
log "wrote the Domain workload section of BENCHMARKS.md; raw data: $RAW"
