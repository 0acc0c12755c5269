#!/usr/bin/env python3
"""Originate load for bench/calls_load.sh, against a running dialer's control API.

    drive.py --api 127.0.0.1:PORT --pid DIALER_PID --calls N --rate CPS --agents A
             --hold S --out RESULT.json [--deadline SECONDS]

Places N calls with POST /calls at a fixed rate (call i at t0 + i/CPS, to agent "a<i mod A>"),
follows GET /events (NDJSON) to count created, answered, bridged and ended calls and to collect
each call's CDR, samples GET /calls once a second for the number of bridged calls, and reads the
dialer's CPU time (utime + stime, /proc/PID/stat) and RSS (/proc/PID/status) over the run. Ends
when every placed call has a CDR or at the deadline, and writes the figures as JSON.
Only 127.0.0.0/8 is accepted as the API address. Standard library only.
"""
import argparse
import http.client
import ipaddress
import json
import os
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # Fields 14 and 15 of proc(5) (utime, stime), counted after the ")" of comm.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def threads(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def socket_drops(ranges):
    """Per-socket receive-queue drops of the UDP sockets bound to 127.0.0.0/8 ports in each
    named (first, last) range, from /proc/net/udp: {name: {inode: drops}}."""
    out = {name: {} for name in ranges}
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            cols = line.split()
            ip_hex, port_hex = cols[1].split(":")
            if int(ip_hex, 16) & 0xFF != 127:  # little-endian on x86: first octet last byte
                continue
            port = int(port_hex, 16)
            for name, (first, last) in ranges.items():
                if first <= port <= last:
                    out[name][cols[9]] = int(cols[12])
    return out


def task_stats(pid):
    """(seconds on a CPU, seconds runnable but waiting for one) summed over the threads of
    `pid` (/proc/PID/task/TID/schedstat, in ns); zeros once the process is gone."""
    run = wait = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0, 0.0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                on_cpu, waiting, _ = f.read().split()
        except (OSError, ValueError):
            continue
        run += int(on_cpu)
        wait += int(waiting)
    return run / 1e9, wait / 1e9


def udp_counters():
    """The host's UDP counters (RFC 4113 names) from /proc/net/snmp."""
    with open("/proc/net/snmp") as f:
        rows = [l.split() for l in f if l.startswith("Udp:")]
    return dict(zip(rows[0][1:], map(int, rows[1][1:])))


class Events(threading.Thread):
    """Follows GET /events and keeps the counts."""

    def __init__(self, host, port):
        super().__init__(daemon=True)
        self.lock = threading.Lock()
        self.conn = http.client.HTTPConnection(host, port, timeout=600)
        self.conn.request("GET", "/events")
        self.response = self.conn.getresponse()
        if self.response.status != 200:
            raise SystemExit(f"GET /events: {self.response.status}")
        self.counts = {}
        self.cdrs = {}
        self.bridged_live = 0
        self.bridged_max = 0
        self.lagged = 0
        self.setup_ms = []
        self.created_at = {}

    def run(self):
        for raw in self.response:
            line = raw.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind = event.get("event", "?")
            now = time.monotonic()
            with self.lock:
                self.counts[kind] = self.counts.get(kind, 0) + 1
                call = event.get("call")
                if kind == "call_created":
                    self.created_at[call] = now
                elif kind == "bridged":
                    self.bridged_live += 1
                    self.bridged_max = max(self.bridged_max, self.bridged_live)
                    t0 = self.created_at.get(call)
                    if t0 is not None:
                        self.setup_ms.append((now - t0) * 1000)
                elif kind == "hangup":
                    cdr = event["cdr"]
                    self.cdrs[cdr["id"]] = cdr
                    if cdr.get("bridged") is not None:
                        self.bridged_live -= 1
                elif kind == "lagged":
                    self.lagged += event.get("missed", 0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--api", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--calls", type=int, required=True)
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("--agents", type=int, required=True)
    p.add_argument("--hold", type=float, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--deadline", type=float, default=150.0)
    p.add_argument("--posters", type=int, default=4)
    p.add_argument("--dialer-rtp", default="20000-29999", help="the dialer's RTP port range")
    p.add_argument("--echo-port", type=int, default=16000, help="the agent SIPp's echo port")
    p.add_argument("--peer-pids", default="", help="SIPp PIDs, comma-separated, for CPU figures")
    a = p.parse_args()
    host, port = a.api.rsplit(":", 1)
    if not ipaddress.ip_address(host).is_loopback:
        raise SystemExit("drive.py: the API address must be on 127.0.0.0/8")
    if not (1 <= a.calls <= 100000 and 0 < a.rate <= 2000 and a.deadline <= 600):
        raise SystemExit("drive.py: calls 1..100000, rate 0..2000, deadline <= 600 s")

    first, last = map(int, a.dialer_rtp.split("-"))
    watched = {"dialer": (first, last + 1), "agent_echo": (a.echo_port, a.echo_port + 2)}
    drops = {name: {} for name in watched}

    def sample_drops():
        for name, by_inode in socket_drops(watched).items():
            for inode, n in by_inode.items():
                drops[name][inode] = max(n, drops[name].get(inode, 0))

    events = Events(host, int(port))
    events.start()
    time.sleep(0.2)  # the stream is subscribed once its headers are read; let the reader start

    peers = [int(x) for x in a.peer_pids.split(",") if x]
    # SIPp's RTP threads come and go with the calls: keep each thread's last reading.
    peer_threads = {}

    def sample_peers():
        for pid in peers:
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tids:
                try:
                    with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                        on_cpu, waiting, _ = f.read().split()
                except (OSError, ValueError):
                    continue
                peer_threads[(pid, tid)] = (int(on_cpu) / 1e9, int(waiting) / 1e9)

    sample_peers()
    peer0 = dict(peer_threads)
    sched0 = task_stats(a.pid)
    cpu0, rss0, snmp0 = cpu_seconds(a.pid), rss_bytes(a.pid), udp_counters()
    t0 = time.monotonic() + 0.1
    posted = {"ok": 0, "error": 0, "errors": {}}
    post_lock = threading.Lock()
    late_ms = []
    post_times = []

    def poster(k):
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        for i in range(k, a.calls, a.posters):
            due = t0 + i / a.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            late = (time.monotonic() - due) * 1000
            body = json.dumps({"number": f"555{i:06d}", "agent": f"a{i % a.agents}"})
            try:
                conn.request("POST", "/calls", body, {"Content-Type": "application/json"})
                r = conn.getresponse()
                text = r.read()
                ok = r.status == 201
            except (OSError, http.client.HTTPException) as e:
                ok, text = False, str(e).encode()
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
            with post_lock:
                late_ms.append(late)
                post_times.append(time.monotonic())
                if ok:
                    posted["ok"] += 1
                else:
                    posted["error"] += 1
                    key = text[:120].decode(errors="replace")
                    posted["errors"][key] = posted["errors"].get(key, 0) + 1

    posters = [threading.Thread(target=poster, args=(k,), daemon=True) for k in range(a.posters)]
    for t in posters:
        t.start()

    samples = []
    peak = {"bridged": 0, "rss": rss0, "cpu_at_peak": cpu0, "t": 0.0}
    stop_at = time.monotonic() + a.deadline
    while time.monotonic() < stop_at:
        time.sleep(1.0)
        now = time.monotonic()
        try:
            c = http.client.HTTPConnection(host, int(port), timeout=10)
            c.request("GET", "/calls")
            calls = json.loads(c.getresponse().read())
            c.close()
        except (OSError, ValueError, http.client.HTTPException):
            calls = []
        bridged = sum(1 for x in calls if x.get("state") == "bridged")
        rss, cpu = rss_bytes(a.pid), cpu_seconds(a.pid)
        sample_drops()
        sample_peers()
        samples.append({"t": round(now - t0, 2), "live": len(calls), "bridged": bridged,
                        "rss": rss, "cpu": round(cpu - cpu0, 3), "threads": threads(a.pid)})
        if bridged > peak["bridged"]:
            peak = {"bridged": bridged, "rss": rss, "cpu_at_peak": cpu, "t": now - t0}
        with post_lock:
            placed = posted["ok"]
            done_posting = posted["ok"] + posted["error"] >= a.calls
        with events.lock:
            ended = len(events.cdrs)
        if done_posting and ended >= placed:
            break
    wall = time.monotonic() - t0
    cpu1, snmp1 = cpu_seconds(a.pid), udp_counters()
    sched1 = task_stats(a.pid)
    sample_peers()
    peer_run = sum(v[0] - peer0.get(k, (0, 0))[0] for k, v in peer_threads.items())
    peer_wait = sum(v[1] - peer0.get(k, (0, 0))[1] for k, v in peer_threads.items())

    with events.lock:
        cdrs = list(events.cdrs.values())
        counts = dict(events.counts)
        setup = sorted(events.setup_ms)
        bridged_max = events.bridged_max
        lagged = events.lagged
    # What the dialer sent the customer beyond what came back from the agent's echo: ringback
    # frames before the bridge, less echoes still in flight at the hang-up. A relay that
    # dropped agent audio on its way to the customer shows as a negative excess.
    excess = [c["packets_to_customer"] - (c["packets_to_agent"] - c["lost_from_agent"])
              for c in cdrs if c.get("bridged") is not None]
    outcomes = {}
    for c in cdrs:
        outcomes[c["outcome"]] = outcomes.get(c["outcome"], 0) + 1
    call_seconds = sum(c["ended"] - c["bridged"] for c in cdrs if c.get("bridged") is not None)
    pct = lambda xs, q: round(xs[min(len(xs) - 1, int(q * len(xs)))], 1) if xs else None
    late_ms.sort()
    # The plateau: the samples with at least 98% of the peak bridged; its CPU rate is the
    # media relay's cost with no call being set up (concurrent phase) or under a steady churn
    # (rate phase).
    top = [x for x in samples if peak["bridged"] and x["bridged"] >= 0.98 * peak["bridged"]]
    plateau = None
    if len(top) >= 2 and top[-1]["t"] > top[0]["t"]:
        span = top[-1]["t"] - top[0]["t"]
        mean = sum(x["bridged"] for x in top) / len(top)
        used = top[-1]["cpu"] - top[0]["cpu"]
        plateau = {"seconds": round(span, 1), "bridged_mean": round(mean),
                   "cpu_pct_of_one_core": round(100 * used / span, 1),
                   "cpu_us_per_call_second": round(1e6 * used / span / mean, 1)}
    result = {
        "calls_asked": a.calls,
        "rate_asked": a.rate,
        "hold_s": a.hold,
        "posted_ok": posted["ok"],
        "post_errors": posted["error"],
        "post_error_kinds": posted["errors"],
        "post_late_ms_p99": pct(late_ms, 0.99),
        # Set-ups asked per second, from the first answered POST to the last.
        "achieved_cps": round((len(post_times) - 1) / (max(post_times) - min(post_times)), 1)
        if len(post_times) > 1 else 0,
        "events": counts,
        "events_lagged": lagged,
        "cdrs": len(cdrs),
        "outcomes": outcomes,
        "bridged": sum(1 for c in cdrs if c.get("bridged") is not None),
        "not_bridged": sum(1 for c in cdrs if c.get("bridged") is None),
        "missing_cdrs": posted["ok"] - len(cdrs),
        "concurrent_bridged_max_events": bridged_max,
        "concurrent_bridged_max_sampled": peak["bridged"],
        "setup_ms_p50": pct(setup, 0.5),
        "setup_ms_p99": pct(setup, 0.99),
        "setup_ms_max": round(setup[-1], 1) if setup else None,
        "packets_to_agent": sum(c["packets_to_agent"] for c in cdrs),
        "packets_to_customer": sum(c["packets_to_customer"] for c in cdrs),
        "lost_from_customer": sum(c["lost_from_customer"] for c in cdrs),
        "lost_from_agent": sum(c["lost_from_agent"] for c in cdrs),
        "to_customer_excess_min": min(excess) if excess else None,
        "to_customer_excess_max": max(excess) if excess else None,
        "socket_drops_dialer": sum(drops["dialer"].values()),
        "socket_drops_agent_echo": sum(drops["agent_echo"].values()),
        "calls_with_loss": sum(1 for c in cdrs if c["lost_from_customer"] or c["lost_from_agent"]),
        "call_seconds_bridged": round(call_seconds, 1),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu1 - cpu0, 3),
        "cpu_pct_of_one_core": round(100 * (cpu1 - cpu0) / wall, 1),
        "cpu_us_per_call_second": round(1e6 * (cpu1 - cpu0) / call_seconds, 1) if call_seconds else None,
        "cpu_ms_per_call": round(1e3 * (cpu1 - cpu0) / max(1, len(cdrs)), 3),
        "runqueue_wait_s": {"dialer": round(sched1[1] - sched0[1], 3), "sipp": round(peer_wait, 3)},
        "sipp_cpu_s": round(peer_run, 3),
        "plateau": plateau,
        "rss_idle_bytes": rss0,
        "rss_peak_bytes": peak["rss"],
        "rss_per_call_bytes": round((peak["rss"] - rss0) / peak["bridged"]) if peak["bridged"] else None,
        "udp_host_delta": {k: snmp1[k] - snmp0[k] for k in snmp1},
        "samples": samples,
    }
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
