#!/usr/bin/env bash
# Every test of the project, in the order CI runs them (.ci/run execs this script):
#   1. the Debian packages and cargo-fuzz the tests use (installed only when missing);
#   2. cargo fmt --check, clippy -D warnings, rustdoc -D warnings;
#   3. cargo test --workspace with REQUIRE_CORPUS=1 (a missing ../shared/corpus is a failure);
#   4. every fuzz target for FUZZ_SECONDS (default 30), seeded from the corpus by fuzz/seed.sh.
# It stops at the first failing step and says which one; the last lines give the time of each
# step and the total of test results.
#
# Environment:
#   FUZZ_SECONDS    seconds per fuzz target (default 30; 0 skips fuzzing)
#   FUZZ_SANITIZER  cargo fuzz --sanitizer value (default address)
#   SKIP_APT=1      do not check or install Debian packages
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
FUZZ_SANITIZER=${FUZZ_SANITIZER:-address}
corpus="$repo/../shared/corpus"

# Debian packages the tests and tools use: libopus-dev and pkg-config build audiopus against the
# system libopus; tshark is the oracle for the capture tests and extracts fuzz seeds; sip-tester
# (SIPp), baresip, sox and espeak-ng drive and check interop calls; iproute2 and iptables build
# the NAT namespaces of the agent-behind-NAT call test; kamailio is the registrar of the trunk
# registration tests; dnsmasq is the DNS server (NAPTR, SRV) of the RFC 3263 failover tests;
# g++ builds libFuzzer.
packages=(libopus-dev pkg-config g++ tshark sip-tester baresip sox espeak-ng iproute2 iptables kamailio kamailio-tls-modules openssl sipvicious prometheus dnsmasq)

log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
start_all=$SECONDS
timings=()

joined() {
    local IFS=,
    echo "${timings[*]:-none}" | sed 's/,/, /g'
}

# step NAME COMMAND...: runs COMMAND, records its duration, stops the script if it fails.
# COMMAND runs in an `if`, where bash ignores `set -e`: the functions below chain with && or
# `|| return` so that their first failure is their status.
step() {
    local name=$1
    shift
    local start=$SECONDS
    echo
    echo "==> $name"
    if "$@"; then
        timings+=("$name $((SECONDS - start))s")
    else
        local rc=$?
        echo
        echo "test.sh: FAILED at step '$name' (exit $rc) after $((SECONDS - start))s;" \
            "passed before it: $(joined)"
        exit "$rc"
    fi
}

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

install_packages() {
    if [[ ${SKIP_APT:-0} == 1 ]] || ! command -v dpkg-query >/dev/null; then
        echo "skipping Debian packages (SKIP_APT=1 or not a Debian system)"
        return 0
    fi
    local missing=()
    for p in "${packages[@]}"; do
        installed "$p" || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        echo "Debian packages already installed: ${packages[*]}"
        return 0
    fi
    if ((EUID != 0)); then
        echo "warning: not root, so not installing missing Debian packages: ${missing[*]}" >&2
        echo "         (run: sudo apt-get install ${missing[*]})" >&2
        return 0
    fi
    # tshark asks whether non-root users may capture; answer "no" so the install never waits.
    echo 'wireshark-common wireshark-common/install-setuid boolean false' |
        debconf-set-selections || return
    apt-get update || return
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
}

install_cargo_fuzz() {
    if cargo fuzz --version >/dev/null 2>&1; then
        cargo fuzz --version
    else
        cargo install cargo-fuzz --locked
    fi
}

fmt_check() {
    cargo fmt --all -- --check &&
        cargo fmt --manifest-path fuzz/Cargo.toml -- --check
}

clippy() {
    cargo clippy --workspace --all-targets -- -D warnings
}

docs() {
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
}

tests() {
    if [[ ! -d $corpus ]]; then
        echo "error: corpus not found at $corpus (tests need ../shared/corpus beside the repo)" >&2
        return 1
    fi
    REQUIRE_CORPUS=1 cargo test --workspace 2>&1 | tee "$log/test.txt"
}

# cargo-fuzz needs nightly-only flags (-Z sanitizer, sancov passes); the machine has only the
# stable toolchain, and RUSTC_BOOTSTRAP=1 lets stable accept them. Debug assertions (-a) are on
# so that an arithmetic overflow counts as the panic it would be in a debug build.
fuzz() {
    RUSTC_BOOTSTRAP=1 cargo fuzz "$1" --sanitizer "$FUZZ_SANITIZER" -a "${@:2}"
}

fuzz_build() {
    bash fuzz/seed.sh "$corpus" && fuzz build
}

fuzz_run() {
    local target=$1 rc=0
    fuzz run "$target" -- -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 \
        >"$log/fuzz-$target.txt" 2>&1 || rc=$?
    grep -E '^(#[0-9]+ +(INITED|DONE)|Done [0-9]+ runs|stat::(number_of_executed_units|peak_rss_mb))' \
        "$log/fuzz-$target.txt" || true
    if ((rc != 0)); then
        # The panic or sanitizer report, then cargo-fuzz's note on the input and how to replay it.
        grep -m1 -A24 -E "panicked at|ERROR: AddressSanitizer|ERROR: libFuzzer" \
            "$log/fuzz-$target.txt" | grep -vE '^ +([0-9]+:|at |#[0-9]+ )' || true
        sed -n '/^Failing input:/,/^Minimize/p' "$log/fuzz-$target.txt"
        echo "fuzz target $target failed; the input is in fuzz/artifacts/$target/; replay it with" >&2
        echo "  RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer $FUZZ_SANITIZER -a $target fuzz/artifacts/$target/FILE" >&2
        return "$rc"
    fi
}

step "install packages" install_packages
step "install cargo-fuzz" install_cargo_fuzz
step "fmt" fmt_check
step "clippy" clippy
step "doc" docs
step "test" tests
if ((FUZZ_SECONDS > 0)); then
    step "fuzz build" fuzz_build
    for target in $(cargo fuzz list --fuzz-dir fuzz); do
        step "fuzz $target" fuzz_run "$target"
    done
fi

# Totals over every `test result:` line cargo printed (unit, integration and doc tests).
read -r passed failed ignored < <(awk '/^test result:/ {
        for (i = 1; i <= NF; i++) {
            if ($(i + 1) ~ /^passed/) p += $i
            if ($(i + 1) ~ /^failed/) f += $i
            if ($(i + 1) ~ /^ignored/) g += $i
        }
    } END { print p + 0, f + 0, g + 0 }' "$log/test.txt")
echo
echo "test.sh: all steps passed in $((SECONDS - start_all))s: $(joined)"
echo "cargo test: $passed passed, $failed failed, $ignored skipped"
