#!/usr/bin/env bash
# The demo: one whole call on loopback with no outside trunk. A simulated carrier (registrar
# and answering party playing 440 Hz) and a simulated agent (a softphone that registers with
# digest, rings for two seconds, answers and plays 1000 Hz) talk to the real dialer over UDP.
# The dialer prints its SIP ladder; the call's recording is left in ./demo.wav (customer left,
# agent right), every datagram the peers exchanged with the dialer in ./demo.pcap, and the
# dialer's own capture of the call in ./demo-call.pcap (open them with Wireshark or
# `dialer pcap ladder demo.pcap`).
#
# Environment: OUT_DIR (default: the current directory), TALK_SECONDS (default 4),
# SKIP_APT=1 to leave Debian packages alone.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT_DIR:-$(pwd)}
talk=${TALK_SECONDS:-4}

# libopus-dev and pkg-config: the media crate links the system libopus.
packages=(libopus-dev pkg-config)
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
exec "$repo/target/release/dialer" demo --out-dir "$out" --talk "$talk"
