#!/usr/bin/env bash
# Seeds the fuzz corpora, fuzz/corpus/<target>/, from the shared real-world corpus:
#   - RFC 4475 torture messages (rfc4475/*.dat), accepted and rejected alike;
#   - SIP, SDP, RTP and RTCP payloads that tshark finds in the captures (pcaps/*), including
#     SIP reassembled from TCP and unmasked from WebSocket, and RTP found heuristically;
#   - the capture files themselves (pcap, pcapng, NetMon), whole, for the `capture` target.
# The seeds are derived data: fuzz/corpus is gitignored and rebuilt by every run (same names,
# so a rerun overwrites rather than piles up). Inputs libFuzzer found stay beside them.
#
# Usage: fuzz/seed.sh [CORPUS_DIR]   (default: ../shared/corpus beside the repository)
# Needs tshark and perl.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
corpus=${1:-$here/../../shared/corpus}
out=$here/corpus

if [[ ! -d $corpus/rfc4475 || ! -d $corpus/pcaps ]]; then
    echo "seed.sh: no corpus at $corpus (expected rfc4475/ and pcaps/)" >&2
    exit 1
fi
command -v tshark >/dev/null || { echo "seed.sh: tshark is needed (apt-get install tshark)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One line per payload: "<source> <proto> <hex>", in capture order. tshark's JSON with -x gives
# each layer's bytes as `<proto>_raw`, taken from the data source the layer was dissected from
# (the reassembled TCP stream, the unmasked WebSocket payload), so no offsets are guessed here.
for pcap in "$corpus"/pcaps/*; do
    case $pcap in *.pcap | *.pcapng | *.cap) ;; *) continue ;; esac
    name=$(basename "$pcap")
    name=${name%.*}
    tshark -r "$pcap" -o rtp.heuristic_rtp:TRUE -Y 'sip || rtp || rtcp' -T json -x 2>/dev/null |
        awk -v src="$name" '/"(sip|sdp|rtp|rtcp)_raw": \[/ {
            proto = $1; gsub(/[":]/, "", proto); sub(/_raw$/, "", proto)
            getline hex; gsub(/[ ",]/, "", hex)
            print src, proto, hex
        }' >>"$work/payloads.txt" || true
done

perl "$here/seed.pl" "$out" "$corpus/rfc4475" <"$work/payloads.txt"

# The capture reader's seeds are the files as they are.
mkdir -p "$out/capture"
for pcap in "$corpus"/pcaps/*; do
    case $pcap in *.pcap | *.pcapng | *.cap) ;; *) continue ;; esac
    cp "$pcap" "$out/capture/seed-$(basename "$pcap")"
done

for dir in "$out"/*/; do
    printf 'seed.sh: %-18s %4d seeds\n' "$(basename "$dir")" "$(find "$dir" -type f -name 'seed-*' | wc -l)"
done
