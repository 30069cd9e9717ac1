#!/usr/bin/env bash
# A two-minute tour on this machine, without an ilert account: starts ilagent-sink (a local
# stand-in for the ilert API that records what it receives) and an ilagent daemon with its
# HTTP intake, sends a few events with curl, waits until they were delivered, and prints
# what "ilert" received. Everything runs on 127.0.0.1 and is removed afterwards.
#   scripts/run.sh demo      (or scripts/demo.sh; ILAGENT_BUILD_DIR picks the build dir)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="${ILAGENT_BUILD_DIR:-$root/build}"
ilagent="$build/ilagent"
sink="$build/ilagent-sink"
# Local traffic only: a proxy from the environment must not intercept it.
export no_proxy="127.0.0.1,localhost" NO_PROXY="127.0.0.1,localhost"
unset ILAGENT_HTTP_TOKEN ILERT_API_URL

if [ ! -x "$ilagent" ] || [ ! -x "$sink" ]; then
  echo "== building ilagent and ilagent-sink in $build"
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j"$(nproc)" --target ilagent ilagent-sink >/dev/null
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ilagent-demo.XXXXXX")
sink_pid=""
daemon_pid=""

stop() { # pid: SIGTERM, then wait up to 15 s, then SIGKILL
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  stop "$daemon_pid"
  stop "$sink_pid"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "demo: $*" >&2
  for f in "$work"/*.log; do
    [ -s "$f" ] && { echo "--- $(basename "$f")" >&2; tail -n 20 "$f" >&2; }
  done
  exit 1
}

free_port() { # a port no socket uses right now, below the kernel's ephemeral range
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

http_code() { # method url [curl args...]
  local method=$1 url=$2
  shift 2
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X "$method" "$@" "$url" 2>/dev/null || true
}

sink_events() {
  curl -s --max-time 5 "http://127.0.0.1:$sink_port/_sink/stats" 2>/dev/null |
    sed -n 's/.*"events":\([0-9]*\).*/\1/p'
}

# --- the ilert stand-in -------------------------------------------------------------------
"$sink" --port 0 --quiet --record "$work/received.jsonl" >"$work/sink.log" 2>&1 &
sink_pid=$!
for i in $(seq 100); do
  grep -q '^listening on' "$work/sink.log" 2>/dev/null && break
  kill -0 "$sink_pid" 2>/dev/null || fail "ilagent-sink did not start"
  sleep 0.05
done
sink_port=$(sed -n 's/^listening on http:\/\/[^ ]*:\([0-9]*\)$/\1/p' "$work/sink.log")
[ -n "$sink_port" ] || fail "ilagent-sink did not report its port"
echo "== ilert stand-in (ilagent-sink) listening on http://127.0.0.1:$sink_port"

# --- the daemon ---------------------------------------------------------------------------
port=$(free_port) || fail "no free port found"
"$ilagent" daemon -p "$port" --bind 127.0.0.1 --api_url "http://127.0.0.1:$sink_port" \
  -f "$work/demo.db3" >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for i in $(seq 100); do
  [ "$(http_code GET "http://127.0.0.1:$port/ready")" = 204 ] && break
  kill -0 "$daemon_pid" 2>/dev/null || fail "ilagent daemon exited during startup"
  sleep 0.1
done
[ "$(http_code GET "http://127.0.0.1:$port/ready")" = 204 ] || fail "ilagent daemon not ready after 10 s"
echo "== ilagent daemon listening on http://127.0.0.1:$port, queue file $work/demo.db3"
echo

send() { # path body
  local path=$1 body=$2 answer
  echo "POST $path"
  echo "  $body"
  answer=$(curl -sS --max-time 10 -H 'Content-Type: application/json' -d "$body" \
    -w '\n%{http_code}' "http://127.0.0.1:$port$path") || fail "request to $path failed"
  echo "  -> HTTP $(tail -n 1 <<<"$answer") $(head -n -1 <<<"$answer")"
}

echo "== sending events to ilagent"
send /api/events '{"integrationKey":"demo-integration-key","eventType":"ALERT","summary":"Disk 95% full on db-1","alertKey":"disk-db-1","priority":"HIGH","details":"/var/lib/postgresql"}'
send /api/events/batch '[{"integrationKey":"demo-integration-key","eventType":"ACCEPT","summary":"Looking at it","alertKey":"disk-db-1"},{"integrationKey":"demo-integration-key","eventType":"ALERT","summary":"Backup job failed","alertKey":"backup-nightly","links":[{"href":"https://backup.example/jobs/42","text":"job log"}]},{"integrationKey":"demo-integration-key","eventType":"RESOLVE","summary":"Disk cleaned up","alertKey":"disk-db-1"}]'
send /api/events '{"integrationKey":"demo-integration-key","eventType":"ALERT","summary":"Certificate expires in 7 days","customDetails":{"host":"www","days":7}}'
expected=5
echo

echo "== waiting until the stand-in received all $expected events"
got=0
for i in $(seq 300); do
  got=$(sink_events)
  [ "${got:-0}" -ge "$expected" ] && break
  kill -0 "$daemon_pid" 2>/dev/null || fail "ilagent daemon exited"
  sleep 0.1
done
[ "${got:-0}" -ge "$expected" ] || fail "only ${got:-0} of $expected events arrived within 30 s"
echo "   $got events delivered"
echo

echo "== what the ilert API stand-in received (in arrival order)"
# Each record line is {"method":…,"path":…,"body":"<JSON text as a string>"}.
n=0
while IFS= read -r line; do
  n=$((n + 1))
  method=$(sed -n 's/^{"method":"\([^"]*\)".*/\1/p' <<<"$line")
  path=$(sed -n 's/.*"path":"\([^"]*\)".*/\1/p' <<<"$line")
  body=$(sed -n 's/.*"body":"\(.*\)"}$/\1/p' <<<"$line" | sed 's/\\"/"/g; s/\\\//\//g; s/\\\\/\\/g')
  echo "$n. $method $path"
  echo "   $body"
done <"$work/received.jsonl"
echo

stop "$daemon_pid"
daemon_pid=""
echo "== queue after delivery"
"$ilagent" queue stats -f "$work/demo.db3" 2>/dev/null || true
stop "$sink_pid"
sink_pid=""
echo
echo "Events for one alertKey (disk-db-1: ALERT, ACCEPT, RESOLVE) arrive in the order they were"
echo "accepted. Point --api_url at https://api.ilert.com (the default) and use a real"
echo "integration key to send them to ilert."
