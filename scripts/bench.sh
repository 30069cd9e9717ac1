#!/usr/bin/env bash
# The performance scenarios of the README: builds Release, runs every scenario several times
# on loopback and prints medians, each next to a baseline measured in the same run (these
# machines are noisy; ratios travel better than absolute numbers). Ends with a Markdown table.
#
#   scripts/bench.sh [--runs N] [--duration S] [--only P1,P2,P5,P6,micro] [--full]
#                    [--p2-rows N] [--build DIR]
#
#   P1  ingest:   ilagent-load, max rate, 64 connections, distinct ~400-byte events, against
#                 `ilagent daemon -p --db_sync full` (delivering to ilagent-sink) vs against
#                 bench-bare-httpd (libmicrohttpd that only reads the body)    goal >= 0.55
#   P2  delivery: a daemon without intake drains N queued rows into ilagent-sink vs
#                 bench-bare-client posting N bodies into the same sink         goal >= 0.6
#   P5  latency:  p99 at a fixed 10,000 req/s (open loop, from intended send)  goal <= 5 ms
#   P6  memory:   RSS of a daemon whose ilert is down while its queue fills to 100k and
#                 500k rows (and 1M with --full)                         goal <= 64 MiB, flat
#   micro:        bench-micro (mailbox hop, dedup, SQLite commit batches, normalize)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-release"
runs=3
duration=10
only="P1,P2,P5,P6,micro"
full=0
p2_rows=200000

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=${2:?}; shift 2 ;;
    --duration) duration=${2:?}; shift 2 ;;
    --only) only=${2:?}; shift 2 ;;
    --full) full=1; shift ;;
    --p2-rows) p2_rows=${2:?}; shift 2 ;;
    --build) build=${2:?}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
positive() { case "$2" in ''|*[!0-9]*|0) echo "bench.sh: $1 must be a positive integer" >&2; exit 2 ;; esac; }
positive --runs "$runs"
positive --duration "$duration"
positive --p2-rows "$p2_rows"
wants() { [[ ",$only," == *",$1,"* ]]; }

export no_proxy="127.0.0.1,localhost" NO_PROXY="127.0.0.1,localhost"
unset ILAGENT_HTTP_TOKEN ILERT_API_URL ILERT_BEAT_URL

echo "== building Release in $build"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null || exit 1
cmake --build "$build" -j"$(nproc)" --target ilagent ilagent-sink ilagent-load \
  bench-bare-httpd bench-bare-client bench-fill-queue bench-micro >"$build/bench-build.log" 2>&1 ||
  { tail -n 30 "$build/bench-build.log" >&2; exit 1; }
ilagent="$build/ilagent"
sink_bin="$build/ilagent-sink"
load="$build/bench/ilagent-load"
bare_httpd="$build/bench/bench-bare-httpd"
bare_client="$build/bench/bench-bare-client"
fill_queue="$build/bench/bench-fill-queue"
micro="$build/bench/bench-micro"

work=$(mktemp -d "${TMPDIR:-/tmp}/ilagent-bench.XXXXXX")
started=()
cleanup() {
  local pid
  for pid in "${started[@]}"; do stop "$pid"; done
  started=()
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- process helpers ----------------------------------------------------------------------

stop() { # pid: SIGTERM, up to 30 s for a clean exit, then SIGKILL; forgets the pid
  local pid=$1 i keep=() p
  [ -n "$pid" ] || return 0
  for p in "${started[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  started=("${keep[@]}")
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

bg_pid=""
start_bg() { # name cmd... : output to $work/name.log, pid in $bg_pid
  local name=$1
  shift
  "$@" >"$work/$name.log" 2>&1 &
  bg_pid=$!
  started+=("$bg_pid")
}

listening_port() { # log pid: the port a server printed in "listening on http://host:port"
  local log=$1 pid=$2 i
  for i in $(seq 200); do
    if grep -q '^listening on' "$log" 2>/dev/null; then
      sed -n 's/^listening on http:\/\/.*:\([0-9]*\)$/\1/p' "$log" | head -n 1
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

free_port() { # a port no socket uses right now, below the kernel's ephemeral range (a busy
  # client port there cannot be bound by a server, even though nothing listens on it)
  local p i
  for i in $(seq 100); do
    p=$((10240 + RANDOM % 22000))
    if command -v ss >/dev/null 2>&1; then
      [ -z "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ] || continue
    fi
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

wait_ready() { # port pid: until GET /ready answers 204 (30 s)
  local port=$1 pid=$2 i code
  for i in $(seq 300); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/ready" 2>/dev/null)
    [ "$code" = 204 ] && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

sink_events() { # port: events counted by an ilagent-sink
  curl -s --max-time 5 "http://127.0.0.1:$1/_sink/stats" | sed -n 's/.*"events":\([0-9]*\).*/\1/p'
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }

json_num() { # file key: the first number stored under "key"
  sed -n "s/.*\"$2\":\\([0-9.eE+-]*\\).*/\\1/p" "$1" 2>/dev/null | head -n 1
}

start_sink() { # -> $sink_pid $sink_port
  sink_pid=""
  start_bg "sink-$1" "$sink_bin" --port 0 --quiet
  sink_pid=$bg_pid
  sink_port=$(listening_port "$work/sink-$1.log" "$sink_pid") || return 1
}

start_daemon() { # name extra-args... -> $daemon_pid $daemon_port (HTTP intake on)
  local name=$1
  shift
  daemon_pid=""
  daemon_port=$(free_port) || return 1
  start_bg "$name" "$ilagent" daemon -p "$daemon_port" --bind 127.0.0.1 -f "$work/$name.db3" "$@"
  daemon_pid=$bg_pid
  wait_ready "$daemon_port" "$daemon_pid" || {
    echo "   daemon did not become ready; last lines of its log:" >&2
    tail -n 5 "$work/$name.log" | sed 's/^/     /' >&2
    return 1
  }
}

remove_db() { rm -f "$work/$1.db3" "$work/$1.db3-wal" "$work/$1.db3-shm" "$work/$1.db3.lock"; }

# ---- statistics ---------------------------------------------------------------------------

median() { # numbers...
  [ $# -gt 0 ] || { echo ""; return; }
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b > 0) printf "%.3f", a / b; else print "" }'; }
fmt_int() { awk -v v="$1" 'BEGIN { if (v == "") print "n/a"; else { s = sprintf("%.0f", v); r = ""; while (length(s) > 3) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) } print s r } }'; }
fmt_2() { awk -v v="$1" 'BEGIN { if (v == "") print "n/a"; else printf "%.2f", v }'; }
meets() { # value op goal -> " (met)" / " (missed)" / ""
  awk -v v="$1" -v op="$2" -v g="$3" 'BEGIN { if (v == "") exit; ok = (op == ">=") ? (v >= g) : (v <= g); print ok ? " (met)" : " (missed)" }'
}

rows=() # markdown rows
add_row() { rows+=("| $1 | $2 | $3 | $4 | $5 |"); }

# ---- P1 ingest throughput -----------------------------------------------------------------

# Ingest is measured twice: with ilert unreachable (the daemon only takes events in; the
# forwarders back off) and with every event delivered to ilagent-sink at the same time, which
# shares the two cores between intake and delivery.
api_for_mode() { # mode -> the daemon's --api_url
  if [ "$1" = ingest ]; then echo "http://127.0.0.1:9"; else echo "http://127.0.0.1:$sink_port"; fi
}

p1_run() { # i mode -> appends to p1_values / p1_bases / p1_ratios
  local i=$1 mode=$2 v b
  remove_db "p1-daemon-$i"
  start_sink "p1-$i" || { echo "   ilagent-sink did not start" >&2; return 1; }
  if start_daemon "p1-daemon-$i" --db_sync full --api_url "$(api_for_mode "$mode")"; then
    "$load" --url "http://127.0.0.1:$daemon_port" --connections 64 --distinct-keys \
      --duration "$duration" --json >"$work/p1-load-$i.json" 2>"$work/p1-load-$i.err"
  fi
  stop "$daemon_pid"
  stop "$sink_pid"
  remove_db "p1-daemon-$i"
  v=$(json_num "$work/p1-load-$i.json" requests_per_s)

  start_bg "p1-bare-$i" "$bare_httpd" --port 0
  local bare_pid=$bg_pid bare_port
  bare_port=$(listening_port "$work/p1-bare-$i.log" "$bare_pid") &&
    "$load" --url "http://127.0.0.1:$bare_port" --connections 64 --distinct-keys \
      --duration "$duration" --json >"$work/p1-bare-$i.json" 2>/dev/null
  stop "$bare_pid"
  b=$(json_num "$work/p1-bare-$i.json" requests_per_s)
  local other
  other=$(json_num "$work/p1-load-$i.json" other)
  echo "   run $i: ilagent $(fmt_int "$v") req/s (non-2xx ${other:-?}), bare $(fmt_int "$b") req/s, ratio $(ratio "$v" "$b")"
  [ -n "$v" ] && [ -n "$b" ] || return 1
  p1_values+=("$v"); p1_bases+=("$b"); p1_ratios+=("$(ratio "$v" "$b")")
  [ "${other:-0}" = 0 ] || p1_non2xx=1
}

scenario_p1() {
  local mode
  for mode in ingest delivering; do scenario_p1_mode "$mode"; done
}

scenario_p1_mode() { # mode
  local mode=$1 label
  if [ "$mode" = ingest ]; then label="ilert unreachable"; else label="delivering to ilagent-sink meanwhile"; fi
  echo "== P1 ingest ($label): ilagent-load max rate, 64 connections, ${duration}s, distinct ~400-byte events"
  p1_values=(); p1_bases=(); p1_ratios=(); p1_non2xx=0
  local i
  for i in $(seq "$runs"); do p1_run "$i" "$mode" || echo "   run $i failed"; done
  local v b r note=""
  v=$(median "${p1_values[@]}"); b=$(median "${p1_bases[@]}"); r=$(median "${p1_ratios[@]}")
  [ "$p1_non2xx" = 0 ] || note=" (some non-2xx)"
  add_row "P1 ingest: \`POST /api/events\`, 64 connections, distinct 400-B events, \`--db_sync full\`, $label" \
    "$(fmt_int "$v") req/s$note" "$(fmt_int "$b") req/s (bare libmicrohttpd)" "$(fmt_2 "$r")" \
    "≥ 0.55$(meets "$r" ">=" 0.55)"
}

# ---- P2 delivery throughput ---------------------------------------------------------------

p2_run() { # i
  local i=$1 name="p2-daemon-$i" before after t0 t1 v b rc
  remove_db "$name"
  cp "$work/p2-template.db3" "$work/$name.db3" || return 1
  [ -f "$work/p2-template.db3-wal" ] && cp "$work/p2-template.db3-wal" "$work/$name.db3-wal"
  start_sink "p2-$i" || return 1
  before=$(sink_events "$sink_port")
  t0=$(date +%s.%N)
  timeout 900 "$ilagent" daemon -f "$work/$name.db3" --api_url "http://127.0.0.1:$sink_port" \
    >"$work/$name.log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  after=$(sink_events "$sink_port")
  v=$(awk -v n="$p2_rows" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) }')
  local delivered=$((after - before))
  "$bare_client" --url "http://127.0.0.1:$sink_port/api/events" --bodies "$p2_rows" --parallel 8 \
    --json >"$work/p2-bare-$i.json" 2>/dev/null
  b=$(json_num "$work/p2-bare-$i.json" rows_per_s)
  stop "$sink_pid"
  remove_db "$name"
  echo "   run $i: ilagent $(fmt_int "$v") rows/s (exit $rc, $delivered delivered), bare $(fmt_int "$b") rows/s, ratio $(ratio "$v" "$b")"
  if [ "$rc" != 0 ] || [ "$delivered" -lt "$p2_rows" ]; then
    echo "   run $i: the daemon did not deliver every row; last lines of its log:" >&2
    tail -n 5 "$work/$name.log" | sed 's/^/     /' >&2
    return 1
  fi
  [ -n "$b" ] || return 1
  p2_values+=("$v"); p2_bases+=("$b"); p2_ratios+=("$(ratio "$v" "$b")")
}

scenario_p2() {
  echo "== P2 delivery: drain $(fmt_int "$p2_rows") queued rows into ilagent-sink (8 forwarders)"
  p2_values=(); p2_bases=(); p2_ratios=()
  "$fill_queue" "$work/p2-template.db3" "$p2_rows" | sed 's/^/   /' || { echo "   fill failed"; return; }
  rm -f "$work/p2-template.db3.lock"
  local i
  for i in $(seq "$runs"); do p2_run "$i" || echo "   run $i failed"; done
  local v b r
  v=$(median "${p2_values[@]}"); b=$(median "${p2_bases[@]}"); r=$(median "${p2_ratios[@]}")
  add_row "P2 delivery: daemon without intake drains $(fmt_int "$p2_rows") queued rows into ilagent-sink" \
    "$(fmt_int "$v") rows/s" "$(fmt_int "$b") rows/s (bare libcurl multi, 8 parallel)" "$(fmt_2 "$r")" \
    "≥ 0.6$(meets "$r" ">=" 0.6)"
  rm -f "$work"/p2-template.db3*
}

# ---- P5 latency at a fixed rate -----------------------------------------------------------

p5_run() { # i mode
  local i=$1 mode=$2 v b
  remove_db "p5-daemon-$i"
  start_sink "p5-$i" || return 1
  if start_daemon "p5-daemon-$i" --db_sync full --api_url "$(api_for_mode "$mode")"; then
    "$load" --url "http://127.0.0.1:$daemon_port" --rate 10000 --connections 64 --distinct-keys \
      --duration "$duration" --json >"$work/p5-load-$i.json" 2>/dev/null
  fi
  stop "$daemon_pid"
  stop "$sink_pid"
  remove_db "p5-daemon-$i"
  v=$(json_num "$work/p5-load-$i.json" p99)

  start_bg "p5-bare-$i" "$bare_httpd" --port 0
  local bare_pid=$bg_pid bare_port
  bare_port=$(listening_port "$work/p5-bare-$i.log" "$bare_pid") &&
    "$load" --url "http://127.0.0.1:$bare_port" --rate 10000 --connections 64 --distinct-keys \
      --duration "$duration" --json >"$work/p5-bare-$i.json" 2>/dev/null
  stop "$bare_pid"
  b=$(json_num "$work/p5-bare-$i.json" p99)
  echo "   run $i: ilagent p99 $(fmt_2 "$v") ms (p50 $(fmt_2 "$(json_num "$work/p5-load-$i.json" p50)"), max $(fmt_2 "$(json_num "$work/p5-load-$i.json" max)"), non-2xx $(json_num "$work/p5-load-$i.json" other), answered $(fmt_int "$(json_num "$work/p5-load-$i.json" requests_per_s)") req/s), bare p99 $(fmt_2 "$b") ms"
  [ -n "$v" ] && [ -n "$b" ] || return 1
  p5_values+=("$v"); p5_bases+=("$b")
}

scenario_p5() {
  local mode
  for mode in ingest delivering; do scenario_p5_mode "$mode"; done
}

scenario_p5_mode() { # mode
  local mode=$1 label
  if [ "$mode" = ingest ]; then label="ilert unreachable"; else label="delivering to ilagent-sink meanwhile"; fi
  echo "== P5 latency ($label): 10,000 req/s for ${duration}s, measured from the intended send time"
  p5_values=(); p5_bases=()
  local i
  for i in $(seq "$runs"); do p5_run "$i" "$mode" || echo "   run $i failed"; done
  local v b
  v=$(median "${p5_values[@]}"); b=$(median "${p5_bases[@]}")
  add_row "P5 latency: p99 at 10,000 req/s (open loop, from intended send time), \`--db_sync full\`, $label" \
    "$(fmt_2 "$v") ms" "$(fmt_2 "$b") ms (bare libmicrohttpd)" "—" "≤ 5 ms$(meets "$v" "<=" 5)"
}

# ---- P6 memory under a growing backlog ----------------------------------------------------

p6_steps=(100000 500000)

p6_run() { # i
  local i=$1 name="p6-daemon-$i" dead_port filled=0 target need rss
  remove_db "$name"
  dead_port=$(free_port) || return 1 # nothing listens there: ilert is down
  start_daemon "$name" --db_sync normal --max_queue 2000000 \
    --api_url "http://127.0.0.1:$dead_port" || { stop "$daemon_pid"; return 1; }
  sleep 1
  rss=$(rss_kib "$daemon_pid")
  p6_rss_empty+=("$rss")
  local line="   run $i: empty $((rss / 1024)) MiB"
  local k=0
  for target in "${p6_steps[@]}"; do
    need=$(((target - filled) / 1000))
    "$load" --url "http://127.0.0.1:$daemon_port" --batch 1000 --connections 4 --distinct-keys \
      --requests "$need" --timeout 120 --json >"$work/p6-load-$i-$target.json" 2>/dev/null
    local ok
    ok=$(json_num "$work/p6-load-$i-$target.json" events_ok)
    filled=$((filled + ${ok:-0}))
    sleep 2 # a rescan or two with the backlog in place
    rss=$(rss_kib "$daemon_pid")
    [ -n "$rss" ] || { line="$line, daemon gone at $target"; break; }
    eval "p6_rss_$k+=(\"\$rss\")"
    line="$line, $(fmt_int "$filled") rows $((rss / 1024)) MiB"
    k=$((k + 1))
  done
  echo "$line"
  stop "$daemon_pid"
  remove_db "$name"
}

scenario_p6() {
  [ "$full" = 1 ] && p6_steps=(100000 500000 1000000)
  echo "== P6 memory: ilert down, queue filled over HTTP in batches of 1000 to ${p6_steps[*]} rows"
  p6_rss_empty=()
  local k
  for k in "${!p6_steps[@]}"; do eval "p6_rss_$k=()"; done
  local i
  for i in $(seq "$runs"); do p6_run "$i" || echo "   run $i failed"; done
  local base v
  base=$(median "${p6_rss_empty[@]}")
  for k in "${!p6_steps[@]}"; do
    eval "v=\$(median \"\${p6_rss_$k[@]}\")"
    local mib="" base_mib=""
    [ -n "$v" ] && mib=$(awk -v v="$v" 'BEGIN { printf "%.1f", v / 1024 }')
    [ -n "$base" ] && base_mib=$(awk -v v="$base" 'BEGIN { printf "%.1f", v / 1024 }')
    add_row "P6 memory: daemon RSS with $(fmt_int "${p6_steps[$k]}") rows queued, ilert down" \
      "${mib:-n/a} MiB" "${base_mib:-n/a} MiB (empty queue)" "—" "≤ 64 MiB, flat$(meets "$mib" "<=" 64)"
  done
}

# ---- micro --------------------------------------------------------------------------------

scenario_micro() {
  echo "== micro benchmarks (median of 5 runs each)"
  "$micro" --tsv >"$work/micro.tsv" 2>"$work/micro.err" || echo "   bench-micro reported a failure"
  local name value unit
  while IFS=$'\t' read -r name value unit; do
    echo "   $name: $(fmt_int "$value") $unit"
    add_row "micro: $name" "$(fmt_int "$value") $unit" "—" "—" "—"
  done <"$work/micro.tsv"
}

# ---- main ---------------------------------------------------------------------------------

echo "== machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== $("$ilagent" --version 2>/dev/null), runs per scenario: $runs, work dir $work"
wants P1 && scenario_p1
wants P2 && scenario_p2
wants P5 && scenario_p5
wants P6 && scenario_p6
wants micro && scenario_micro

echo
echo "Median of $runs run(s) on $(nproc) CPUs ($(date -u +%Y-%m-%d)); baselines measured in the same run."
echo
echo "| scenario | value | baseline | ratio | goal |"
echo "|---|---|---|---|---|"
for row in "${rows[@]}"; do echo "$row"; done
