#!/usr/bin/env bash
# Re-records the project's own captures in pcaps/ and writes the .txt summary beside each.
# Loopback only, every step bounded by `timeout`:
#   sipp-baresip-call.pcap  SIPp carrier + baresip agent against `dialer run` (dumpcap on lo,
#                           filtered to that run's ports), via the ignored test
#                           tests/tests/replay_record.rs
#   demo.pcap               `bash scripts/demo.sh` (the demo writes it itself), 2 s of talk
# tests/tests/replay_own.rs replays both against the B2BUA core; re-run it after recording.
#
# Needs: sipp (sip-tester), baresip, sox, tshark/dumpcap (capturing on lo needs root or the
# wireshark group), libopus-dev. Usage: scripts/record_pcaps.sh [--summaries-only]
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out="$repo/pcaps"
target=${CARGO_TARGET_DIR:-$repo/target}
dialer="$target/debug/dialer"

if [[ ${1:-} != --summaries-only ]]; then
    timeout 900 cargo build --manifest-path "$repo/Cargo.toml" -p dialer --bin dialer
    RECORD_PCAPS_DIR="$out" DIALER_BIN="$dialer" timeout 300 \
        cargo test --manifest-path "$repo/Cargo.toml" -p scenario-tests --test replay_record \
        -- --ignored --exact record_sipp_carrier_baresip_agent_call

    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    # demo.sh builds and runs target/release/dialer itself.
    (cd "$repo" && env -u CARGO_TARGET_DIR SKIP_APT=1 OUT_DIR="$tmp" TALK_SECONDS=2 \
        timeout 900 bash scripts/demo.sh)
    cp "$tmp/demo.pcap" "$out/demo.pcap"
fi

summary() {
    local name=$1 flow=$2 made=$3
    {
        echo "$name"
        echo
        echo "Call flow: $flow"
        echo
        echo "How it was made: $made"
        echo "Re-record with scripts/record_pcaps.sh; tests/tests/replay_own.rs replays it."
        echo
        echo "$ dialer pcap ladder $name"
        (cd "$out" && "$dialer" pcap ladder "$name")
        echo
        echo "$ dialer pcap rtp $name"
        (cd "$out" && "$dialer" pcap rtp "$name")
    } >"$out/${name%.pcap}.txt"
}

summary sipp-baresip-call.pcap \
    "dialer run REGISTERs to the SIPp carrier (401, then 200) and baresip agent 1000 REGISTERs to
the dialer (401, then 200). dialer call +15551234: INVITE to the carrier, 407, ACK, INVITE with
Proxy-Authorization, 100, 183, 200 whose Contact is sip:carrier@127.0.0.3 behind a Record-Route
to SIPp's own socket; the ACK goes to the Record-Route with the Contact as Request-URI. Then
INVITE to the agent (180, 200), ringback PCMA to the carrier while the agent rings, the carrier's
440 Hz to the agent and the agent's 1000 Hz to the carrier once bridged. The agent hangs up: BYE
from the agent, 200, BYE to the carrier through the route set, 200. The trunk's un-REGISTER
comes after SIPp's scenario ended: it is unanswered and retransmitted until dumpcap stops. The
dialer's first two RTP packets to the agent go to the address in baresip's SDP, then to the
address baresip sends from (symmetric RTP latching, RFC 4961)." \
    "tests/tests/replay_record.rs (cargo test -p scenario-tests --test replay_record -- --ignored)
with RECORD_PCAPS_DIR=pcaps: SIPp scenario tests/interop/sipp/carrier.xml, baresip, dialer run
with tests/interop/dialer/call.toml.tmpl (trunk password s3cret, agent password agentpw), and
dumpcap -i lo filtered to the run's SIP and RTP ports. About 1 s of ringback and 1 s of talk."

summary demo.pcap \
    "dialer demo: the simulated carrier (registrar and UAS) and the simulated agent talk to the
real dialer runtime over UDP on loopback. Trunk REGISTER (401, 200), agent REGISTER to the dialer
(401, 200), INVITE to the carrier (100, 180, 200, ACK), INVITE to the agent (100, 180, 200 after
2 s, ACK) with PCMA ringback meanwhile, bridged with PCMA<->PCMU transcoding for 2 s, BYE from the
carrier, 200, BYE to the agent, 200, trunk un-REGISTER." \
    "SKIP_APT=1 OUT_DIR=<tmp> TALK_SECONDS=2 bash scripts/demo.sh (the demo writes demo.pcap, every
datagram the peers exchanged with the dialer)."

ls -l "$out"
