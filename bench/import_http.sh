#!/usr/bin/env bash
# 1 000 000 leads imported through the real `dialer run` (`dialer campaign import`, which
# streams the CSV to POST /campaigns/{name}/leads), beside the store's own import of the same
# count in the same run (store/examples/import_bench.rs: the baseline, no HTTP, no CSV text).
#
#   bench/import_http.sh [LEADS]          (default 1000000)
#
# Reported: wall time of the CLI import, the dialer's peak resident memory (VmHWM) over the
# import, rows per second, and the same for the store bench, with the ratio of the two times.
# Traffic stays on 127.0.0.1; every wait is bounded; the dialer is ended by PID.
# Build: release, CARGO_TARGET_DIR (default target/). KEEP=1 keeps the work directory.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LEADS=${1:-1000000}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
cargo build --release -q --manifest-path "$ROOT/Cargo.toml" -p dialer --bin dialer
cargo build --release -q --manifest-path "$ROOT/Cargo.toml" -p store --example import_bench
dialer=$TARGET/release/dialer
work=$(mktemp -d /tmp/import-http.XXXXXX)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    [ "${KEEP:-0}" = 1 ] && echo "work directory: $work" || rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sip=$(free_port) api=$(free_port)
api_url="http://127.0.0.1:$api"
cat > dialer.toml <<TOML
[sip]
listen = "127.0.0.1:$sip"

[[trunk]]
name = "carrier"
proxy = "127.0.0.1:9"
domain = "carrier.bench"
register = false
keepalive = "none"

[[agent]]
extension = "1000"
password = "bench-agent-secret-1000"

[[pool]]
name = "sales"
agents = ["1000"]

[store]
path = "dialer.db"

[api]
listen = "127.0.0.1:$api"
TOML
cat > bench.toml <<TOML
name = "bench"
pool = "sales"
trunk = "carrier"
time_zone = "UTC"
TOML
python3 - "$LEADS" > leads.csv <<'PY'
import sys
n = int(sys.argv[1])
out = sys.stdout
out.write("number,time_zone,name\n")
for i in range(n):
    out.write(f"+1555{i:07d},America/New_York,Lead {i}\n")
PY
echo "leads.csv: $LEADS rows, $(du -m leads.csv | cut -f1) MiB"

"$dialer" run --config dialer.toml >dialer-run.log 2>&1 &
pid=$!
for _ in $(seq 100); do
    "$dialer" campaign list --api "$api_url" >/dev/null 2>&1 && break
    sleep 0.1
done
"$dialer" campaign create bench.toml --api "$api_url" >/dev/null
before=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
start=$(date +%s.%N)
"$dialer" campaign import bench leads.csv --api "$api_url" 2>/dev/null | tail -1
end=$(date +%s.%N)
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
calc() { python3 -c "print($1)"; }
http_s=$(calc "round($end - $start, 2)")
echo "RESULT http_import leads=$LEADS seconds=$http_s rows_per_s=$(calc "round($LEADS / $http_s)") rss_before_mib=$((before / 1024)) peak_rss_mib=$((hwm / 1024))"

store_out=$("$TARGET/release/examples/import_bench" "$LEADS" "$work/store-bench.db")
store_s=$(echo "$store_out" | sed -n 's/^import: .* in \([0-9.]*\) s (.*/\1/p')
echo "$store_out" | grep "^machine\|^import\|VmHWM"
echo "RESULT store_import leads=$LEADS seconds=$store_s ratio_http_to_store=$(calc "round($http_s / $store_s, 2)")"
