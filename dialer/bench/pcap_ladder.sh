#!/bin/sh
# Times `dialer pcap ladder` against `tshark -r F -Y sip` on a ~100 MB capture built from the
# corpus (see make_capture.py). Goal: the dialer's ladder in <= 3 s on the project machine.
#
# usage: dialer/bench/pcap_ladder.sh [MEGABYTES]   (env: CARGO_TARGET_DIR, CORPUS, WORKDIR)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
corpus=${CORPUS:-$root/../shared/corpus/pcaps}
work=${WORKDIR:-${TMPDIR:-/tmp}}
megabytes=${1:-100}
capture="$work/pcap_ladder_bench.pcap"
target=${CARGO_TARGET_DIR:-$root/target}

cargo build --release --quiet -p dialer --manifest-path "$root/Cargo.toml"
python3 "$here/make_capture.py" "$corpus" "$capture" "$megabytes"

# Wall-clock seconds of a command, its output discarded (best of three for ours: the first
# run also pays for reading the file into the page cache).
seconds() {
    python3 - "$@" <<'PY'
import subprocess, sys, time
start = time.monotonic()
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
print(f"{time.monotonic() - start:.2f}")
PY
}

best=""
for _ in 1 2 3; do
    s=$(seconds "$target/release/dialer" pcap ladder "$capture")
    if [ -z "$best" ] || [ "$(echo "$s < $best" | bc)" = 1 ]; then best=$s; fi
done
messages=$("$target/release/dialer" pcap ladder --json "$capture" 2>/dev/null \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["parsed_messages"], "SIP messages,", len(d["calls"]), "calls")')
echo "dialer pcap ladder: ${best} s ($messages)"
if command -v tshark >/dev/null 2>&1; then
    echo "tshark -r F -Y sip: $(seconds tshark -r "$capture" -Y sip) s"
else
    echo "tshark not installed: no comparison"
fi
rm -f "$capture"
