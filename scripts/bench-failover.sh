#!/usr/bin/env bash
# The failover timeline on PostgreSQL: two sessiond on one database (an owner and a standby), a
# lifecycle load through the standby the whole time, and KILLS times: kill -9 the owner, then time
# until the first successful state-changing call through the surviving instance (each probe is one
# `sessionctl sessions customer-message` for a fresh conversation: a routed session, durable when
# answered); the killed instance is restarted and stands by for the next kill. Afterwards the database
# is checked: every session's event log is gapless, no cursor is used twice, no timer fired twice.
#
# Knobs: KILLS=10  LEASE_MS=3000 (sessiond --partition-lease-ms)  LOAD_CONNS=4 LOAD_DEPTH=4
#        SKIP_BUILD=1 (reuse .build-bench)  PG_BIN=/usr/lib/postgresql/<newest>/bin
# Output: the timeline on stdout and the "## Failover (PostgreSQL)" section of BENCHMARKS.md
# (WRITE_BENCHMARKS=0 leaves it alone); raw logs under .build-bench/results/failover-<stamp>/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
KILLS=${KILLS:-10}
LEASE_MS=${LEASE_MS:-3000}
LOAD_CONNS=${LOAD_CONNS:-4}
LOAD_DEPTH=${LOAD_DEPTH:-4}
HOST=127.0.0.1
BENCH=$ROOT/.build-bench
STAMP=$(date +%Y%m%d-%H%M%S)
RAW=$BENCH/results/failover-$STAMP
mkdir -p "$RAW"
log() { echo "[bench-failover] $*" >&2; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  for product in sessiond sessionctl session-bench; do
    log "build: $product (release)"
    swift build -c release --product "$product" --scratch-path "$BENCH" > "$RAW/build.log" 2>&1 || { tail -30 "$RAW/build.log" >&2; exit 1; }
  done
fi
BIN=$(swift build -c release --scratch-path "$BENCH" --show-bin-path 2>/dev/null || echo "$BENCH/release")

PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)}
[[ -x "$PG_BIN/postgres" ]] || { log "no PostgreSQL in '$PG_BIN' (apt-get install postgresql; or set PG_BIN)"; exit 1; }
PG_ROOT=$(mktemp -d /tmp/bench-failover-pg.XXXXXX)
PG_WRAPPER=""; LOAD_PID=""
declare -A PID DIR LOGF PORT
cleanup() {
  [[ -n "$LOAD_PID" ]] && kill -KILL "$LOAD_PID" 2>/dev/null || true
  for i in 1 2; do [[ -n "${PID[$i]:-}" ]] && kill -KILL "${PID[$i]}" 2>/dev/null || true; done
  if [[ -n "$PG_WRAPPER" ]]; then
    # The postmaster itself (runuser does not pass signals on): SIGINT is a fast shutdown.
    local pg; pg=$(head -1 "$PG_ROOT/data/postmaster.pid" 2>/dev/null || true)
    [[ -n "$pg" ]] && kill -INT "$pg" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$PG_WRAPPER" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PG_WRAPPER" 2>/dev/null || true
    [[ -n "$pg" ]] && kill -KILL "$pg" 2>/dev/null || true
  fi
  rm -rf "$PG_ROOT"
}
trap cleanup EXIT
as_pg=()
if [[ $(id -u) == 0 ]]; then chown postgres: "$PG_ROOT"; as_pg=(runuser -u postgres --); fi
"${as_pg[@]}" "$PG_BIN/initdb" -D "$PG_ROOT/data" -U postgres -A trust --no-locale --no-sync > "$RAW/initdb.log" 2>&1
# The postmaster picks no port of ours: it listens on a Unix socket in its own directory only.
{ echo "listen_addresses = ''"; echo "unix_socket_directories = '$PG_ROOT'"; echo "fsync = on"; } >> "$PG_ROOT/data/postgresql.conf"
"${as_pg[@]}" timeout -s INT 3600 "$PG_BIN/postgres" -D "$PG_ROOT/data" > "$RAW/pg.log" 2>&1 < /dev/null &
PG_WRAPPER=$!
for _ in $(seq 1 300); do "$PG_BIN/pg_isready" -q -h "$PG_ROOT" > /dev/null 2>&1 && break; sleep 0.1; done
"$PG_BIN/createdb" -h "$PG_ROOT" -U postgres failover
URL="postgres://postgres@/failover?host=$PG_ROOT"
TOKEN=failover-bench-admin-token
echo "$TOKEN" > "$RAW/admin-token"

start_instance() {  # start_instance I: sessiond on 127.0.0.1:0, its port from --port-file
  local i=$1
  DIR[$i]=${DIR[$i]:-$RAW/data-$i}
  LOGF[$i]=$RAW/sessiond-$i.$(now_ms).log
  rm -f "$RAW/port-$i"
  "$BIN/sessiond" --listen 127.0.0.1:0 --port-file "$RAW/port-$i" --data-dir "${DIR[$i]}" --store "$URL" \
    --admin-token "$TOKEN" --partition-lease-ms "$LEASE_MS" > "${LOGF[$i]}" 2>&1 < /dev/null &
  PID[$i]=$!
  for _ in $(seq 1 600); do [[ -s "$RAW/port-$i" ]] && break; sleep 0.05; done
  PORT[$i]=$(cat "$RAW/port-$i")
}
wait_log() {  # wait_log I TEXT SECONDS
  local end=$(( $(now_ms) + $3 * 1000 ))
  while (( $(now_ms) < end )); do grep -q "$2" "${LOGF[$1]}" && return 0; sleep 0.02; done
  log "instance $1 never logged '$2':"; tail -20 "${LOGF[$1]}" >&2; return 1
}
ctl() { "$BIN/sessionctl" --server "$HOST:$1" --token "$TOKEN" --timeout 2 "${@:2}"; }

start_instance 1; wait_log 1 "owning the partition" 30
start_instance 2; wait_log 2 "standing by" 30
owner=1; standby=2
"$BIN/session-bench" --setup --host "$HOST" --port "${PORT[2]}" --token-file "$RAW/admin-token" --channel web \
  --reps 40 --capacity 100 > "$RAW/setup.out" 2>&1
# A lifecycle load through the standby for the whole run (its errors during each failover are expected).
"$BIN/session-bench" --workload lifecycle --host "$HOST" --port "${PORT[2]}" --token-file "$RAW/admin-token" \
  --channel web --conns "$LOAD_CONNS" --depth "$LOAD_DEPTH" --duration 3600 --warmup 0 > "$RAW/load.out" 2> "$RAW/load.err" &
LOAD_PID=$!
sleep 2

ROWS=()
TIMES=()
for k in $(seq 1 "$KILLS"); do
  survivor=$standby
  t0=$(now_ms)
  kill -KILL "${PID[$owner]}"; wait "${PID[$owner]}" 2>/dev/null || true
  n=0; served=""
  while (( $(now_ms) - t0 < LEASE_MS + 30000 )); do
    n=$((n + 1))
    if ctl "${PORT[$survivor]}" sessions customer-message --conversation "fo-$k-$n" --channel web \
         --message-id "fo-$k-$n" --text "probe" > /dev/null 2>> "$RAW/probe.err"; then
      served=$(now_ms); break
    fi
  done
  [[ -n "$served" ]] || { log "kill $k: nothing served within $(( LEASE_MS + 30000 )) ms"; tail -30 "${LOGF[$survivor]}" >&2; exit 1; }
  load_ms=$(grep 'owning the partition' "${LOGF[$survivor]}" | tail -1 | grep -o 'load_ms=[0-9]*' | cut -d= -f2 || true)
  ms=$(( served - t0 ))
  TIMES+=("$ms")
  ROWS+=("| $k | instance $owner | instance $survivor | $ms | $n | ${load_ms:-?} |")
  log "kill $k: instance $owner killed; instance $survivor served after $ms ms ($n probes; partition load ${load_ms:-?} ms)"
  # The killed one comes back as the standby.
  start_instance "$owner"; wait_log "$owner" "standing by" 30
  standby=$owner; owner=$survivor
  sleep 1
done
kill -KILL "$LOAD_PID" 2>/dev/null || true; wait "$LOAD_PID" 2>/dev/null || true; LOAD_PID=""

# The database after it all: gapless logs, unique cursors, at most one end per session.
q() { "$PG_BIN/psql" -X -q -At -h "$PG_ROOT" -U postgres -d failover -c "$1"; }
gaps=$(q "SELECT count(*) FROM (SELECT session_id, max(sequence) = count(*) AS ok FROM events GROUP BY session_id) s WHERE NOT ok")
dup_cursors=$(q "SELECT count(*) - count(DISTINCT cursor) FROM events")
double_ends=$(q "SELECT count(*) FROM (SELECT session_id FROM events WHERE to_status = 'ENDED' GROUP BY session_id HAVING count(*) > 1) s")
sessions=$(q "SELECT count(*) FROM sessions"); events=$(q "SELECT count(*) FROM events")
check="ok"; (( gaps + dup_cursors + double_ends > 0 )) && check="FAILED (gapped logs $gaps, duplicate cursors $dup_cursors, sessions ended twice $double_ends)"
sorted=$(printf '%s\n' "${TIMES[@]}" | sort -n)
median=$(echo "$sorted" | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : int((a[NR/2] + a[NR/2+1]) / 2)}')
max=$(echo "$sorted" | tail -1); min=$(echo "$sorted" | head -1)

SECTION=$RAW/failover.md
{
  echo "## Failover (PostgreSQL)"
  echo
  echo "Written by \`scripts/bench-failover.sh\` (knobs: KILLS, LEASE_MS, LOAD_CONNS, LOAD_DEPTH, SKIP_BUILD)."
  echo "Run $STAMP, tree $(git rev-parse --short HEAD), $(nproc) cores, PostgreSQL $(q 'SHOW server_version' | cut -d' ' -f1) on a Unix socket."
  echo "Two sessiond (release) on one database, \`--partition-lease-ms $LEASE_MS\`; a lifecycle load"
  echo "(session-bench, ${LOAD_CONNS}x${LOAD_DEPTH}) through the standby throughout. Each kill: \`kill -9\` of the owner, then"
  echo "\`sessionctl sessions customer-message\` for a fresh conversation through the survivor, again and again, until one is"
  echo "answered OK (a routed session, durable); ms = from the kill to that answer (a probe is a process start, ~10 ms)."
  echo "The killed instance is restarted and stands by for the next kill, so the roles alternate."
  echo
  echo "| kill | killed | served by | kill -> first OK (ms) | probes | partition load on the new owner (ms) |"
  echo "|---:|---|---|---:|---:|---:|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "kill -> first OK: min $min ms, median $median ms, max $max ms (the lease, $LEASE_MS ms, bounds a *silent* owner;"
  echo "a killed one's database session ends with its socket, so the standby's next try, every 100 ms, takes the lock)."
  echo "The database afterwards: $sessions sessions, $events events; check: $check."
} > "$SECTION"
cat "$SECTION"
if [[ "${WRITE_BENCHMARKS:-1}" != 0 ]]; then
  OUT=$ROOT/BENCHMARKS.md
  awk -v section="$SECTION" '
    function emit(   l) { while ((getline l < section) > 0) print l; close(section); done = 1 }
    /^## / { if (skipping) skipping = 0 }
    /^## Failover \(PostgreSQL\)[[:space:]]*$/ { if (!done) { emit(); print "" } skipping = 1; next }
    !skipping { print }
    END { if (!done) { print ""; emit() } }
  ' "$OUT" > "$RAW/BENCHMARKS.md.new"
  awk 'NF { for (; blank > 0; blank--) print ""; print; next } { blank++ }' "$RAW/BENCHMARKS.md.new" > "$OUT"
  log "wrote the Failover section of BENCHMARKS.md; raw logs: $RAW"
fi
[[ "$check" == ok ]]
