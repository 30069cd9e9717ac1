#!/usr/bin/env bash
# Builds ilagent if needed and runs it with the given arguments:
#   scripts/run.sh daemon -p 8977
#   scripts/run.sh demo        (local ilert stand-in + daemon + a few events)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build"
if [ ! -x "$build/ilagent" ] || [ -n "$(find "$root/src" "$root/CMakeLists.txt" -newer "$build/ilagent" -print -quit)" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j"$(nproc)" --target ilagent ilagent-sink >/dev/null
fi
if [ "${1:-}" = "demo" ] && [ -x "$root/scripts/demo.sh" ]; then
  shift
  exec "$root/scripts/demo.sh" "$@"
fi
exec "$build/ilagent" "$@"
