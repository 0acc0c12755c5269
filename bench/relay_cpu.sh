#!/usr/bin/env bash
# CPU per packet operation (one receive or one send) of the dialer's media task against a bare
# relay that only moves bytes with the same batched system calls (recvmmsg/sendmmsg, one task
# per call, same readiness handling), under the same loopback load: STREAMS calls, each with
# 20 ms PCMU packets both ways, for SECONDS. Also the resident memory per call.
#
#   bench/relay_cpu.sh [STREAMS=200] [SECONDS=15] [THREADS=1]
#
# The relay runs pinned to CPU 0 and the load generator to CPU 1 when taskset exists.
# Figures: user + system time of the relay process from "ready" to the end of the load,
# divided by the datagrams it received plus those it sent.
set -euo pipefail
STREAMS=${1:-200}
SECONDS_=${2:-15}
THREADS=${3:-1}
HERE=$(cd "$(dirname "$0")" && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HERE/relay-bench/target}
cargo build --quiet --release --manifest-path "$HERE/relay-bench/Cargo.toml"
BIN=$CARGO_TARGET_DIR/release/relay-bench
RELAY_BASE=${RELAY_BASE:-31000}
PEER_BASE=${PEER_BASE:-41000}
pin() { if command -v taskset >/dev/null; then taskset -c "$1" "${@:2}"; else "${@:2}"; fi; }

run() {
  local mode=$1 dir
  dir=$(mktemp -d)
  mkfifo "$dir/in"
  pin 0 "$BIN" serve "$mode" "$STREAMS" "$RELAY_BASE" "$PEER_BASE" "$THREADS" <"$dir/in" >"$dir/out" &
  local pid=$!
  exec 9>"$dir/in"
  for _ in $(seq 100); do grep -q '^ready' "$dir/out" 2>/dev/null && break; sleep 0.1; done
  grep -q '^ready' "$dir/out" || { echo "$mode relay did not start" >&2; kill "$pid"; exit 1; }
  local load
  load=$(pin 1 "$BIN" load "$STREAMS" "$RELAY_BASE" "$PEER_BASE" "$SECONDS_")
  echo stop >&9
  exec 9>&-
  wait "$pid"
  local sent received cpu_us per_call
  sent=$(sed -n 's/.*sent=\([0-9]*\).*/\1/p' <<<"$load")
  received=$(sed -n 's/.*received=\([0-9]*\).*/\1/p' <<<"$load")
  cpu_us=$(sed -n 's/.*cpu_us=\([0-9]*\).*/\1/p' "$dir/out")
  per_call=$(sed -n 's/.*per_call_bytes=\([0-9]*\).*/\1/p' "$dir/out")
  local ops=$((sent + received))
  local per_op
  per_op=$(awk -v c="$cpu_us" -v o="$ops" 'BEGIN { printf "%.3f", c / o }')
  printf '%-6s streams=%d seconds=%d sent=%d received=%d lost=%d cpu_ms=%d us_per_op=%s rss_per_call=%s B\n' \
    "$mode" "$STREAMS" "$SECONDS_" "$sent" "$received" $((sent - received)) $((cpu_us / 1000)) "$per_op" "$per_call"
  echo "$per_op" >"$dir/per_op"
  eval "PER_OP_$mode=$per_op"
  rm -rf "$dir"
}

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
run bare
run media
awk -v b="$PER_OP_bare" -v m="$PER_OP_media" 'BEGIN { printf "ratio media/bare = %.3f (goal <= 1.2)\n", m / b }'
