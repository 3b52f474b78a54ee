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
# Knobs (environment):
#   DURATION=5 WARMUP=1 REPEATS=3 (median shown; keep it odd)
#   MATRIX="1x1 8x8 32x16 64x32"        points as CONNSxDEPTH
#   DURABILITIES="full process-crash"   sessiond --durability values to measure
#   CLIENT_THREADS=1  REPS=40  REP_CAPACITY=100  (REPS x REP_CAPACITY must be >= the largest C x D)
#   SWEEP_SESSIONS=1000000  SWEEP_DUE=100000  SWEEP_BATCH=256  SWEEP=0 skips the sweeper
#   SWEEP_LAYOUTS="time-ordered spread"  the first one is held against the target (time-ordered: the due
#                 sessions are the oldest, as with production ids; spread: every 10th id, the worst case)
#   SKIP_BUILD=1  reuse the binaries of an earlier run          BASE_PORT=17151
#
# Output: tables on stdout, the "Domain workload" section of BENCHMARKS.md, raw data (points.csv,
# server logs, client stderr, sweeper output) under .build-bench/results/domain-<stamp>/ (not committed).
# Builds: swift build -c release --scratch-path .build-bench (never .build); one build at a time.
# Bounds: servers and clients run under `timeout`; an EXIT trap stops what this script started, by PID.
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
BASE_PORT=${BASE_PORT:-17151}
HOST=127.0.0.1
CHANNEL=bench-web
SERVER_LIFETIME=3600
RUN_CAP=$(awk -v w="$WARMUP" -v d="$DURATION" 'BEGIN{printf "%d", w + d + 30}')
BUILD_CAP=1800
SWEEP_CAP=1800

BENCH=$ROOT/.build-bench
STAMP=$(date +%Y%m%d-%H%M%S)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
RAW=$BENCH/results/domain-$STAMP
mkdir -p "$RAW"
CSV=$RAW/points.csv
echo "store,durability,conns,depth,run,rps,p50_us,p99_us,p999_us,errors,cycles,srv_cpu_us_per_req" > "$CSV"

log() { echo "[bench-domain] $*" >&2; }

max_slots=0
for pt in $MATRIX; do s=$(( ${pt%x*} * ${pt#*x} )); (( s > max_slots )) && max_slots=$s; done
if (( REPS * REP_CAPACITY < max_slots )); then
  log "REPS x REP_CAPACITY = $((REPS * REP_CAPACITY)) < $max_slots calls in flight: routing would run out of room"; exit 2
fi

# ---------------------------------------------------------------- processes we start
SERVER_PID=""; SERVER_PROC=""; CLIENT_PID=""
stop_server() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true          # timeout passes TERM on to the server
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    [[ -n "$SERVER_PROC" ]] && kill -KILL "$SERVER_PROC" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""; SERVER_PROC=""
}
cleanup() {
  if [[ -n "$CLIENT_PID" ]] && kill -0 "$CLIENT_PID" 2>/dev/null; then
    pkill -TERM -P "$CLIENT_PID" 2>/dev/null || true      # its `timeout`, which passes TERM on
    wait "$CLIENT_PID" 2>/dev/null || true
  fi
  CLIENT_PID=""
  stop_server
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- CPU accounting (as scripts/bench.sh)
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { sed 's/.*) //' "/proc/$SERVER_PROC/stat" 2>/dev/null | awk '{print $12 + $13}' || echo 0; }
per_req_us() {  # per_req_us SECONDS N: requests of warmup + window estimated as n * (W + D) / D
  awk -v s="$1" -v n="$2" -v w="$WARMUP" -v d="$DURATION" \
    'BEGIN{ r = n * (w + d) / d; if (r > 0) printf "%.1f", s * 1e6 / r; else print "nan" }'
}

wait_port() {
  for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  log "server on port $1 did not come up (see $RAW/*.server.log)"; return 1
}

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

# ---------------------------------------------------------------- lifecycle workload
run_point() {  # run_point DURABILITY PORT TOKEN_FILE C D RUN
  local dur=$1 port=$2 tok=$3 c=$4 d=$5 r=$6 out=$RAW/client.out
  local t0 t1 line n scpu
  t0=$(cpu_ticks)
  ( timeout -s KILL "$RUN_CAP" "$BIN/session-bench" --workload lifecycle --host "$HOST" --port "$port" \
      --token-file "$tok" --channel "$CHANNEL" --conns "$c" --depth "$d" --duration "$DURATION" \
      --warmup "$WARMUP" --threads "$CLIENT_THREADS" > "$out" 2>> "$RAW/sqlite-$dur.client.err" || true ) &
  CLIENT_PID=$!
  wait "$CLIENT_PID" || true
  CLIENT_PID=""
  t1=$(cpu_ticks)
  line=$(grep '^rps=' "$out" | tail -1 || true)
  n=$(sed -n 's/.* n=\([0-9]*\).*/\1/p' <<<"$line")
  scpu=$(per_req_us "$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" 'BEGIN{print t / hz}')" "${n:-0}")
  log "sqlite/$dur C=$c D=$d run $r: ${line:-FAILED} srv_cpu_us/req=$scpu"
  local rps p50 p99 p999 err cyc
  rps=$(sed -n 's/.*rps=\([0-9.]*\).*/\1/p' <<<"$line")
  p50=$(sed -n 's/.*p50_us=\([0-9.a-z]*\).*/\1/p' <<<"$line")
  p99=$(sed -n 's/.*p99_us=\([0-9.a-z]*\).*/\1/p' <<<"$line")
  p999=$(sed -n 's/.*p999_us=\([0-9.a-z]*\).*/\1/p' <<<"$line")
  err=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' <<<"$line")
  cyc=$(sed -n 's/.*cycles=\([0-9]*\).*/\1/p' <<<"$line")
  echo "sqlite,$dur,$c,$d,$r,${rps:-0},${p50:-nan},${p99:-nan},${p999:-nan},${err:-fail},${cyc:-0},$scpu" >> "$CSV"
}

port=$BASE_PORT
for dur in $DURABILITIES; do
  data=$RAW/data-$dur
  mkdir -p "$data"
  if (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null; then log "port $port is in use; set BASE_PORT"; exit 1; fi
  log "sessiond --durability $dur on $HOST:$port, data $data"
  timeout -s TERM "$SERVER_LIFETIME" "$BIN/sessiond" --listen "$HOST:$port" --data-dir "$data" --durability "$dur" \
    > "$RAW/sqlite-$dur.server.log" 2>&1 &
  SERVER_PID=$!
  wait_port "$port"
  SERVER_PROC=$(pgrep -P "$SERVER_PID" | head -1)
  for _ in $(seq 1 50); do [[ -s "$data/admin-token" ]] && break; sleep 0.1; done
  "$BIN/session-bench" --setup --host "$HOST" --port "$port" --token-file "$data/admin-token" \
    --channel "$CHANNEL" --reps "$REPS" --capacity "$REP_CAPACITY" >&2
  for pt in $MATRIX; do
    for r in $(seq 1 "$REPEATS"); do
      run_point "$dur" "$port" "$data/admin-token" "${pt%x*}" "${pt#*x}" "$r"
    done
  done
  stop_server
  du -sh "$data" 2>/dev/null | awk '{print "[bench-domain] data dir after the runs: " $1}' >&2
  rm -rf "$data"
  port=$((port + 1))
done

# ---------------------------------------------------------------- sweeper
SWEEP_LINE=""      # the first layout's result: held against the target
SWEEP_LINES=()
if [[ "$SWEEP" == 1 ]]; then
  for layout in $SWEEP_LAYOUTS; do
    log "sweeper ($layout): $SWEEP_SESSIONS sessions, $SWEEP_DUE due (the load takes a while)"
    timeout -s KILL "$SWEEP_CAP" "$BIN/session-sweep-bench" --store sqlite --sessions "$SWEEP_SESSIONS" --due "$SWEEP_DUE" \
      --layout "$layout" --sweep-batch "$SWEEP_BATCH" --durability full --dir "$RAW/sweep-store" \
      > "$RAW/sweep-$layout.out" 2> "$RAW/sweep-$layout.err" || true
    rm -rf "$RAW/sweep-store"
    line=$(grep '^sweep ' "$RAW/sweep-$layout.out" | tail -1 || true)
    log "sweeper ($layout): ${line:-FAILED (see $RAW/sweep-$layout.err)}"
    SWEEP_LINES+=("${line:-sweep layout=$layout FAILED (see sweep-$layout.err)}")
    [[ -z "$SWEEP_LINE" && -n "$line" && "$layout" == "${SWEEP_LAYOUTS%% *}" ]] && SWEEP_LINE=$line
  done
fi

# ---------------------------------------------------------------- summary
SUMMARY=$RAW/summary.csv
echo "store,durability,conns,depth,runs_ok,runs,rps,rps_min,rps_max,p50_us,p99_us,p999_us,srv_cpu_us_per_req,errors,cycles" > "$SUMMARY"
awk -F, 'NR>1 {
    key=$1","$2","$3","$4; if (!(key in seen)) { order[++nk]=key; seen[key]=1 }
    runs[key]++
    if ($10 == "fail" || $6 + 0 <= 0) next
    n[key]++; k=n[key]
    rps[key, k]=$6; p50[key, k]=$7; p99[key, k]=$8; p999[key, k]=($9 == "nan" ? 0 : $9)
    cpu[key, k]=($12 == "nan" ? 0 : $12); err[key]+=$10; cyc[key, k]=$11
  }
  function med(arr, key, cnt,   i, j, t, v) {
    for (i=1;i<=cnt;i++) v[i]=arr[key, i]+0
    for (i=1;i<=cnt;i++) for (j=i+1;j<=cnt;j++) if (v[j]<v[i]) { t=v[i]; v[i]=v[j]; v[j]=t }
    MIN=v[1]; MAX=v[cnt]; return v[int((cnt+1)/2)]
  }
  END {
    for (q=1;q<=nk;q++) {
      key=order[q]; c=n[key]
      if (c == 0) { printf "%s,0,%d,0,0,0,nan,nan,nan,nan,0,0\n", key, runs[key]; continue }
      r=med(rps, key, c); rmin=MIN; rmax=MAX
      printf "%s,%d,%d,%d,%d,%d,%.1f,%.1f,%.1f,%s,%d,%d\n", key, c, runs[key], r, rmin, rmax,
        med(p50, key, c), med(p99, key, c), med(p999, key, c),
        (med(cpu, key, c) == 0 ? "nan" : sprintf("%.1f", med(cpu, key, c))), err[key], med(cyc, key, c)
    }
  }' "$CSV" >> "$SUMMARY"

render_table() {
  echo "| store | durability | C | D | runs | state changes/s (median) | min-max | p50 us | p99 us | p99.9 us | srv CPU us/RPC | cycles/s | errors |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  awk -F, -v d="$DURATION" 'NR>1 {
      if ($5 == 0) { printf "| %s | %s | %s | %s | 0/%s | FAILED | | | | | | | |\n", $1, $2, $3, $4, $6; next }
      printf "| %s | %s | %s | %s | %s/%s | %d | %d-%d | %s | %s | %s | %s | %d | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9,
        $10, $11, $12, ($13 == "nan" ? "n/a" : $13), $15 / d, $14
    }' "$SUMMARY"
}

# best durable (full) point, and the best process-crash point
best() {  # best DURABILITY -> "rps C D p50 p99 errors" of the highest median among points without errors
  awk -F, -v dur="$1" 'NR>1 && $2 == dur && $5 > 0 && $14 == 0 && $7 > b { b=$7; line=$7" "$3" "$4" "$10" "$11" "$14 }
    END { print line }' "$SUMMARY"
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $SWEEP_LINE"; }

targets() {
  local b; b=$(best full)
  echo "| target | measured | verdict |"
  echo "|---|---|---|"
  if [[ -n "$b" ]]; then
    read -r rps c d p50 p99 err <<<"$b"
    echo "| >= 50,000 acknowledged-durable state changes/s on SQLite (\`--durability full\`, best point) | $rps/s at C=$c D=$d (p50 $p50 us, p99 $p99 us) | $( (( rps >= 50000 )) && echo PASS || echo MISS ) |"
  else
    echo "| >= 50,000 acknowledged-durable state changes/s on SQLite | not measured (no error-free \`full\` point) | n/a |"
  fi
  local pc; pc=$(best process-crash)
  if [[ -n "$pc" ]]; then
    read -r rps c d p50 p99 err <<<"$pc"
    echo "| (reference, not the target: \`--durability process-crash\`, survives kill -9 but not power loss) | $rps/s at C=$c D=$d | - |"
  fi
  if [[ -n "$SWEEP_LINE" ]]; then
    local secs due fired check before peak after grow
    secs=$(field seconds); due=$(field due); fired=$(field fired); check=$(field check)
    before=$(field rss_before_mb); peak=$(field rss_peak_during_mb); after=$(field rss_after_mb)
    echo "| $(printf "%'d" "$due") due timers (of $(printf "%'d" "$(field sessions)") open sessions, layout $(field layout)) fired within 5 s | $fired fired in $secs s ($(field transitions_per_s)/s), check $check | $(awk -v s="$secs" -v f="$fired" -v d="$due" -v c="$check" 'BEGIN{ print (s <= 5 && f == d && c == "ok") ? "PASS" : "MISS" }') |"
    grow=$(awk -v a="$before" -v b="$peak" 'BEGIN{ printf "%.1f", b - a }')
    echo "| memory flat while they fire (peak RSS during - RSS before <= 32 MiB) | RSS before $before MiB, peak during $peak MiB (+$grow), after $after MiB | $(awk -v g="$grow" 'BEGIN{ print (g <= 32) ? "PASS" : "MISS" }') |"
  else
    echo "| 100,000 due timers fired within 5 s, memory flat | not measured (SWEEP=0 or the sweeper failed) | n/a |"
  fi
  echo "| PostgreSQL (one and two instances, beside pgbench on the same server) | PostgreSQL: not measured yet | n/a |"
}

git_rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n "$(git status --porcelain 2>/dev/null | head -1)" ]] && git_rev="$git_rev + uncommitted changes"
SECTION=$RAW/domain.md
{
  echo "## Domain workload"
  echo
  echo "Written by \`scripts/bench-domain.sh\` (knobs: DURATION, WARMUP, REPEATS, MATRIX, DURABILITIES, CLIENT_THREADS,"
  echo "REPS, REP_CAPACITY, SWEEP_SESSIONS, SWEEP_DUE, SWEEP_BATCH, SWEEP=0, SKIP_BUILD=1, BASE_PORT); it replaces only this section."
  echo
  echo "### Run $STAMP"
  echo
  echo "host: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); kernel $(uname -r); $(swift --version 2>/dev/null | head -1); data on $(df -T "$BENCH" | awk 'NR==2{print $2}')"
  echo "tree: $git_rev"
  echo "load average (1/5/15 min) at start: $LOAD_START; at the end: $(cut -d' ' -f1-3 /proc/loadavg) (the machine may be shared)"
  echo "params: DURATION=${DURATION}s WARMUP=${WARMUP}s REPEATS=$REPEATS MATRIX=\"$MATRIX\" CLIENT_THREADS=$CLIENT_THREADS REPS=$REPS REP_CAPACITY=$REP_CAPACITY loopback $HOST"
  [[ ${#BUILD_NOTES[@]} -gt 0 ]] && echo "builds: $(IFS=';'; echo "${BUILD_NOTES[*]}" | sed 's/;/; /g')"
  echo
  echo "workload: \`session-bench --workload lifecycle\`: C connections x D calls in flight; each slot loops"
  echo "PostCustomerMessage (new conversation -> routed ACTIVE), MarkInactive, PostCustomerMessage (customer returns ->"
  echo "routed ACTIVE), EndSession, as the admin, on one ENHANCED_WEB_CHAT_V2 tab-based channel with $REPS AVAILABLE reps x"
  echo "$REP_CAPACITY units. Every RPC changes state and is answered after its transaction committed (\`full\`: fsynced)."
  echo "state changes/s = those RPCs per second (every step checked: status 0 and the expected session status);"
  echo "cycles/s = completed 4-call cycles per second (all slots start together, so with a short window and long"
  echo "latencies the steps inside the window are not evenly mixed and cycles/s need not be a quarter of RPCs/s)."
  echo "srv CPU us/RPC = sessiond user+sys CPU / RPCs (10 ms ticks)."
  echo "Client and server share the 2 cores. A fresh data directory per durability."
  echo
  render_table
  echo
  if [[ ${#SWEEP_LINES[@]} -gt 0 ]]; then
    echo "sweeper: \`session-sweep-bench\` ($SWEEP_SESSIONS INACTIVE sessions with auto-end timers in a fresh SQLite store,"
    echo "$SWEEP_DUE due at once; the load is not measured; then a real TimerSweeper over a SessionBackend, batches of"
    echo "$SWEEP_BATCH sessions per transaction, \`--durability full\`; seconds = until no due session is left unfired;"
    echo "RSS = VmRSS of the process, sampled every ~10 ms). Layouts: time-ordered = ids, rows and deadlines follow"
    echo "creation time as with production ids, so the due sessions are the oldest; spread = every $(( SWEEP_SESSIONS / (SWEEP_DUE > 0 ? SWEEP_DUE : 1) ))th id is due (worst case:"
    echo "each fired session dirties pages of its own in every index)."
    echo
    for l in "${SWEEP_LINES[@]}"; do echo "    $l"; done
    echo
  fi
  echo "### Targets"
  echo
  targets
  echo
  echo "PostgreSQL: not measured yet (its store lands later; rows for one and two instances, and pgbench's own figure on"
  echo "the same server as a reference, will be added here)."
  echo
  echo "Raw data of this run (not committed): .build-bench/results/domain-$STAMP/"
} > "$SECTION"
cat "$SECTION"

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
