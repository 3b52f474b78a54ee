#!/usr/bin/env bash
# Tenants over 1, 2 and 3 sessiond instances on one PostgreSQL: does anything serialise?
#
# For each N in INSTANCES: a fresh database, N release sessiond on it, TENANTS_PER x N tenants created
# through the operator token (each with a channel and 40 reps), spread by the instances themselves
# (waits until each serves TENANTS_PER), then one lifecycle load client per tenant (session-bench
# --workload lifecycle, CONNS connections x DEPTH calls in flight, DEPTH = TOTAL_INFLIGHT / (tenants x
# CONNS): the same offered load whatever N), all at once, each to its tenant's owner. Measured over the run:
#   - state changes per CPU-second of all processes: every sessiond and PostgreSQL (postmaster and
#     backends, reaped ones included); the load clients are not counted. On 2 cores the absolute rate is
#     capped, so this ratio (N instances vs 1) is what shows whether anything serialises;
#   - PostgreSQL statements (each one round trip) per state change (pg_stat_statements, the database only);
#   - lock waits: pg_stat_activity sampled every 20 ms, sessiond backends waiting on a heavyweight lock
#     (wait_event_type = 'Lock') per sample and per 1000 state changes.
#
# Knobs: INSTANCES="1 2 3" TENANTS_PER=4 CONNS=1 TOTAL_INFLIGHT=96 DURATION=8 WARMUP=2 LEASE_MS=10000
#        PER_TENANT_INFLIGHT=24 (instead of TOTAL_INFLIGHT: each tenant the same load whatever N, so the
#        offered load grows with the instances, as when tenants, each with its traffic, are added)
#        SKIP_BUILD=1 (reuse .build-bench)  PG_BIN=/usr/lib/postgresql/<newest>/bin  WRITE_BENCHMARKS=0
# Output: a table on stdout and the "## Tenants over instances (PostgreSQL)" section of BENCHMARKS.md;
# raw logs under .build-bench/results/tenants-<stamp>/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
INSTANCES=${INSTANCES:-"1 2 3"}
TENANTS_PER=${TENANTS_PER:-4}
CONNS=${CONNS:-1}
TOTAL_INFLIGHT=${TOTAL_INFLIGHT:-96}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
LEASE_MS=${LEASE_MS:-10000}
HOST=127.0.0.1
BENCH=$ROOT/.build-bench
STAMP=$(date +%Y%m%d-%H%M%S)
RAW=$BENCH/results/tenants-$STAMP
mkdir -p "$RAW"
log() { echo "[bench-tenants] $*" >&2; }
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
PG_ROOT=$(mktemp -d /tmp/bench-tenants-pg.XXXXXX)
PG_WRAPPER=""; PG_PID=""; SAMPLER=""
declare -a SPIDS=() CLIENTS=()
cleanup() {
  for p in "${CLIENTS[@]}" "${SPIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  [[ -n "$SAMPLER" ]] && kill -KILL "$SAMPLER" 2>/dev/null || true
  if [[ -n "$PG_WRAPPER" ]]; then
    [[ -n "$PG_PID" ]] && kill -INT "$PG_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$PG_WRAPPER" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PG_WRAPPER" 2>/dev/null || true
    [[ -n "$PG_PID" ]] && kill -KILL "$PG_PID" 2>/dev/null || true
  fi
  rm -rf "$PG_ROOT"
}
trap cleanup EXIT
as_pg=()
if [[ $(id -u) == 0 ]]; then chown postgres: "$PG_ROOT"; as_pg=(runuser -u postgres --); fi
"${as_pg[@]}" "$PG_BIN/initdb" -D "$PG_ROOT/data" -U postgres -A trust --no-locale --no-sync > "$RAW/initdb.log" 2>&1
{
  echo "listen_addresses = ''"; echo "unix_socket_directories = '$PG_ROOT'"; echo "fsync = on"
  echo "max_connections = 400"; echo "max_wal_size = '2GB'"; echo "shared_preload_libraries = 'pg_stat_statements'"
  echo "pg_stat_statements.track_planning = on"
} >> "$PG_ROOT/data/postgresql.conf"
"${as_pg[@]}" timeout -s INT 7200 "$PG_BIN/postgres" -D "$PG_ROOT/data" > "$RAW/pg.log" 2>&1 < /dev/null &
PG_WRAPPER=$!
for _ in $(seq 1 300); do "$PG_BIN/pg_isready" -q -h "$PG_ROOT" > /dev/null 2>&1 && break; sleep 0.1; done
PG_PID=$(head -1 "$PG_ROOT/data/postmaster.pid")
q() { "$PG_BIN/psql" -X -q -At -h "$PG_ROOT" -U postgres -d "$1" -c "$2"; }
q postgres "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" > /dev/null
PG_VERSION=$(q postgres "SHOW server_version" | cut -d' ' -f1)

CLK_TCK=$(getconf CLK_TCK)
proc_ticks() {  # user+sys (+ reaped children's with 4) ticks of PID, 0 if gone
  local v
  v=$(awk -v f="${2:-2}" '{ sub(/.*\) /, ""); print (f == 4) ? $12 + $13 + $14 + $15 : $12 + $13 }' "/proc/$1/stat" 2>/dev/null || true)
  echo "${v:-0}"
}
pg_ticks() {
  local t p
  t=$(proc_ticks "$PG_PID" 4)
  for p in $(pgrep -P "$PG_PID" || true); do t=$(( t + $(proc_ticks "$p") )); done
  echo "$t"
}
pg_ticks_settled() {  # a backend's time reaches the postmaster's reaped-children time a moment after it exits
  local a b
  a=$(pg_ticks)
  for _ in $(seq 1 30); do sleep 0.1; b=$(pg_ticks); (( b - a <= 1 )) && break; a=$b; done
  echo "$b"
}
sessiond_ticks() { local t=0 p; for p in "${SPIDS[@]}"; do t=$(( t + $(proc_ticks "$p") )); done; echo "$t"; }

OPERATOR=tenants-bench-operator-token
ADMIN=tenants-bench-admin-token
ROWS=()
declare -A PER_CPU
for n in $INSTANCES; do
  db=tenants$n
  "$PG_BIN/createdb" -h "$PG_ROOT" -U postgres "$db"
  URL="postgres://postgres@/$db?host=$PG_ROOT"
  SPIDS=()
  declare -A PORTS=()
  for i in $(seq 1 "$n"); do
    rm -f "$RAW/port-$n-$i"
    "$BIN/sessiond" --listen 127.0.0.1:0 --port-file "$RAW/port-$n-$i" --data-dir "$RAW/data-$n-$i" --store "$URL" \
      --admin-token "$ADMIN" --operator-token "$OPERATOR" --partition-lease-ms "$LEASE_MS" \
      > "$RAW/sessiond-$n-$i.log" 2>&1 < /dev/null &
    SPIDS+=($!)
    for _ in $(seq 1 600); do [[ -s "$RAW/port-$n-$i" ]] && break; sleep 0.05; done
    PORTS[$i]=$(cat "$RAW/port-$n-$i")
  done
  first=${PORTS[1]}
  tenants=$(( n * TENANTS_PER ))
  if [[ -n "${PER_TENANT_INFLIGHT:-}" ]]; then DEPTH=$(( PER_TENANT_INFLIGHT / CONNS )); else DEPTH=$(( TOTAL_INFLIGHT / (tenants * CONNS) )); fi
  (( DEPTH >= 1 )) || DEPTH=1
  # The default tenant counts too: it gets no load, and one instance owns it beside its share.
  for k in $(seq 1 "$tenants"); do
    "$BIN/sessionctl" --server "$HOST:$first" --token "$OPERATOR" tenants create "t$k" --json > "$RAW/tenant-$n-$k.json"
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["adminToken"]["token"])' "$RAW/tenant-$n-$k.json" > "$RAW/token-$n-$k"
  done
  # Spread: every instance serves its share (the default tenant makes one of them serve one more), and
  # has for 3 s: an instance hands a tenant over at most every 2 s, and one that moved during the load
  # would be reached through the instance the client was pointed at.
  spread=0; stable=0; last=""
  for _ in $(seq 1 900); do
    owned=0; total=0; counts=""
    for i in $(seq 1 "$n"); do
      c=$(curl -s "http://$HOST:${PORTS[$i]}/metrics" | awk '/^sessiond_tenants_owned /{print $2}')
      c=${c:-0}
      (( c >= TENANTS_PER )) && owned=$(( owned + 1 ))
      total=$(( total + c )); counts+="$c "
    done
    if (( owned == n && total == tenants + 1 )) && [[ "$counts" == "$last" ]]; then stable=$(( stable + 1 )); else stable=0; fi
    last=$counts
    (( stable >= 30 )) && { spread=1; break; }
    sleep 0.1
  done
  (( spread )) || { log "N=$n: the tenants did not spread"; exit 1; }
  declare -A OWNER_PORT=()
  for k in $(seq 1 "$tenants"); do
    addr=$(q "$db" "SELECT address FROM tenant_t$k.partition_owner")
    OWNER_PORT[$k]=${addr##*:}
  done
  # Set up once spread (a tenant being handed over answers UNAVAILABLE for a moment).
  for k in $(seq 1 "$tenants"); do
    "$BIN/session-bench" --setup --host "$HOST" --port "${OWNER_PORT[$k]}" --token-file "$RAW/token-$n-$k" --channel web \
      --reps 40 --capacity 100 > "$RAW/setup-$n-$k.out" 2>&1 || { cat "$RAW/setup-$n-$k.out" >&2; exit 1; }
  done
  log "N=$n: $tenants tenants spread: $(for i in $(seq 1 "$n"); do echo -n "instance $i ($(curl -s "http://$HOST:${PORTS[$i]}/metrics" | awk '/^sessiond_tenants_owned /{print $2}')) "; done)"

  q postgres "SELECT pg_stat_statements_reset()" > /dev/null
  # Lock waits: every 20 ms, the sessiond backends, and those waiting on a heavyweight lock. One psql
  # session repeats the query (\watch): a psql and a backend started per sample cost ~15% of the 2 cores.
  "$PG_BIN/psql" -X -q -At -h "$PG_ROOT" -U postgres -d postgres -P pager=off > "$RAW/locks-$n.txt" 2>/dev/null <<'SQL' &
SELECT count(*) FILTER (WHERE state = 'active') || ' ' || count(*) FILTER (WHERE wait_event_type = 'Lock')
FROM pg_stat_activity WHERE application_name LIKE 'sessiond%' \watch 0.02
SQL
  SAMPLER=$!
  p0=$(pg_ticks_settled); s0=$(sessiond_ticks); t0=$(now_ms); x0=$(awk '/^ctxt /{print $2}' /proc/stat)
  CLIENTS=()
  for k in $(seq 1 "$tenants"); do
    timeout -s KILL $(( WARMUP + DURATION + 60 )) "$BIN/session-bench" --workload lifecycle --host "$HOST" --port "${OWNER_PORT[$k]}" \
      --token-file "$RAW/token-$n-$k" --channel web --conns "$CONNS" --depth "$DEPTH" --duration "$DURATION" --warmup "$WARMUP" \
      > "$RAW/load-$n-$k.out" 2> "$RAW/load-$n-$k.err" &
    CLIENTS+=($!)
  done
  for p in "${CLIENTS[@]}"; do wait "$p" || true; done
  CLIENTS=()
  s1=$(sessiond_ticks); t1=$(now_ms); x1=$(awk '/^ctxt /{print $2}' /proc/stat); p1=$(pg_ticks_settled)
  moved=0
  for k in $(seq 1 "$tenants"); do
    addr=$(q "$db" "SELECT address FROM tenant_t$k.partition_owner")
    [[ "${addr##*:}" == "${OWNER_PORT[$k]}" ]] || moved=$(( moved + 1 ))
  done
  (( moved == 0 )) || log "N=$n: $moved tenant(s) changed owner during the run: their calls were forwarded"
  kill -KILL "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true; SAMPLER=""
  statements=$(q postgres "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '$db')")
  # Where PostgreSQL's time goes, per statement shape (raw log only).
  q postgres "SELECT calls, round(total_plan_time::numeric, 1) AS plan_ms, round(total_exec_time::numeric, 1) AS exec_ms, rows,
                     left(regexp_replace(query, '\s+', ' ', 'g'), 160)
              FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '$db')
              ORDER BY total_plan_time + total_exec_time DESC LIMIT 25" > "$RAW/statements-$n.txt" 2>&1 || true
  q postgres "SELECT sum(calls), round(sum(total_plan_time)::numeric, 1), round(sum(total_exec_time)::numeric, 1), left(query, 12)
              FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '$db')
              GROUP BY left(query, 12) ORDER BY 3 DESC" > "$RAW/statement-kinds-$n.txt" 2>&1 || true
  # CPU seconds of each PostgreSQL process still alive, and of the reaped ones (the postmaster's children).
  { ps --ppid "$PG_PID" -o times=,args= ; echo "reaped: $(awk '{ sub(/.*\) /, ""); print ($14 + $15) / '"$CLK_TCK"' }' "/proc/$PG_PID/stat")"; } \
    > "$RAW/pg-processes-$n.txt" 2>&1 || true
  read -r changes rps errors <<<"$(cat "$RAW"/load-$n-*.out | awk '{
      for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      n += v["n"]; r += v["rps"]; e += v["errors"] } END { printf "%d %.0f %d\n", n, r, e }')"
  # CPU, statements and lock samples cover warmup + window + the tail, changes the window only: the former
  # are scaled to the window (times DURATION / elapsed).
  elapsed_ms=$(( t1 - t0 ))
  read -r per_cpu sessiond_us pg_us rt lock_per_sample lock_per_k samples switches <<<"$(awk \
      -v s=$((s1 - s0)) -v p=$((p1 - p0)) -v hz="$CLK_TCK" -v n="$changes" -v d="$DURATION" -v el="$elapsed_ms" \
      -v st="$statements" -v sw=$((x1 - x0)) -f /dev/stdin "$RAW/locks-$n.txt" <<'AWK'
/^[0-9]+ [0-9]+$/ { samples++; locks += $2 }
END {
  frac = d * 1000 / el; cpu = (s + p) / hz * frac
  printf "%.0f %.1f %.1f %.3f %.4f %.3f %d %.1f\n", (cpu > 0 ? n / cpu : 0), s / hz * frac * 1e6 / n, p / hz * frac * 1e6 / n,
    st * frac / n, (samples ? locks / samples : 0), locks * frac * 1000 / n, samples, sw * frac / n
}
AWK
)"
  PER_CPU[$n]=$per_cpu
  ratio=$(awk -v a="$per_cpu" -v b="${PER_CPU[1]:-$per_cpu}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
  log "N=$n: $changes state changes in the window ($rps/s, errors $errors); per CPU-second $per_cpu ($ratio x N=1); sessiond $sessiond_us us + PostgreSQL $pg_us us CPU per change; statements/change $rt; lock waits per sample $lock_per_sample ($samples samples)"
  ROWS+=("| $n | $tenants | ${CONNS}x${DEPTH} | $rps | $errors | $sessiond_us | $pg_us | $per_cpu | $ratio | $rt | $lock_per_sample | $lock_per_k | $switches |")
  for p in "${SPIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${SPIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  SPIDS=()
done

if [[ -n "${PER_TENANT_INFLIGHT:-}" ]]; then LOAD_NOTE="$PER_TENANT_INFLIGHT calls in flight per tenant, so the load grows with N"
else LOAD_NOTE="$TOTAL_INFLIGHT calls in flight in all, whatever N"; fi
SECTION=$RAW/tenants.md
{
  echo "## Tenants over instances (PostgreSQL)"
  echo
  echo "Written by \`scripts/bench-tenants.sh\` (knobs: INSTANCES, TENANTS_PER, CONNS, DEPTH, DURATION, WARMUP, SKIP_BUILD)."
  echo "Run $STAMP, tree $(git rev-parse --short HEAD), $(nproc) cores, PostgreSQL $PG_VERSION on a Unix socket, \`fsync = on\`."
  echo "N release sessiond on one database, $TENANTS_PER tenants per instance (spread by the instances themselves; the"
  echo "default tenant, unloaded, sits beside one share), one lifecycle client per tenant (session-bench, C x D, to its"
  echo "tenant's owner; $LOAD_NOTE), all at once for ${WARMUP} s + ${DURATION} s. CPU: every sessiond and every PostgreSQL process over"
  echo "the run, scaled to the measured window; the load clients share the 2 cores but are not counted."
  echo
  echo "| instances | tenants | C x D per tenant | state changes/s | errors | sessiond CPU µs/change | PostgreSQL CPU µs/change | changes per CPU-second | ÷ 1 instance | statements (round trips)/change | lock waits per sample | lock waits per 1000 changes | context switches/change (machine) |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "Lock waits: pg_stat_activity sampled every 20 ms; a sample counts the sessiond backends waiting on a heavyweight lock."
  echo "Context switches: the machine's (\`ctxt\` of /proc/stat: every process, load clients included) over the run, per state change in the window."
} > "$SECTION"
cat "$SECTION"
if [[ "${WRITE_BENCHMARKS:-1}" != 0 ]]; then
  OUT=$ROOT/BENCHMARKS.md
  awk -v section="$SECTION" '
    function emit(   l) { while ((getline l < section) > 0) print l; close(section); done = 1 }
    /^## / { if (skipping) skipping = 0 }
    /^## Tenants over instances \(PostgreSQL\)[[:space:]]*$/ { if (!done) { emit(); print "" } skipping = 1; next }
    !skipping { print }
    END { if (!done) { print ""; emit() } }
  ' "$OUT" > "$RAW/BENCHMARKS.md.new"
  awk 'NF { for (; blank > 0; blank--) print ""; print; next } { blank++ }' "$RAW/BENCHMARKS.md.new" > "$OUT"
  log "wrote the Tenants section of BENCHMARKS.md; raw logs: $RAW"
fi
