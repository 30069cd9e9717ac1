#!/usr/bin/env bash
# Configures, builds and runs the whole suite under CTest: first everything built with
# ASan+UBSan (build-asan/), then the regular build (build/) whose CTest summary ends the
# output. Any failure in either run fails the script.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc)

build_and_test() {
  local dir=$1; shift
  cmake -S "$root" -B "$dir" "$@" >/dev/null || return 1
  cmake --build "$dir" -j"$jobs" || return 1
  ctest --test-dir "$dir" --output-on-failure -j"$jobs" --timeout 900
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
echo "== ASan+UBSan build (build-asan) =="
if ! build_and_test "$root/build-asan" -DILAGENT_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug; then
  echo "ASan+UBSan run failed" >&2
  exit 1
fi
echo "== regular build (build) =="
build_and_test "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
