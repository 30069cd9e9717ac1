#!/usr/bin/env bash
# Builds everything with ThreadSanitizer (-DILAGENT_TSAN=ON) in ${TSAN_BUILD:-build-tsan} and
# runs the tests that drive the daemon's threads (the daemon integration tests, the HTTP
# source, the mailbox) with the suppressions of tests/tsan.supp:
#   scripts/tsan.sh                      the default selection
#   TSAN_TESTS=it_daemon_delivery scripts/tsan.sh   another ctest -R pattern
# The daemon runs as a child process of the tests, so every process writes its reports to
# its own file (log_path) instead of stderr; any report, or any failing test, fails the
# script. Not part of scripts/test.sh: a run takes a few minutes.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${TSAN_BUILD:-$root/build-tsan}
tests=${TSAN_TESTS:-it_daemon|test_http_source|test_mailbox}
jobs=$(nproc)

cmake -S "$root" -B "$build" -DILAGENT_TSAN=ON -DILAGENT_SANITIZE=OFF >/dev/null || exit 1
cmake --build "$build" -j"$jobs" || exit 1

reports=$(mktemp -d "${TMPDIR:-/tmp}/ilagent-tsan.XXXXXX") || exit 1
trap 'rm -rf "$reports"' EXIT
export TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1 suppressions=$root/tests/tsan.supp log_path=$reports/report"

ctest --test-dir "$build" -R "$tests" --output-on-failure -j"$jobs" --timeout 900
tests_rc=$?

shopt -s nullglob
files=("$reports"/report.*)
if [ ${#files[@]} -gt 0 ]; then
  for f in "${files[@]}"; do
    echo "== ThreadSanitizer report of process ${f##*.} =="
    cat "$f"
  done
  echo "== summary =="
  grep -h '^SUMMARY: ThreadSanitizer' "${files[@]}" | sort | uniq -c | sort -rn
  if grep -q 'unexpected memory mapping' "${files[@]}"; then
    echo "hint: the kernel's mmap randomisation is too high for ThreadSanitizer;" \
      "run under 'setarch $(uname -m) -R'" >&2
  fi
  echo "tsan.sh: ThreadSanitizer reported problems in ${#files[@]} process(es)" >&2
  exit 1
fi
if [ "$tests_rc" -ne 0 ]; then
  echo "tsan.sh: no ThreadSanitizer report, but tests failed (see above)" >&2
  exit 1
fi
echo "tsan.sh: no ThreadSanitizer report"
