#!/usr/bin/env bash
# Load test of the real `dialer run` on loopback: SIPp as the carrier (127.0.0.1, answers,
# streams PCMA with rtp_stream, hangs up after the hold time) and SIPp as every agent
# (AGENT_SIPPS instances, default 8, on 127.0.0.2, .3, ...: static contacts in the dialer's
# config, agent i on instance i mod AGENT_SIPPS; each answers and echoes RTP with -rtp_echo),
# calls originated through the control API by bench/calls/drive.py at a fixed rate.
#
#   bench/calls_load.sh [concurrent] [rate]        (default: both phases)
#
# Phases (each with a fresh dialer and fresh SIPp instances):
#   concurrent  CONC_CALLS (600) calls at CONC_CPS (50/s), each held CONC_HOLD s (40): all
#               calls bridged at once for about CONC_HOLD - CONC_CALLS/CONC_CPS seconds.
#   rate        RATE_CPS (100/s) for RATE_SECONDS (30), each held RATE_HOLD s (5).
# Reported per phase (RESULT lines, grep-able; the figures as JSON in WORK/result.json):
# - calls placed (POST /calls), bridged, failed (CDR outcome, from GET /events), SIPp's counts;
# - peak concurrent bridged calls (GET /calls each second), set-up time (created -> bridged);
# - RTP: packets relayed each way and lost, from the CDRs (RFC 3550 A.3 loss on what the
#   dialer received from each leg: lost_from_agent also counts what the dialer sent the agent
#   and the echo dropped); receive-queue drops of the dialer's and the echoes' sockets
#   (/proc/net/udp, sampled each second); to_customer_minus_echoed per call (sent to the
#   customer less echoed back by the agent: ringback frames, less echoes in flight at the
#   hang-up; a relay losing agent audio would make it negative). SIPp's rtp_stream sockets are
#   never read, so the host's RcvbufErrors (/proc/net/snmp) ~ packets_to_customer: not loss;
# - CPU: utime + stime of the dialer (/proc/PID/stat) over the phase and over the plateau (the
#   seconds with >= 98% of the peak bridged), as % of one core and per bridged call-second;
#   time its threads and SIPp's waited for a CPU (schedstat: a shared host shows here);
# - RSS per call: (RSS at the peak - RSS before the first call) / calls bridged at the peak.
#
# Traffic stays on 127.0.0.0/8; every wait is bounded; processes are ended by PID.
# Needs sipp (3.6, Debian sip-tester) and python3. Build: release, CARGO_TARGET_DIR
# (default /work/target-load). KEEP=1 keeps the work directory (logs, CDRs, result JSON);
# PERF=1 also records the dialer's stacks with perf into WORK/perf.data.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-load}
CONC_CALLS=${CONC_CALLS:-600} CONC_CPS=${CONC_CPS:-50} CONC_HOLD=${CONC_HOLD:-40}
RATE_CPS=${RATE_CPS:-100} RATE_SECONDS=${RATE_SECONDS:-30} RATE_HOLD=${RATE_HOLD:-5}
SIP_PORT=${SIP_PORT:-15060} CARRIER_PORT=${CARRIER_PORT:-15070} AGENT_PORT=${AGENT_PORT:-15080}
AGENT_SIPPS=${AGENT_SIPPS:-8}
# NICE=-5 (root) runs the dialer and SIPp ahead of other work on a shared host; 0 leaves them be.
NICE=${NICE:-0}
API_PORT=${API_PORT:-18021} ECHO_PORT=${ECHO_PORT:-16000} CARRIER_MEDIA_PORT=${CARRIER_MEDIA_PORT:-40000}
PHASES=("$@")
[ ${#PHASES[@]} -gt 0 ] || PHASES=(concurrent rate)

for tool in sipp python3; do
  command -v "$tool" >/dev/null || { echo "calls_load: $tool is required" >&2; exit 2; }
done
# DIALER_BIN=PATH runs that binary instead of building this tree's (A/B comparisons).
if [ -n "${DIALER_BIN:-}" ]; then
  BIN=$DIALER_BIN
else
  cargo build --quiet --release -p dialer --manifest-path "$ROOT/Cargo.toml"
  BIN=$CARGO_TARGET_DIR/release/dialer
fi
# Four sockets per call (RTP and RTCP on each leg) plus SIPp's: raise the descriptor limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge 8192 ] || { echo "calls_load: ulimit -n $(ulimit -n) is too low" >&2; exit 2; }
if ! ip -4 addr show lo 2>/dev/null | grep -q '127.0.0.1/8'; then
  echo "calls_load: loopback 127.0.0.0/8 is needed (127.0.0.2 for the agents)" >&2; exit 2
fi

PIDS=()
WORK=""
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  PIDS=()
  if [ -n "$WORK" ] && [ "${KEEP:-0}" != 1 ]; then rm -rf "$WORK"; fi
}
VERDICTS=""
trap 'cleanup; [ -z "$VERDICTS" ] || rm -f "$VERDICTS"' EXIT

# Waits (bounded, $2 tenths of a second) for PID $1 to exit; 0 if it did.
wait_exit() {
  local i
  for i in $(seq "$2"); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  return 1
}

# SIPp's final counters from its screen file: "Successful call" and "Failed call", cumulative.
sipp_counts() {
  awk -F'|' '/Successful call/ { s = $3 } /Failed call/ { f = $3 } END { gsub(/ /, "", s); gsub(/ /, "", f); printf "ok=%s failed=%s", s, f }' "$1" 2>/dev/null
}

phase() {
  local name=$1 calls=$2 cps=$3 hold=$4
  WORK=$(mktemp -d "/tmp/calls_load.$name.XXXXXX")
  python3 "$HERE/calls/make_config.py" "$WORK" --agents "$calls" --sip-port "$SIP_PORT" \
    --carrier-port "$CARRIER_PORT" --agent-port "$AGENT_PORT" --api-port "$API_PORT" \
    --agent-hosts "$AGENT_SIPPS"
  local budget=$(( calls / ${cps%.*} + hold + 40 ))
  local common=(-t u1 -bind_local -l 5000 -timeout "${budget}s" -timeout_error
    -nostdin -trace_err -trace_screen -fd 1 -rtp_buffsize 1048576)
  # SIPp's -rtp_echo is one thread reading one socket whose receive buffer stays at the
  # system default (-rtp_buffsize does not reach it): the echo load is spread over several
  # instances so that a scheduling delay of an echo thread does not overflow its socket.
  local agents=() k
  for k in $(seq 0 $(( AGENT_SIPPS - 1 ))); do
    local ip=127.0.0.$(( 2 + k )) n=$(( (calls - k + AGENT_SIPPS - 1) / AGENT_SIPPS ))
    [ "$n" -gt 0 ] || continue
    (cd "$WORK" && exec nice -n "$NICE" sipp -sf "$HERE/calls/agent.xml" -i "$ip" -p "$AGENT_PORT" \
      -mi "$ip" -mp "$ECHO_PORT" -rtp_echo -m "$n" "${common[@]}" \
      -error_file "agent$k.errors.log" -screen_file "agent$k.screen.log" >"agent$k.out" 2>&1) &
    agents+=($!); PIDS+=($!)
  done
  (cd "$WORK" && exec nice -n "$NICE" sipp -sf "$HERE/calls/carrier.xml" -i 127.0.0.1 -p "$CARRIER_PORT" \
    -mi 127.0.0.1 -mp "$CARRIER_MEDIA_PORT" -d "$(( hold * 1000 ))" -m "$calls" "${common[@]}" \
    -error_file carrier.errors.log -screen_file carrier.screen.log >carrier.out 2>&1) &
  local carrier=$!; PIDS+=("$carrier")
  (cd "$WORK" && exec nice -n "$NICE" "$BIN" run --config dialer.toml >cdr.jsonl 2>dialer.err) &
  local dialer=$!; PIDS+=("$dialer")
  local up=0
  for _ in $(seq 100); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$API_PORT/health', timeout=1)" 2>/dev/null; then up=1; break; fi
    kill -0 "$dialer" 2>/dev/null || break
    sleep 0.1
  done
  [ "$up" = 1 ] || { echo "calls_load: the dialer did not start:" >&2; cat "$WORK/dialer.err" >&2; exit 1; }
  for p in "${agents[@]}" "$carrier"; do
    kill -0 "$p" 2>/dev/null || { echo "calls_load: SIPp did not start:" >&2; cat "$WORK"/*.out >&2; exit 1; }
  done
  echo "== $name: $calls calls at $cps/s, hold ${hold}s (work dir $WORK)"
  local perf=""
  if [ "${PERF:-0}" = 1 ] && command -v perf >/dev/null; then
    # Where the dialer's time goes: sampled stacks (DWARF unwinding; release builds keep
    # line tables, profile.release debug = 1), read with `perf report -i WORK/perf.data`.
    perf record -q -F 299 --call-graph dwarf,16384 -p "$dialer" -o "$WORK/perf.data" \
      >"$WORK/perf.out" 2>&1 &
    perf=$!; PIDS+=("$perf")
  fi
  python3 "$HERE/calls/drive.py" --api "127.0.0.1:$API_PORT" --pid "$dialer" --calls "$calls" \
    --rate "$cps" --agents "$calls" --hold "$hold" --echo-port "$ECHO_PORT" \
    --peer-pids "$carrier,$(IFS=,; echo "${agents[*]}")" --deadline "$budget" --out "$WORK/result.json"
  if [ -n "$perf" ]; then kill -INT "$perf" 2>/dev/null || true; wait_exit "$perf" 300 || true; fi
  # The carrier and agent SIPps exit after -m calls; their counters are final then.
  wait_exit "$carrier" 100 || true
  for p in "${agents[@]}"; do wait_exit "$p" 100 || true; done
  kill -TERM "$dialer" 2>/dev/null || true
  wait_exit "$dialer" 100 || kill -KILL "$dialer" 2>/dev/null || true
  python3 - "$WORK/result.json" "$name" "$(sipp_counts "$WORK/carrier.screen.log")" \
    "$(for k in $(seq 0 $(( AGENT_SIPPS - 1 ))); do echo -n "[$k] $(sipp_counts "$WORK/agent$k.screen.log") "; done)" \
    "$VERDICTS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); name = sys.argv[2]
mb = lambda b: f"{b / 1048576:.1f} MiB"
udp = r["udp_host_delta"]
print(f"RESULT {name} calls_placed={r['posted_ok']} post_errors={r['post_errors']} "
      f"bridged={r['bridged']} failed={r['not_bridged'] + r['missing_cdrs'] + r['post_errors']} "
      f"outcomes={r['outcomes']}")
print(f"RESULT {name} concurrent_bridged_peak={r['concurrent_bridged_max_sampled']} "
      f"(events: {r['concurrent_bridged_max_events']}) achieved_cps={r['achieved_cps']} "
      f"setup_ms p50={r['setup_ms_p50']} p99={r['setup_ms_p99']} max={r['setup_ms_max']}")
print(f"RESULT {name} rtp packets_to_agent={r['packets_to_agent']} packets_to_customer={r['packets_to_customer']} "
      f"lost_from_customer={r['lost_from_customer']} lost_from_agent={r['lost_from_agent']} "
      f"calls_with_loss={r['calls_with_loss']}")
print(f"RESULT {name} socket_drops dialer={r['socket_drops_dialer']} agent_echo={r['socket_drops_agent_echo']} "
      f"to_customer_minus_echoed min={r['to_customer_excess_min']} max={r['to_customer_excess_max']}")
print(f"RESULT {name} host_udp InErrors={udp.get('InErrors')} RcvbufErrors={udp.get('RcvbufErrors')} "
      f"SndbufErrors={udp.get('SndbufErrors')} NoPorts={udp.get('NoPorts')}")
print(f"RESULT {name} cpu={r['cpu_s']}s over {r['wall_s']}s = {r['cpu_pct_of_one_core']}% of one core; "
      f"{r['cpu_us_per_call_second']} us per bridged call-second ({r['call_seconds_bridged']} call-s); "
      f"{r['cpu_ms_per_call']} ms per call")
pl = r["plateau"]
if pl:
    print(f"RESULT {name} plateau {pl['seconds']}s with {pl['bridged_mean']} bridged: "
          f"{pl['cpu_pct_of_one_core']}% of one core, {pl['cpu_us_per_call_second']} us per call-second")
print(f"RESULT {name} runqueue_wait dialer={r['runqueue_wait_s']['dialer']}s sipp={r['runqueue_wait_s']['sipp']}s; "
      f"sipp cpu={r['sipp_cpu_s']}s; host load at end {open('/proc/loadavg').read().split()[0]}")
print(f"RESULT {name} rss idle={mb(r['rss_idle_bytes'])} at_peak={mb(r['rss_peak_bytes'])} "
      f"per_call={r['rss_per_call_bytes']} B")
failed = r['not_bridged'] + r['missing_cdrs'] + r['post_errors']
lost = r['lost_from_customer'] + r['lost_from_agent'] + r['socket_drops_dialer'] + r['socket_drops_agent_echo']
misses = []
if failed:
    misses.append(f"{failed} failed calls")
if lost:
    misses.append(f"{lost} RTP packets lost")
if name == "concurrent" and r['concurrent_bridged_max_sampled'] < 500:
    misses.append("fewer than 500 concurrent bridged calls")
if name == "rate" and (r['achieved_cps'] < 99 or r['rate_asked'] < 100):
    misses.append("fewer than 100 set-ups per second (1% timing tolerance)")
print(f"VERDICT {name} " + ("PASS" if not misses else "FAIL: " + "; ".join(misses)))
open(sys.argv[5], "a").write("fail\n" if misses else "")
print(f"RESULT {name} sipp carrier {sys.argv[3]}; agent {sys.argv[4]}; events_lagged={r['events_lagged']}")
PY
  cleanup
  WORK=""
}

VERDICTS=$(mktemp /tmp/calls_load.verdicts.XXXXXX)
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
for ph in "${PHASES[@]}"; do
  case $ph in
    concurrent) phase concurrent "$CONC_CALLS" "$CONC_CPS" "$CONC_HOLD" ;;
    rate) phase rate $(( RATE_CPS * RATE_SECONDS )) "$RATE_CPS" "$RATE_HOLD" ;;
    *) echo "calls_load: unknown phase $ph (concurrent, rate)" >&2; exit 2 ;;
  esac
done
# Exit 1 when a phase missed a target (VERDICT lines say which).
[ ! -s "$VERDICTS" ] || exit 1
