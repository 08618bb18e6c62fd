#!/usr/bin/env python3
"""Renders the load harness's raw results (benches/load/run) as one markdown
table: the median over the runs for each proxy, the best peer, and the ratio
Portcullis / best peer, next to issue 7's target.

    report.py RESULTS.tsv NOTES.txt --proxies "portcullis nginx ..." \
        --runs N --duration S --certs N --command CMD --versions TEXT

RESULTS.tsv lines: proxy, metric, run, value.
"""

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
from collections import defaultdict

NAMES = {"portcullis": "Portcullis", "nginx": "nginx", "haproxy": "haproxy", "caddy": "caddy"}
HIGHER, LOWER, ZERO, INFO = "higher", "lower", "zero", "info"


def rows(certs):
    """(label, metric, better, target ratio or absolute target, scale, format)."""
    k = f"{certs // 1000}k" if certs % 1000 == 0 and certs >= 1000 else str(certs)
    return [
        ("HTTP/1.1 keep-alive, requests/s", "h1_rps", HIGHER, ("ratio", 1.1), 1, "{:,.0f}"),
        ("HTTP/1.1 keep-alive, p50 latency (ms)", "h1_p50_ms", LOWER, None, 1, "{:.2f}"),
        ("HTTP/1.1 keep-alive, p99 latency (ms)", "h1_p99_ms", LOWER, ("ratio", 1.0), 1, "{:.2f}"),
        ("HTTP/2 multiplexed, requests/s", "h2_rps", HIGHER, ("ratio", 1.1), 1, "{:,.0f}"),
        ("HTTP/2 multiplexed, mean latency (ms)", "h2_mean_ms", LOWER, None, 1, "{:.2f}"),
        ("HTTP/2 multiplexed, p50 latency (ms)", "h2_p50_ms", LOWER, None, 1, "{:.2f}"),
        ("HTTP/2 multiplexed, p99 latency (ms)", "h2_p99_ms", LOWER, ("ratio", 1.0), 1, "{:.2f}"),
        ("New TLS connections/s, resumed by TLS 1.3 ticket (1 request each)", "resumed_rps", HIGHER, None, 1, "{:,.0f}"),
        ("New TLS connections/s, resumed by TLS 1.2 session ID (1 request each)", "resumed_id_rps", HIGHER, None, 1, "{:,.0f}"),
        ("New TLS connections/s, full handshake (1 request each)", "full_rps", HIGHER, ("ratio", 1.2), 1, "{:,.0f}"),
        ("Proxy CPU per request, HTTP/1.1 (µs)", "h1_cpu_us", LOWER, ("ratio", 0.8), 1, "{:.1f}"),
        ("Proxy CPU per request, HTTP/2 (µs)", "h2_cpu_us", LOWER, ("ratio", 0.8), 1, "{:.1f}"),
        ("… of which user space, HTTP/1.1 (µs)", "h1_user_us", LOWER, None, 1, "{:.1f}"),
        ("… of which kernel, HTTP/1.1 (µs)", "h1_sys_us", LOWER, None, 1, "{:.1f}"),
        ("… of which user space, HTTP/2 (µs)", "h2_user_us", LOWER, None, 1, "{:.1f}"),
        ("… of which kernel, HTTP/2 (µs)", "h2_sys_us", LOWER, None, 1, "{:.1f}"),
        ("Proxy CPU per ticket resumption + request (µs)", "resumed_cpu_us", LOWER, None, 1, "{:.0f}"),
        ("Proxy CPU per session-ID resumption + request (µs)", "resumed_id_cpu_us", LOWER, None, 1, "{:.0f}"),
        ("Proxy CPU per full handshake + request (µs)", "full_cpu_us", LOWER, ("ratio", 0.5), 1, "{:.0f}"),
        ("Peak memory under load (MiB)", "peak_kib", LOWER, None, 1 / 1024, "{:.1f}"),
        ("Idle memory, 1 certificate (MiB)", "idle_kib", LOWER, None, 1 / 1024, "{:.1f}"),
        (f"Idle memory, {k} certificates (MiB)", "idle_certs_kib", LOWER, None, 1 / 1024, "{:.1f}"),
        ("Idle memory per loaded certificate (KiB)", "per_cert_kib", LOWER, ("below", 8), 1, "{:.2f}"),
        ("Failed requests while swapping 10×/s (all runs)", "swap_failed", ZERO, ("zero", 0), 1, "{:.0f}"),
        ("HTTP/1.1 requests/s while swapping 10×/s", "swap_rps", HIGHER, None, 1, "{:,.0f}"),
        ("Swaps made per run (Portcullis: applied)", "swaps", INFO, None, 1, "{:.0f}"),
        ("Failed requests in the other runs (all runs)", "other_failed", ZERO, None, 1, "{:.0f}"),
    ]


def records(path):
    """(proxy, metric, repetition, value) for each number the harness recorded."""
    with open(path) as f:
        for line in f:
            proxy, metric, run, value = line.rstrip("\n").split("\t")
            try:
                yield proxy, metric, run, float(value)
            except ValueError:
                pass


def load(path):
    data = defaultdict(lambda: defaultdict(list))
    for proxy, metric, _run, value in records(path):
        data[proxy][metric].append(value)
    return data


def load_runs(path):
    """Every value keyed by proxy, metric and repetition number."""
    runs = defaultdict(lambda: defaultdict(dict))
    for proxy, metric, run, value in records(path):
        if not math.isnan(value):
            runs[proxy][metric][run] = value
    return runs


def paired_ratios(runs, metric, peer):
    """Portcullis's value over `peer`'s, repetition by repetition.

    The proxies take turns within a repetition, so a pair shares the
    machine's state of the moment; the spread of these ratios says whether
    a median's ratio is a steady lead or noise."""
    mine = runs.get("portcullis", {}).get(metric, {})
    theirs = runs.get(peer, {}).get(metric, {})
    return [mine[r] / theirs[r] for r in sorted(mine) if theirs.get(r)]


def load_raw(path, proxy, metric):
    """Every run's value of one metric, in run order."""
    return load(path).get(proxy, {}).get(metric, [])


def summarize(data, certs):
    """One number per proxy and metric: the median over runs, except peaks
    (the maximum) and failure counts (the sum)."""
    out = defaultdict(dict)
    for proxy, metrics in data.items():
        for metric, values in metrics.items():
            values = [v for v in values if not math.isnan(v)]
            if not values:
                continue
            if metric == "peak_kib":
                out[proxy][metric] = max(values)
            elif metric.endswith("_failed"):
                out[proxy][metric] = sum(values)
            else:
                out[proxy][metric] = statistics.median(values)
        m = out[proxy]
        if "idle_certs_kib" in m and "idle_kib" in m and certs:
            m["per_cert_kib"] = (m["idle_certs_kib"] - m["idle_kib"]) / certs
        others = [
            m[k]
            for k in ("h1_failed", "h2_failed", "resumed_failed", "resumed_id_failed", "full_failed")
            if k in m
        ]
        if others:
            m["other_failed"] = sum(others)
        if proxy == "portcullis" and "swaps_applied" in m:
            m["swaps"] = m["swaps_applied"]
    return out


def verdict(value, best, better, target):
    if target is None or value is None:
        return ""
    kind, t = target
    if kind == "zero":
        return "met" if value == 0 else "MISSED"
    if kind == "below":
        return "met" if value < t else "MISSED"
    if best is None or best == 0:
        return ""
    ratio = value / best
    ok = ratio >= t if better == HIGHER else ratio <= t
    return "met" if ok else "MISSED"


def target_text(target, better):
    if target is None:
        return ""
    kind, t = target
    if kind == "zero":
        return "0"
    if kind == "below":
        return f"< {t} KiB"
    return f"{'≥' if better == HIGHER else '≤'} {t}× best peer"


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("notes")
    ap.add_argument("--proxies", required=True)
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--duration", type=int, required=True)
    ap.add_argument("--certs", type=int, required=True)
    ap.add_argument("--command", required=True)
    ap.add_argument("--versions", required=True)
    ap.add_argument("--criterion", help="criterion's output directory (target/criterion)")
    args = ap.parse_args()

    proxies = args.proxies.split()
    peers = [p for p in proxies if p != "portcullis"]
    stats = summarize(load(args.results), args.certs)
    runs = load_runs(args.results)
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    mem = subprocess.run(["free", "-g"], capture_output=True, text=True).stdout.split("\n")[1].split()[1]
    # The time of the last measurement recorded, so a re-render keeps the run's date.
    now = datetime.datetime.fromtimestamp(
        os.path.getmtime(args.results), datetime.timezone.utc
    ).strftime("%Y-%m-%d %H:%M UTC")

    def fmt(value, scale, spec):
        return "—" if value is None else spec.format(value * scale)

    header = [NAMES.get(p, p) for p in proxies] + ["backend direct"]
    lines = [
        "| measurement | "
        + " | ".join(header)
        + " | best peer | Portcullis / best peer | same, per run (min–max) | target | |",
        "|---|" + "---:|" * (len(header) + 3) + "---|---|",
    ]
    for label, metric, better, target, scale, spec in rows(args.certs):
        values = {p: stats.get(p, {}).get(metric) for p in proxies}
        ceiling = stats.get("backend", {}).get(metric.replace("h1_", "ceiling_"))
        if not metric.startswith("h1_"):
            ceiling = None
        peer_values = [(values[p], p) for p in peers if values[p] is not None]
        best = None
        if peer_values and better != INFO:
            pick = max if better == HIGHER else min
            best = pick(peer_values)
        mine = values.get("portcullis")
        ratio = "—"
        if best is not None and mine is not None and better != ZERO and best[0]:
            ratio = f"{mine / best[0]:.2f}"
        spread = "—"
        # Peaks are kept per run over several kinds of load: no pair to make.
        if best is not None and better in (HIGHER, LOWER) and metric != "peak_kib":
            pairs = paired_ratios(runs, metric, best[1])
            if len(pairs) > 1:
                spread = f"{min(pairs):.2f}–{max(pairs):.2f}"
        best_text = "—" if best is None else f"{fmt(best[0], scale, spec)} ({NAMES[best[1]]})"
        cells = [fmt(values[p], scale, spec) for p in proxies] + [fmt(ceiling, scale, spec)]
        lines.append(
            f"| {label} | "
            + " | ".join(cells)
            + f" | {best_text} | {ratio} | {spread} | {target_text(target, better)} | "
            + verdict(mine, best[0] if best else None, better, target)
            + " |"
        )

    notes = [n for n in open(args.notes).read().splitlines() if n.strip()]
    ceilings = load_raw(args.results, "backend", "ceiling_rps")
    if len(ceilings) > 1 and min(ceilings) > 0 and max(ceilings) / min(ceilings) > 1.1:
        notes.append(
            f"The backend hit directly did between {min(ceilings):,.0f} and {max(ceilings):,.0f}"
            " requests/s from one repetition to the next: the machine was not quiet for the"
            " whole run, so differences of that order between proxies are noise."
        )
    steal = load_raw(args.results, "machine", "steal_pct")
    if steal and steal[0] >= 1:
        notes.append(f"{steal[0]:.1f} % of the CPU time during the run was stolen by the hypervisor.")
    full = [stats[p]["full_rps"] for p in proxies if "full_rps" in stats.get(p, {})]
    if len(full) > 1 and min(full) > 0 and max(full) / min(full) < 1.15:
        notes.append(
            "Full handshakes/s are within 15 % of each other for every proxy: the one wrk"
            " thread, which does the client's half of every handshake on the same cores,"
            " is the limit, not the proxy. Compare proxy CPU per full handshake instead."
        )
    out = [
        "# Benchmarks",
        "",
        f"Measured {now} on {nproc} cores ({cpu_model()}, {mem} GiB) by `{args.command}`:"
        f" median of {args.runs} run(s) × {args.duration} s per measurement, the proxies"
        " interleaved. Every server and load generator ran on this one machine, over"
        " 127.0.0.1, so the load generator (one thread) competes with the proxy for the"
        " cores: the CPU-per-request rows are the fairer comparison.",
        "",
        f"Versions: {args.versions}.",
        "",
        *lines,
        "",
        "How each row is measured (benches/load/run; README.md, \"Benchmarks\"):",
        "",
        "- Every proxy terminates TLS 1.2/1.3 for the same ECDSA P-256 certificate"
        " (`localhost`) and forwards to the same backend (nginx, one worker, a fixed"
        " 25-byte response) over pooled keep-alive connections, with access logs off and"
        " `X-Forwarded-*` headers set; the client negotiates X25519.",
        "- HTTP/1.1: `wrk -t1 -c64 -d<S>s --latency https://localhost:<port>/`."
        " HTTP/2: `h2load -t1 -c16 -m16 -D <S> --log-file <F> https://localhost:<port>/`"
        " (mean latency: h2load's \"time for request\"; p50 and p99: of the 2xx"
        " responses' times in its per-request log, by nearest rank).",
        "- New TLS connections: `wrk -t2 -c64 -d<S>s -H 'Connection: close'`, one"
        " request per connection; two client threads, as one wrk thread's half of the"
        " handshakes capped every proxy at the same rate. wrk resumes the previous"
        " session on reconnect: over TLS 1.3 by ticket (the `TLS 1.3 ticket` rows), and,"
        " with its OpenSSL limited to TLS 1.2 without tickets (`OPENSSL_CONF`:"
        " `MaxProtocol = TLSv1.2`, `Options = -SessionTicket`), by session ID (the"
        " `TLS 1.2 session ID` rows). For the `full handshake` rows an LD_PRELOAD shim"
        " (benches/load/noresume.c) clears the client's session before each handshake,"
        " so no connection resumes.",
        "- Portcullis / best peer is the ratio of the medians. The next column pairs"
        " Portcullis with that peer repetition by repetition (they ran minutes apart"
        " in the same round) and gives the lowest and highest of those ratios: a target"
        " met or missed across that whole range does not depend on the machine's noise.",
        "- Proxy CPU: user+system time of the proxy's processes from /proc/<pid>/stat"
        " (including reaped children) over the run, divided by the requests wrk or"
        " h2load completed. `backend direct` is the backend hit without a proxy"
        " (plain HTTP, same wrk command): the ceiling, and its own CPU per request."
        " The `of which` rows split the keep-alive rows into user and system time:"
        " the system part is mostly the kernel's TCP work over loopback (a send also"
        " runs the receiver's side of it), which differs less between the proxies"
        " than the user part, as every proxy here sends and receives the same four"
        " TCP segments per HTTP/1.1 request.",
        "- Memory: the sum of the proxy's processes' PSS (/proc/<pid>/smaps_rollup),"
        " so forked workers' shared pages count once; peak sampled every 0.25 s during"
        " the load runs; idle after start with the one certificate, and again after a"
        " restart with that many more certificates (cert-i.bench.example, each with"
        " its own P-256 key) loaded — Portcullis from [[certificates]] in a dynamic"
        " file, nginx from one server block each, haproxy from a crt-list, caddy"
        " from `tls { load <dir> }`.",
        "- Swaps: during an HTTP/1.1 run like the first, 10 times a second router number i"
        " and one of two certificates replace the previous swap's: Portcullis by"
        " rewriting a dynamic file (its watcher coalesces events 50 ms apart, so a"
        " few writes can be applied as one; the row shows the swaps applied), nginx by"
        " `nginx -s reload`, haproxy by a master-worker reload (SIGUSR2 to the master),"
        " caddy by `POST /load` to its admin API. Failed = wrk socket errors + non-2xx"
        " responses.",
    ]
    if notes:
        out += ["", "Not measured or caveats:", ""] + [f"- {n}" for n in notes]
    if args.criterion:
        out += micro_benchmarks(args.criterion)
    print("\n".join(out))


# Criterion benchmark ids (group/function/parameter) with issue 7's targets, in ns.
MICRO_TARGETS = {
    "route_lookup/exact/100000": 100,
    "route_lookup/wildcard/100000": 100,
    "route_lookup/miss/100000": 100,
    "swap_certs_10k/dataplane_set_managed": 20e6,
    "swap_certs_10k/dataplane_apply_static_pem": 20e6,
}


def micro_benchmarks(directory):
    """A table of the last `cargo bench` results found under `directory`."""
    found = []
    for root, _dirs, files in os.walk(directory):
        if "estimates.json" in files and os.path.basename(root) == "new":
            with open(os.path.join(root, "benchmark.json")) as f:
                bench_id = json.load(f)["full_id"]
            path = os.path.join(root, "estimates.json")
            with open(path) as f:
                median = json.load(f)["median"]
            found.append((bench_id, median, os.path.getmtime(path)))
    if not found:
        return []
    found.sort()
    newest = max(t for _, _, t in found)
    oldest = min(t for _, _, t in found)
    when = lambda t: datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "",
        "## Micro-benchmarks",
        "",
        f"From the last `cargo bench` on this machine ({when(oldest)} to {when(newest)}):"
        " criterion's median with its 95 % confidence interval, per operation.",
        "",
        "| benchmark | median | 95 % interval | target | |",
        "|---|---:|---:|---|---|",
    ]
    for bench_id, median, _ in found:
        point = median["point_estimate"]
        low = median["confidence_interval"]["lower_bound"]
        high = median["confidence_interval"]["upper_bound"]
        target = MICRO_TARGETS.get(bench_id)
        verdict = "" if target is None else ("met" if point < target else "MISSED")
        lines.append(
            f"| `{bench_id}` | {duration(point)} | {duration(low)} – {duration(high)} | "
            f"{'' if target is None else '< ' + duration(target)} | {verdict} |"
        )
    return lines


def duration(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


if __name__ == "__main__":
    main()
