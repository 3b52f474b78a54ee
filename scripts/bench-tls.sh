#!/usr/bin/env bash
# TLS beside plaintext, in one run: two release sessiond processes started side by side (one with
# --tls-cert/--tls-key, one without; same flags otherwise), the same session-bench points against each,
# alternated point by point so that both meet the same machine. Prints a table (and writes it, with the
# raw client lines, under .build-bench/results/tls-<stamp>/).
#
#   scripts/bench-tls.sh                       # build (release, .build-bench), then measure
#   SKIP_BUILD=1 POINTS="echo:8x16 echo:1x1 lifecycle:32x16 lifecycle:1x1" REPEATS=3 DURATION=4 scripts/bench-tls.sh
#
# Points: echo:CxD (UnaryCall, 256-byte payload and answer, --test-service) and lifecycle:CxD
# (the domain workload of scripts/bench-domain.sh, --durability full). Per point and mode: the median
# of REPEATS runs of state changes (or calls) per second, p50/p99 latency, and sessiond's CPU per
# call (user+sys ticks of the process over the run, divided by the calls of warmup and window).
# The certificate is a P-256 ECDSA self-signed one made here with the openssl CLI; TLS 1.3 is negotiated.
set -euo pipefail
cd "$(dirname "$0")/.."

POINTS=${POINTS:-"echo:8x16 echo:1x1 lifecycle:32x16 lifecycle:1x1"}
REPEATS=${REPEATS:-3}
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-1}
HOST=127.0.0.1
BENCH=${BENCH_SCRATCH:-.build-bench}
STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT=$BENCH/results/tls-$STAMP
mkdir -p "$OUT"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
log() { echo "[bench-tls] $*" >&2; }

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  log "build: sessiond and session-bench (release, $BENCH)"
  swift build -c release --product sessiond --scratch-path "$BENCH" > "$OUT/build.log" 2>&1
  swift build -c release --product session-bench --scratch-path "$BENCH" >> "$OUT/build.log" 2>&1
fi
BIN=$(swift build -c release --scratch-path "$BENCH" --show-bin-path)

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench" \
  -addext "subjectAltName=IP:127.0.0.1" -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2> "$WORK/openssl.log"

CLK_TCK=$(getconf CLK_TCK)
ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

start() {  # start NAME [flags...] -> sets PORT_<NAME>, PID_<NAME>
  local name=$1; shift
  mkdir -p "$WORK/$name"
  "$BIN/sessiond" --listen "$HOST:0" --port-file "$WORK/$name/port" --data-dir "$WORK/$name/data" \
    --test-service --durability full "$@" > "$OUT/$name.server.log" 2>&1 < /dev/null &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 300); do [[ -s "$WORK/$name/port" ]] && break; sleep 0.05; done
  [[ -s "$WORK/$name/port" ]] || { cat "$OUT/$name.server.log" >&2; log "$name did not start"; exit 1; }
  printf -v "PORT_$name" '%s' "$(cat "$WORK/$name/port")"
  printf -v "PID_$name" '%s' "$pid"
}
start plain
start tls --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem"
TLS_ARGS_plain=()
TLS_ARGS_tls=(--tls-ca "$WORK/cert.pem")

for mode in plain tls; do
  port_var=PORT_$mode; args_var="TLS_ARGS_$mode[@]"
  "$BIN/session-bench" --setup --host "$HOST" --port "${!port_var}" --token-file "$WORK/$mode/data/admin-token" \
    --channel bench-web --reps 40 --capacity 100 "${!args_var}" > "$OUT/$mode.setup.log" 2>&1 \
    || { cat "$OUT/$mode.setup.log" >&2; exit 1; }
done

echo "point,mode,run,rps,p50_us,p99_us,errors,srv_cpu_us_per_call" > "$OUT/runs.csv"
run() {  # run WORKLOAD C D MODE RUN
  local workload=$1 c=$2 d=$3 mode=$4 r=$5
  local port_var=PORT_$mode pid_var=PID_$mode args_var="TLS_ARGS_$mode[@]"
  local extra=()
  [[ $workload == lifecycle ]] && extra=(--workload lifecycle --token-file "$WORK/$mode/data/admin-token" --channel bench-web)
  local t0 t1 line
  t0=$(ticks "${!pid_var}")
  line=$("$BIN/session-bench" --host "$HOST" --port "${!port_var}" --conns "$c" --depth "$d" --duration "$DURATION" \
    --warmup "$WARMUP" "${extra[@]}" "${!args_var}" 2> "$OUT/client.err" | tail -1) || true
  t1=$(ticks "${!pid_var}")
  echo "$workload:${c}x$d $mode $r $line" >> "$OUT/client.lines"
  local rps p50 p99 err
  rps=$(sed -n 's/.*rps=\([0-9.]*\).*/\1/p' <<<"$line"); p50=$(sed -n 's/.*p50_us=\([0-9.]*\).*/\1/p' <<<"$line")
  p99=$(sed -n 's/.*p99_us=\([0-9.]*\).*/\1/p' <<<"$line"); err=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' <<<"$line")
  local cpu
  cpu=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v rps="${rps:-0}" -v w="$WARMUP" -v d="$DURATION" \
    'BEGIN{ n = rps * (w + d); if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "nan" }')
  echo "$workload:${c}x$d,$mode,$r,${rps:-0},${p50:-nan},${p99:-nan},${err:-fail},$cpu" >> "$OUT/runs.csv"
  log "$workload ${c}x$d $mode run $r: ${rps:-0}/s p50 ${p50:-?} µs, ${cpu} µs CPU/call, errors ${err:-?}"
}

for point in $POINTS; do
  workload=${point%%:*}; cd_=${point#*:}; c=${cd_%x*}; d=${cd_#*x}
  for r in $(seq 1 "$REPEATS"); do
    # Alternate which mode goes first.
    if (( r % 2 )); then order="plain tls"; else order="tls plain"; fi
    for mode in $order; do run "$workload" "$c" "$d" "$mode" "$r"; done
  done
done

# Medians per point and mode, and TLS / plaintext.
python3 - "$OUT/runs.csv" "$REPEATS" "$DURATION" <<'EOF' | tee "$OUT/table.md"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
points = []
for r in rows:
    if r["point"] not in points: points.append(r["point"])
def med(point, mode, key):
    vals = [float(r[key]) for r in rows if r["point"] == point and r["mode"] == mode and r[key] not in ("nan", "")]
    return statistics.median(vals) if vals else float("nan")
print(f"TLS beside plaintext (scripts/bench-tls.sh, medians of {sys.argv[2]} runs of {sys.argv[3]} s, modes alternated)\n")
print("| point | plaintext /s | TLS /s | TLS ÷ plain | p50 µs plain / TLS | p99 µs plain / TLS | sessiond CPU µs/call plain / TLS |")
print("|---|---:|---:|---:|---:|---:|---:|")
for p in points:
    a, b = med(p, "plain", "rps"), med(p, "tls", "rps")
    print(f"| {p} | {a:,.0f} | {b:,.0f} | {b / a if a else float('nan'):.2f} | "
          f"{med(p, 'plain', 'p50_us'):.0f} / {med(p, 'tls', 'p50_us'):.0f} | "
          f"{med(p, 'plain', 'p99_us'):.0f} / {med(p, 'tls', 'p99_us'):.0f} | "
          f"{med(p, 'plain', 'srv_cpu_us_per_call'):.1f} / {med(p, 'tls', 'srv_cpu_us_per_call'):.1f} |")
errors = sum(int(r["errors"]) if r["errors"].isdigit() else 1 for r in rows)
print(f"\nclient errors over all runs: {errors}")
EOF
log "raw: $OUT"
