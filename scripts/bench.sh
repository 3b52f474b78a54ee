#!/usr/bin/env bash
# scripts/bench.sh - measure sessiond's RPC path side by side with the performance anchors
# (../shared/bench-anchors) in ONE run, on loopback, and write BENCHMARKS.md.
#
# Rigs (same closed-loop method, same knobs, same table as the anchors' run.sh):
#   c         the anchors' C epoll echo server   + the anchors' C loadgen     (the physical floor)
#   nio       the anchors' SwiftNIO framed echo   + the anchors' C loadgen
#   grpc      the anchors' grpc-swift-2 unary echo + its Swift grpc-load      (only with GRPC=1; its
#             build takes ~9 min on 2 cores. Otherwise the numbers of an earlier run are reused and
#             the output says so.)
#   sessiond  our daemon, /grpc.testing.TestService/UnaryCall + session-bench (Sources/session-bench,
#             a port of loadgen.c to our protocol: preface, length + protobuf Envelope frames)
#
# Knobs (environment):
#   DURATION=5   measured seconds per run       WARMUP=1    unmeasured seconds first
#   REPEATS=3    runs per point (median shown; keep it odd)  SIZE=256  payload bytes
#   MATRIX="1x1 8x1 8x16 64x1"   points as CONNSxDEPTH
#   SERVER_THREADS=1  threads of the anchors' servers (sessiond sizes its own Dispatch pool)
#   CLIENT_THREADS=1  threads of the load clients
#   GRPC=1       build and measure the grpc rig     ONLY="c nio sessiond"   a subset of rigs
#   SKIP_BUILD=1 reuse the binaries of an earlier run
#   BASE_PORT=17101   ports BASE..BASE+3 on 127.0.0.1
#
# Output: the table on stdout, BENCHMARKS.md at the repository root, raw data (points.csv, server
# logs, client stderr) under .build-bench/results/<stamp>/ (not committed).
# Builds: every swift build uses a scratch path under .build-bench (never .build); the anchors'
# Swift package is copied to .build-bench/anchors-src because ../shared is read-only.
# Bounds: every server runs under `timeout`, every client run under `timeout` (warmup + duration
# + 30 s); an EXIT trap stops what this script started, by PID. Everything listens on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
REPEATS=${REPEATS:-3}
SIZE=${SIZE:-256}
SERVER_THREADS=${SERVER_THREADS:-1}
CLIENT_THREADS=${CLIENT_THREADS:-1}
MATRIX=${MATRIX:-"1x1 8x1 8x16 64x1"}
GRPC=${GRPC:-0}
ONLY=${ONLY:-"c nio grpc sessiond"}
BASE_PORT=${BASE_PORT:-17101}
ANCHORS=${ANCHORS:-$ROOT/../shared/bench-anchors}
HOST=127.0.0.1
SERVER_LIFETIME=1800            # hard cap (s) for any server process
RUN_CAP=$(awk -v w="$WARMUP" -v d="$DURATION" 'BEGIN{printf "%d", w + d + 30}')
BUILD_CAP=1800                  # hard cap (s) for one build step

BENCH=$ROOT/.build-bench
BIN=$BENCH/bin
ANCHORS_SRC=$BENCH/anchors-src
ANCHORS_SCRATCH=$BENCH/anchors
STAMP=$(date +%Y%m%d-%H%M%S)
RAW=$BENCH/results/$STAMP
mkdir -p "$RAW" "$BIN"
CSV=$RAW/points.csv
echo "rig,conns,depth,run,rps,p50_us,p99_us,p999_us,errors,srv_cpu_us_per_req,cli_cpu_us_per_req" > "$CSV"

log() { echo "[bench] $*" >&2; }
wants() { [[ " $ONLY " == *" $1 "* ]]; }

# ---------------------------------------------------------------- processes we start
SERVER_PID=""     # the `timeout` wrapper of the server
SERVER_PROC=""    # the server process itself (child of the wrapper), for CPU accounting
CLIENT_PID=""     # the subshell that runs one client under `timeout`
stop_server() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true          # timeout passes TERM on to the server
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
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

# ---------------------------------------------------------------- CPU accounting
CLK_TCK=$(getconf CLK_TCK)
# utime + stime (clock ticks) of the server process, all threads; comm may not contain ") "
cpu_ticks() { sed 's/.*) //' "/proc/$SERVER_PROC/stat" 2>/dev/null | awk '{print $12 + $13}' || echo 0; }
# CPU per request in microseconds: requests of warmup + window are estimated as n * (W + D) / D
# (the anchors' approximation)
per_req_us() {  # per_req_us SECONDS N
  awk -v s="$1" -v n="$2" -v w="$WARMUP" -v d="$DURATION" \
    'BEGIN{ r = n * (w + d) / d; if (r > 0) printf "%.1f", s * 1e6 / r; else print "nan" }'
}

wait_port() {  # wait until something accepts on $1 (max ~15 s)
  for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  log "server on port $1 did not come up (see $RAW/*.server.log)"; return 1
}

start_server() {  # start_server PORT NAME CMD...
  local port=$1 name=$2; shift 2
  if (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null; then
    log "port $port is already in use by another process; set BASE_PORT"; return 1
  fi
  timeout -s TERM "$SERVER_LIFETIME" "$@" > "$RAW/$name.server.log" 2>&1 &
  SERVER_PID=$!
  wait_port "$port"
  sleep 0.5
  SERVER_PROC=$(pgrep -P "$SERVER_PID" | head -1)
  # nothing may listen beyond loopback
  if command -v ss >/dev/null && [[ -n "$SERVER_PROC" ]]; then
    local bad
    bad=$(ss -H -ltnp 2>/dev/null | grep "pid=$SERVER_PROC," | awk '{print $4}' | grep -v '^127\.0\.0\.1:' || true)
    if [[ -n "$bad" ]]; then log "$name listens beyond 127.0.0.1 ($bad): stopping"; return 1; fi
  fi
}

# parse "rps=.. p50_us=.. p99_us=.. p999_us=.. n=.. errors=.." into a CSV row
record() {  # record RIG CONNS DEPTH RUN LINE SRV_CPU CLI_CPU
  local rig=$1 c=$2 d=$3 r=$4 line=$5 scpu=$6 ccpu=$7
  local rps p50 p99 p999 err
  rps=$(sed -n 's/.*rps=\([0-9.]*\).*/\1/p' <<<"$line")
  p50=$(sed -n 's/.*p50_us=\([0-9.a-z]*\).*/\1/p' <<<"$line")
  p99=$(sed -n 's/.*p99_us=\([0-9.a-z]*\).*/\1/p' <<<"$line")
  p999=$(sed -n 's/.*p999_us=\([0-9.a-z]*\).*/\1/p' <<<"$line")
  err=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' <<<"$line")
  echo "$rig,$c,$d,$r,${rps:-0},${p50:-nan},${p99:-nan},${p999:-nan},${err:-fail},$scpu,$ccpu" >> "$CSV"
}

run_matrix() {  # run_matrix RIG PORT CLIENT_BIN [ARGS...]
  local rig=$1 port=$2; shift 2
  local out=$RAW/client.out
  for pt in $MATRIX; do
    local c=${pt%x*} d=${pt#*x}
    for r in $(seq 1 "$REPEATS"); do
      local line t0 t1 n scpu ccpu csec
      t0=$(cpu_ticks)
      # The subshell's `times` reports the CPU of its only child: `timeout` and the client.
      ( timeout -s KILL "$RUN_CAP" "$@" --host "$HOST" --port "$port" --conns "$c" --depth "$d" \
          --size "$SIZE" --duration "$DURATION" --warmup "$WARMUP" --threads "$CLIENT_THREADS" \
          > "$out" 2>> "$RAW/$rig.client.err" || true
        times > "$out.times" ) &
      CLIENT_PID=$!
      wait "$CLIENT_PID" || true
      CLIENT_PID=""
      t1=$(cpu_ticks)
      line=$(grep '^rps=' "$out" | tail -1 || true)
      n=$(sed -n 's/.* n=\([0-9]*\).*/\1/p' <<<"$line")
      scpu=$(per_req_us "$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" 'BEGIN{print t / hz}')" "${n:-0}")
      # `times` line 2: children's user and system time, e.g. "0m3.123s 0m1.456s"
      csec=$(sed -n 2p "$out.times" | awk '{ s = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); s += a[1] * 60 + a[2] } print s }')
      ccpu=$(per_req_us "${csec:-0}" "${n:-0}")
      log "$rig C=$c D=$d run $r: ${line:-FAILED} srv_cpu_us/req=$scpu cli_cpu_us/req=$ccpu"
      record "$rig" "$c" "$d" "$r" "$line" "$scpu" "$ccpu"
    done
  done
}

# ---------------------------------------------------------------- build
BUILD_NOTES=()
timed() {  # timed LABEL CMD... : run a build step (bounded), note its duration
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
swift_anchors=(env -C "$ANCHORS_SRC" swift build -c release --scratch-path "$ANCHORS_SCRATCH")

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  # One build at a time: the machine has 2 cores and is shared.
  timed "gcc C rig" sh -c "gcc -O2 -Wall -Wextra -pthread -o '$BIN/echo_server' '$ANCHORS/c/echo_server.c' && gcc -O2 -Wall -Wextra -pthread -o '$BIN/loadgen' '$ANCHORS/c/loadgen.c'"
  if wants sessiond; then
    timed "sessiond (release)" swift build -c release --product sessiond --scratch-path "$BENCH"
    timed "session-bench (release)" swift build -c release --product session-bench --scratch-path "$BENCH"
  fi
  if wants nio || { wants grpc && [[ "$GRPC" == 1 ]]; }; then
    # ../shared is read-only and SwiftPM writes Package.resolved next to Package.swift: use a copy.
    if ! diff -rq -x Package.resolved -x .build -x .swiftpm "$ANCHORS/swift" "$ANCHORS_SRC" >/dev/null 2>&1; then
      rm -rf "$ANCHORS_SRC"
      cp -r --no-preserve=mode "$ANCHORS/swift" "$ANCHORS_SRC"
    fi
    wants nio && timed "anchors nio-echo-server (release)" "${swift_anchors[@]}" --product nio-echo-server
    if wants grpc && [[ "$GRPC" == 1 ]]; then
      timed "anchors grpc-echo-server (release; ~9 min cold)" "${swift_anchors[@]}" --product grpc-echo-server
      timed "anchors grpc-load (release)" "${swift_anchors[@]}" --product grpc-load
    fi
  fi
fi
SESSIOND_BIN=$(swift build -c release --scratch-path "$BENCH" --show-bin-path 2>/dev/null || echo "$BENCH/release")
ANCHORS_BIN=$( (cd "$ANCHORS_SRC" 2>/dev/null && swift build -c release --scratch-path "$ANCHORS_SCRATCH" --show-bin-path) 2>/dev/null || echo "$ANCHORS_SCRATCH/release")

# ---------------------------------------------------------------- rigs
if wants c; then
  log "c: C epoll echo server (threads=$SERVER_THREADS) + loadgen"
  start_server $BASE_PORT c "$BIN/echo_server" --host $HOST --port $BASE_PORT --threads "$SERVER_THREADS"
  run_matrix c $BASE_PORT "$BIN/loadgen"
  stop_server
fi

if wants nio; then
  log "nio: SwiftNIO framed echo server (threads=$SERVER_THREADS) + loadgen"
  start_server $((BASE_PORT+1)) nio "$ANCHORS_BIN/nio-echo-server" --host $HOST --port $((BASE_PORT+1)) --threads "$SERVER_THREADS"
  run_matrix nio $((BASE_PORT+1)) "$BIN/loadgen"
  stop_server
fi

GRPC_NOTE=""
if wants grpc && [[ "$GRPC" == 1 ]]; then
  log "grpc: grpc-swift-2 unary echo (server ELG threads=$SERVER_THREADS) + grpc-load"
  start_server $((BASE_PORT+2)) grpc "$ANCHORS_BIN/grpc-echo-server" --host $HOST --port $((BASE_PORT+2)) --threads "$SERVER_THREADS"
  run_matrix grpc $((BASE_PORT+2)) "$ANCHORS_BIN/grpc-load"
  stop_server
  GRPC_NOTE="grpc: measured in this run."
fi

if wants sessiond; then
  log "sessiond: TestService/UnaryCall + session-bench"
  mkdir -p "$RAW/sessiond-data"
  start_server $((BASE_PORT+3)) sessiond "$SESSIOND_BIN/sessiond" --listen "$HOST:$((BASE_PORT+3))" --data-dir "$RAW/sessiond-data" --test-service
  run_matrix sessiond $((BASE_PORT+3)) "$SESSIOND_BIN/session-bench"
  stop_server
fi

# ---------------------------------------------------------------- summary
# summary.csv: one row per (rig, C, D): medians (odd count -> middle; even -> lower middle)
SUMMARY=$RAW/summary.csv
summarize() {  # summarize POINTS_CSV [RIG_LABEL_SUFFIX]
  awk -F, -v suffix="${2:-}" 'NR>1 {
      key=$1","$2","$3; if (!(key in seen)) { order[++nk]=key; seen[key]=1 }
      if ($9 == "fail" || $5 + 0 <= 0) { failed[key]++; next }   # a run that produced no result
      n[key]++; k=n[key]
      rps[key, k]=$5; p50[key, k]=$6; p99[key, k]=$7; p999[key, k]=($8 == "nan" ? 0 : $8); err[key]+=$9
      scpu[key, k]=($10 == "nan" || $10 == "" ? 0 : $10); ccpu[key, k]=($11 == "nan" || $11 == "" ? 0 : $11)
    }
    function med(arr, key, cnt,   i, j, t, v) {
      for (i=1;i<=cnt;i++) v[i]=arr[key, i]+0
      for (i=1;i<=cnt;i++) for (j=i+1;j<=cnt;j++) if (v[j]<v[i]) { t=v[i]; v[i]=v[j]; v[j]=t }
      MIN=v[1]; MAX=v[cnt]; return v[int((cnt+1)/2)]
    }
    END {
      for (q=1;q<=nk;q++) {
        key=order[q]; split(key, f, ","); c=n[key]
        if (c == 0) { printf "%s%s,%s,%s,0,%d,0,0,0,nan,nan,nan,nan,nan,0\n", f[1], suffix, f[2], f[3], failed[key]; continue }
        r=med(rps, key, c); rmin=MIN; rmax=MAX
        a=med(p50, key, c); b=med(p99, key, c); d=med(p999, key, c); u=med(scpu, key, c); w=med(ccpu, key, c)
        printf "%s%s,%s,%s,%d,%d,%d,%d,%d,%.1f,%.1f,%s,%s,%s,%d\n", f[1], suffix, f[2], f[3], c, c + failed[key], r, rmin, rmax, a, b,
          (d==0 ? "nan" : sprintf("%.1f", d)), (u==0 ? "nan" : sprintf("%.1f", u)), (w==0 ? "nan" : sprintf("%.1f", w)), err[key]
      }
    }' "$1"
}
echo "rig,conns,depth,runs_ok,runs,rps,rps_min,rps_max,p50_us,p99_us,p999_us,srv_cpu_us_per_req,cli_cpu_us_per_req,errors" > "$SUMMARY"
summarize "$CSV" >> "$SUMMARY"

# grpc without GRPC=1: reuse an earlier run's numbers (ours first, then the anchors' published ones)
if wants grpc && [[ "$GRPC" != 1 ]]; then
  prev=""
  for f in $(ls -1d "$BENCH"/results/*/points.csv 2>/dev/null | sort -r); do
    [[ "$f" == "$CSV" ]] && continue
    if grep -q '^grpc,' "$f"; then prev=$f; break; fi
  done
  if [[ -n "$prev" ]]; then
    { head -1 "$prev"; grep '^grpc,' "$prev"; } > "$RAW/grpc-reused.points.csv"
    summarize "$RAW/grpc-reused.points.csv" "*" >> "$SUMMARY"
    GRPC_NOTE="grpc*: NOT measured in this run (GRPC=1 not set): reused from the earlier run $(basename "$(dirname "$prev")") ($prev)."
  else
    src=""
    for f in "$ANCHORS/results/latest.md" "$ANCHORS/README.md"; do
      if [[ -f "$f" ]] && grep -q '^| grpc | ' "$f"; then src=$f; break; fi
    done
    if [[ -n "$src" ]]; then
      # | grpc | C | D | runs | req/s | min-max | p50 | p99 | p99.9 | p99 min-max | srv CPU | errors |
      grep '^| grpc | ' "$src" | awk -F'|' '{
          for (i=2;i<=13;i++) gsub(/^ +| +$/, "", $i)
          if (seen[$3","$4]++) next                       # the first table only
          split($5, runs, "/"); split($7, mm, "-")
          printf "grpc*,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,nan,%s\n", $3, $4, runs[1], runs[2], $6, mm[1], mm[2], $8, $9, $10, $12, $13
        }' >> "$SUMMARY"
      runid=$(grep -m1 -o 'anchors run [0-9-]*' "$src" || true)
      GRPC_NOTE="grpc*: NOT measured in this run (GRPC=1 not set) and no earlier run of ours has grpc numbers: reused the anchors' published table ($src${runid:+, $runid}), another run on a machine of the same kind; treat those ratios as indicative."
    else
      GRPC_NOTE="grpc: not measured (GRPC=1 not set) and no earlier numbers found."
    fi
  fi
fi

render_table() {
  echo "| rig | C | D | runs | req/s (median) | req/s min-max | p50 us | p99 us | p99.9 us | srv CPU us/req | client CPU us/req | errors |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  awk -F, 'NR>1 {
      if ($4 == 0) { printf "| %s | %s | %s | 0/%s | FAILED | | | | | | | |\n", $1, $2, $3, $5; next }
      printf "| %s | %s | %s | %s/%s | %d | %d-%d | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
        ($11 == "nan" ? "n/a" : $11), ($12 == "nan" ? "n/a" : $12), ($13 == "nan" ? "n/a" : $13), $14
    }' "$SUMMARY"
}

ratios() {
  awk -F, -v matrix="$MATRIX" 'NR>1 && $4 > 0 {
      rig=$1; sub(/\*$/, "", rig); key=rig","$2"x"$3; rps[key]=$6; p50[key]=$9; cpu[key]=$12; have[key]=1
    }
    function verdict(ok) { return ok ? "PASS" : "MISS" }
    END {
      print "| ratio (medians) | value | target | verdict |"
      print "|---|---:|---:|---|"
      if (have["sessiond,1x1"] && have["c,1x1"] && p50["c,1x1"] > 0) {
        v = p50["sessiond,1x1"] / p50["c,1x1"]
        printf "| sessiond 1x1 p50 / C floor 1x1 p50 (%.1f / %.1f us) | %.2f | <= 1.5 | %s |\n", p50["sessiond,1x1"], p50["c,1x1"], v, verdict(v <= 1.5)
      } else print "| sessiond 1x1 p50 / C floor 1x1 p50 | n/a | <= 1.5 | n/a (point not measured) |"
      if (have["sessiond,8x16"] && have["nio,8x16"] && rps["nio,8x16"] > 0) {
        v = rps["sessiond,8x16"] / rps["nio,8x16"]
        printf "| sessiond 8x16 req/s / NIO 8x16 req/s (%d / %d) | %.2f | >= 1 | %s |\n", rps["sessiond,8x16"], rps["nio,8x16"], v, verdict(v >= 1)
      } else print "| sessiond 8x16 req/s / NIO 8x16 req/s | n/a | >= 1 | n/a (point not measured) |"
      n = split(matrix, pts, " ")
      for (i=1;i<=n;i++) {
        k=pts[i]
        if (have["sessiond,"k] && have["grpc,"k] && rps["grpc,"k] > 0) {
          v = rps["sessiond,"k] / rps["grpc,"k]
          printf "| sessiond %s req/s / grpc %s req/s (%d / %d) | %.1f | >= 20 | %s |\n", k, k, rps["sessiond,"k], rps["grpc,"k], v, verdict(v >= 20)
        } else printf "| sessiond %s req/s / grpc %s req/s | n/a | >= 20 | n/a (no numbers) |\n", k, k
      }
    }' "$SUMMARY"
}

git_rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n "$(git status --porcelain 2>/dev/null | head -1)" ]] && git_rev="$git_rev + uncommitted changes"
{
  echo "# Benchmarks"
  echo
  echo "sessiond's RPC path measured side by side with the performance anchors of \`../shared/bench-anchors\`"
  echo "in one run, on loopback. Rerun: \`scripts/bench.sh\` (knobs: DURATION, WARMUP, REPEATS, SIZE, MATRIX,"
  echo "SERVER_THREADS, CLIENT_THREADS, GRPC=1 to build and measure grpc-swift-2, ONLY, SKIP_BUILD=1, BASE_PORT)."
  echo
  echo "## Run $STAMP"
  echo
  echo "host: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); kernel $(uname -r); $(swift --version 2>/dev/null | head -1)"
  echo "tree: $git_rev"
  echo "params: DURATION=${DURATION}s WARMUP=${WARMUP}s REPEATS=$REPEATS SIZE=${SIZE}B MATRIX=\"$MATRIX\" SERVER_THREADS=$SERVER_THREADS CLIENT_THREADS=$CLIENT_THREADS loopback $HOST"
  [[ ${#BUILD_NOTES[@]} -gt 0 ]] && echo "builds: $(IFS=';'; echo "${BUILD_NOTES[*]}" | sed 's/;/; /g')"
  echo
  echo "rigs: c = the anchors' C epoll echo server + C loadgen (the floor); nio = the anchors' SwiftNIO"
  echo "      LengthFieldBasedFrameDecoder echo + C loadgen; grpc = the anchors' grpc-swift-2 unary echo (HTTP/2)"
  echo "      + Swift grpc-load; sessiond = \`sessiond\` serving /grpc.testing.TestService/UnaryCall (SimpleRequest"
  echo "      with a ${SIZE}-byte body and response_size=${SIZE}) + \`session-bench\` (loadgen.c ported to the"
  echo "      SESSRPC protocol: preface, 4-byte length + protobuf Envelope, every response decoded and checked)."
  echo "      The echo rigs move ${SIZE}-byte frames; sessiond's frames are ${SIZE} bytes plus the envelope and"
  echo "      SimpleRequest/SimpleResponse framing (about 50 bytes more each way) and do real protobuf work."
  echo "srv CPU us/req = server process user+sys CPU over the run / requests (10 ms tick resolution);"
  echo "client CPU us/req = the load client's user+sys CPU likewise (rusage). Client and server share the 2 cores."
  [[ -n "$GRPC_NOTE" ]] && { echo; echo "$GRPC_NOTE"; }
  echo
  render_table
  echo
  echo "### Ratios"
  echo
  ratios
  echo
  echo "Raw data of this run (not committed): .build-bench/results/$STAMP/"
} | tee "$RAW/summary.md"
# Keep the "## Domain workload" section that scripts/bench-domain.sh writes into the same file.
if [[ -f "$ROOT/BENCHMARKS.md" ]]; then
  awk '/^## / { keep = ($0 ~ /^## Domain workload/) } keep' "$ROOT/BENCHMARKS.md" > "$RAW/domain-section.md"
  if [[ -s "$RAW/domain-section.md" ]]; then { echo; cat "$RAW/domain-section.md"; } >> "$RAW/summary.md"; fi
fi
cp "$RAW/summary.md" "$ROOT/BENCHMARKS.md"
log "wrote BENCHMARKS.md; raw data: $RAW"
