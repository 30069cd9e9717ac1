#!/usr/bin/env bash
# Installs every Debian package the build, the tests and the benchmarks need.
# Idempotent: apt-get skips what is already installed.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
packages=(
  build-essential pkg-config cmake
  libck-dev librdkafka-dev libpaho-mqtt-dev libsqlite3-dev libcurl4-openssl-dev
  libmicrohttpd-dev libjansson-dev libcmocka-dev libssl-dev
  mosquitto mosquitto-clients kcat sqlite3 openssl
  clang libclang-rt-14-dev
  curl prometheus wrk hyperfine haproxy
)
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${packages[@]}"
