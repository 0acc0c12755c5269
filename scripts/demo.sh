#!/usr/bin/env bash
# The demo: a whole campaign on loopback with no outside trunk. The real `dialer run` dials
# the 20 leads of scripts/demo/leads.csv through a simulated carrier (SIPp playing
# tests/interop/sipp/carrier_campaign.xml: by the number's last digit it answers and plays
# 440 Hz, is busy (1), never answers (2) or fails (3)) and hands every answered customer to
# one of three simulated agents (SIPp answering behind three static contacts). It shows the
# campaign's live progress bar, then exports every lead with its attempts and says where the
# recordings, the CDRs and the store are.
#
# Environment: OUT_DIR (default ./demo-campaign), SKIP_APT=1 to leave Debian packages alone,
# DEMO_PORT_BASE (default 25060: SIP on it, the API on +1, the carrier on +2, the agents on
# +3, RTP from +100).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT_DIR:-$(pwd)/demo-campaign}
base=${DEMO_PORT_BASE:-25060}

# libopus-dev and pkg-config: the media crate links the system libopus; sip-tester: SIPp, the
# simulated carrier and agents; sox: their audio.
packages=(libopus-dev pkg-config sip-tester sox)
if [[ ${SKIP_APT:-0} != 1 ]] && command -v dpkg-query >/dev/null; then
    missing=()
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if ((${#missing[@]} > 0)); then
        if ((EUID == 0)); then
            apt-get update
            DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
        else
            echo "demo.sh: missing Debian packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})" >&2
            exit 1
        fi
    fi
fi

cargo build --release --manifest-path "$repo/Cargo.toml" -p dialer --bin dialer
dialer="$repo/target/release/dialer"

rm -rf "$out"
mkdir -p "$out/recordings"
cd "$out"
sip=$base api=$((base + 1)) carrier=$((base + 2)) agents=$((base + 3))
rtp_first=$((base + 100)) rtp_last=$((base + 199))
api_url="http://127.0.0.1:$api"

sox -q -n -r 8000 -e a-law -t al carrier.al synth 60 sine 440
cat > dialer.toml <<TOML
# Written by scripts/demo.sh. Keys: trunk-profiles/README.md.
[sip]
listen = "127.0.0.1:$sip"

[[trunk]]
name = "carrier"
proxy = "127.0.0.1:$carrier"
domain = "carrier.demo"
register = false
codecs = ["PCMA"]
caller_id = "+15550100"
keepalive = "none"

[[agent]]
extension = "1000"
password = "demo-agent-secret-1000"
contact = "sip:1000@127.0.0.1:$agents"
codecs = ["PCMA"]

[[agent]]
extension = "1001"
password = "demo-agent-secret-1001"
contact = "sip:1001@127.0.0.1:$agents"
codecs = ["PCMA"]

[[agent]]
extension = "1002"
password = "demo-agent-secret-1002"
contact = "sip:1002@127.0.0.1:$agents"
codecs = ["PCMA"]

[[pool]]
name = "sales"
agents = ["1000", "1001", "1002"]

[media]
rtp_ports = "$rtp_first-$rtp_last"
record_dir = "recordings"

[store]
path = "dialer.db"

[api]
listen = "127.0.0.1:$api"
TOML
"$dialer" config check --config dialer.toml >/dev/null

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
sipp -sf "$repo/tests/interop/sipp/carrier_campaign.xml" -i 127.0.0.1 -p "$carrier" -bind_local \
    -mi 127.0.0.1 -mp $((base + 10)) -m 1000 -trace_msg -message_file carrier.messages.log \
    -nostdin >sipp-carrier.log 2>&1 &
pids+=($!)
sipp -sf "$repo/tests/interop/sipp/agent_answer.xml" -i 127.0.0.1 -p "$agents" -bind_local \
    -mi 127.0.0.1 -mp $((base + 20)) -m 1000 -nostdin >sipp-agents.log 2>&1 &
pids+=($!)
"$dialer" run --config dialer.toml --cdr cdr.jsonl >dialer-run.log 2>&1 &
run=$!
pids+=($run)
for _ in $(seq 100); do
    "$dialer" campaign list --api "$api_url" >/dev/null 2>&1 && break
    sleep 0.1
done

"$dialer" campaign create "$repo/scripts/demo/spring.toml" --api "$api_url"
"$dialer" campaign import spring "$repo/scripts/demo/leads.csv" --api "$api_url"
"$dialer" campaign start spring --api "$api_url"
if [[ -t 1 ]]; then
    # On a terminal: the live progress bar until the campaign is finished.
    "$dialer" campaign status spring --api "$api_url"
else
    "$dialer" campaign status spring --wait --api "$api_url"
fi
"$dialer" campaign leads spring --csv --api "$api_url" >leads-export.csv
kill -TERM "$run" 2>/dev/null || true
wait "$run" 2>/dev/null || true

echo
echo "leads by final state:"
awk -F, 'NR > 1 && !seen[$1]++ { n[$3]++ } END { for (s in n) printf "  %-8s %d\n", s, n[s] }' leads-export.csv
echo
echo "export:     $out/leads-export.csv (one row per attempt: outcome, agent, disposition)"
echo "recordings: $out/recordings/ ($(ls recordings | wc -l) WAV files, customer left, agent right)"
echo "CDRs:       $out/cdr.jsonl"
echo "store:      $out/dialer.db (SQLite: campaigns, leads, attempts, DNC lists)"
echo "carrier:    $out/carrier.messages.log (every SIP message the simulated carrier saw)"
