#!/usr/bin/env python3
"""Load comparison: crossgate against nginx and HAProxy doing the same CORS job, a bare pingora
passthrough (as is, and as `bare-timeouts` with crossgate's default timeouts set), the engine
study of issue 13 (`lean`: benches/lean_pingora.rs, a CORS proxy on pingora-core's HttpServerApp
without pingora-proxy; `lean-own` is it with its own connection loop instead of pingora's HttpServerApp loop;
`lean-pool` and `lean-timers` are it with one of its choices undone), and
the backend directly. HTTPS + HTTP/2 runs with h2load (Debian's nghttp2-client). Run through benches/compare.sh (which installs what is
missing and builds the binaries).

Every proxy runs with one worker. Runs alternate between the proxies (A B A B ...) so that
drift on the machine hits all of them alike. For each run: requests/s, p50 and p99 latency
(wrk), CPU time of the proxy process per request (utime + stime from /proc, the steadiest
figure here), the proxy's peak RSS, and the share of a core the proxy and the load generator
each used (a load generator near 100% bounds the req/s, whatever the proxy). Ratios are to nginx and to the direct backend in the
same run. It refuses to start when a port it needs is busy, and stops everything it started.
"""

import argparse
import atexit
import datetime
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROCS = []


def stop_all():
    for p in PROCS:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    deadline = time.time() + 5
    for p in PROCS:
        try:
            p.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()


atexit.register(stop_all)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))


def port_free(port):
    with socket.socket() as s:
        # As servers do: connections in TIME_WAIT from an earlier run do not make it busy.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def wait_port(port, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    sys.exit(f"{what} did not start listening on port {port}")


def start(cmd, what, port, pin=None, timeout=30):
    if pin is not None:
        cmd = ["taskset", "-c", str(pin)] + cmd
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    PROCS.append(p)
    wait_port(port, what, timeout)
    return p


def main_pid(p, name):
    """The pids doing the work: nginx's workers (its master only supervises), else the process."""
    if name != "nginx":
        return [p.pid]
    out = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
    return [int(o) for o in out] or [p.pid]


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def rss_kib(pids, key="VmRSS"):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    total += int(line.split()[1])
    return total


def parse_latency(text, pct):
    m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not m:
        return float("nan")
    v, unit = float(m.group(1)), m.group(2)
    return v * {"us": 1, "ms": 1000, "s": 1_000_000}[unit]


def run_timed(cmd, duration):
    """Runs a load generator; returns its output and the share of one core it used over the
    run: its user + system time (the children's rusage, which counts a child once it has been
    waited for, so not the proxies still running) over `duration`. Near 100%, the load
    generator, not the proxy, bounds the req/s."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out, 100 * used / duration


def wrk(url, duration, connections, headers=(), script=None, pin=None, threads=1):
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    for h in headers:
        cmd += ["-H", h]
    if script:
        cmd += ["-s", script]
    cmd.append(url)
    if pin is not None:
        cmd = ["taskset", "-c", str(pin)] + cmd
    out, client_cpu = run_timed(cmd, duration)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "requests": int(total.group(1)) if total else 0,
        "p50": parse_latency(out, 50),
        "p99": parse_latency(out, 99),
        "bad": (int(errors.group(1)) if errors else 0),
        "socket_errors": sock.group(1) if sock else "",
        "client_cpu": client_cpu,
    }


def h2load(url, duration, connections, streams, headers=(), pin=None):
    """HTTPS + HTTP/2 load; h2load gives no percentiles, so p50 is its mean and p99 its max."""
    cmd = ["h2load", "-t1", f"-c{connections}", f"-m{streams}", f"-D{duration}"]
    for h in headers:
        cmd += ["-H", h]
    cmd.append(url)
    if pin is not None:
        cmd = ["taskset", "-c", str(pin)] + cmd
    out, client_cpu = run_timed(cmd, duration)
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    lat = re.search(r"time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)", out)
    unit = {"us": 1, "ms": 1000, "s": 1_000_000}
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "requests": int(done.group(1)) if done else 0,
        "p50": float(lat.group(5)) * unit[lat.group(6)] if lat else float("nan"),
        "p99": float(lat.group(3)) * unit[lat.group(4)] if lat else float("nan"),
        "bad": (int(done.group(3)) + int(codes.group(3)) + int(codes.group(4))) if done and codes else 0,
        "socket_errors": "" if done else "h2load printed no result",
        "client_cpu": client_cpu,
    }


def self_signed(work):
    """A certificate and key for the HTTPS scenario (openssl), and HAProxy's one-file form."""
    cert, key, both = f"{work}/tls.crt", f"{work}/tls.key", f"{work}/tls.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    with open(both, "w") as f:
        f.write(open(cert).read() + open(key).read())
    os.chmod(key, 0o644)
    os.chmod(both, 0o644)
    return cert, key, both


def fill(template, out, **values):
    with open(os.path.join(HERE, template)) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace(f"@{k}@", str(v))
    with open(out, "w") as f:
        f.write(text)
    return out


def loadgen(binary, mode, url, count, pin=None):
    cmd = [binary, mode, url, str(count)]
    if pin is not None:
        cmd = ["taskset", "-c", str(pin)] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
    m = re.search(r"p50_us=(\d+) p99_us=(\d+) per_s=(\d+)", out)
    return {"p50": float(m.group(1)), "p99": float(m.group(2)), "rate": float(m.group(3))} if m else None


def idle_ws_kib(binary, url, pid, count, pin=None):
    """RSS growth of `pid` per idle WebSocket held open through it, in KiB: for a first batch of
    `count`, and for a second batch opened while the first is held. The second is the cost of
    one more socket without what a first batch pays once (allocator slabs, tokio's I/O slab
    pages, the arenas' first pages)."""
    cmd = [binary, "ws-idle", url, str(count)]
    if pin is not None:
        cmd = ["taskset", "-c", str(pin)] + cmd
    held, figures = [], []
    try:
        for _ in range(2):
            before = rss_kib(pid)
            p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            held.append(p)
            if not p.stdout.readline().startswith("ready"):
                return float("nan"), float("nan")
            time.sleep(1.0)  # let allocations settle before reading RSS (a measurement, not a sync)
            figures.append((rss_kib(pid) - before) / count)
    finally:
        for p in held:
            p.stdin.close()
        for p in held:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
    return figures[0], figures[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--crossgate", required=True)
    ap.add_argument("--bare", required=True, help="the bare_pingora bench binary")
    ap.add_argument("--loadgen", required=True, help="the loadgen bench binary")
    ap.add_argument("--lean", required=True, help="the lean_pingora bench binary (the engine study)")
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=2, help="A B A B rounds")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--idle-sockets", type=int, default=2000)
    ap.add_argument("--modes", default="unpinned,pinned,workers2", help="unpinned, pinned (proxy on core 1, load on core 0), workers2 (2 workers per proxy, wrk with 2 threads)")
    ap.add_argument("--port-base", type=int, default=18000)
    ap.add_argument("--out", help="also write the report (Markdown) to this file")
    ap.add_argument("--proxies", default="crossgate,lean,lean-own,nginx,haproxy,bare,bare-timeouts,direct", help="which to run, comma-separated")
    ap.add_argument("--baseline", help="another crossgate binary to run beside this one (before/after in one run)")
    ap.add_argument("--scenarios", default="", help="only the scenarios whose names contain one of these, comma-separated; 'realtime' for the WebSocket, SSE and idle-WebSocket figures")
    args = ap.parse_args()

    base = args.port_base
    ports = {"backend": base, "realtime": base + 1, "crossgate": base + 10, "nginx": base + 11, "haproxy": base + 12, "bare": base + 13, "baseline": base + 14, "bare-timeouts": base + 15, "lean": base + 16, "lean-pool": base + 17, "lean-timers": base + 18, "lean-own": base + 19}
    # The HTTPS + HTTP/2 listener of each proxy: its plain port + 20.
    tls_port = lambda n: ports[n] + 20
    busy = [f"{n} ({p})" for n, p in ports.items() if n in ("backend", "realtime") or n in args.proxies.split(",") or (n == "baseline" and args.baseline)
            for p in (p, p + 20) if not port_free(p)]
    if busy:
        sys.exit(f"ports busy: {', '.join(busy)}; stop what uses them or pass --port-base")
    work = tempfile.mkdtemp(prefix="crossgate-compare-")
    # nginx's workers run as another user: they must be able to read the files.
    os.chmod(work, 0o755)
    os.makedirs(os.path.join(work, "www/api"))
    os.makedirs(os.path.join(work, "nginx-tmp"))
    item = '{"id":1,"name":"Ada Lovelace","email":"ada@example.com","active":true,"tags":["a","b"]},'
    for name, size in [("json1k", 1024), ("json64k", 65536)]:
        body = ("[" + item * (size // len(item) + 1))[: size - 2] + "{}]"
        with open(os.path.join(work, f"www/api/{name}"), "w") as f:
            f.write(body[:size])

    addr = lambda n: f"127.0.0.1:{ports[n]}"
    tls_addr = lambda n: f"127.0.0.1:{tls_port(n)}"
    cert, key, pem = self_signed(work)
    crossgate_tls = lambda n: f"\ntls:\n  - {{listen: {tls_addr(n)}, cert: {cert}, key: {key}, http2: true}}\n"
    start(["nginx", "-c", fill("nginx-backend.conf.in", f"{work}/backend.conf", DIR=work, LISTEN=addr("backend")), "-g", "daemon off;"], "backend nginx", ports["backend"], pin=0)
    start([args.crossgate, "backend", "--listen", addr("realtime")], "realtime backend", ports["realtime"], pin=0)

    configs = {
        "crossgate": lambda w: [args.crossgate, "run", "--no-watch", "--config", fill("crossgate.yaml.in", f"{work}/crossgate.yaml", WORKERS=w, LISTEN=addr("crossgate"), BACKEND=addr("backend"), REALTIME=addr("realtime"), TLS=crossgate_tls("crossgate"))],
        "nginx": lambda w: ["nginx", "-c", fill("nginx-cors.conf.in", f"{work}/nginx-cors.conf", WORKERS=w, DIR=work, LISTEN=addr("nginx"), TLSLISTEN=tls_addr("nginx"), CERT=cert, KEY=key, BACKEND=addr("backend"), REALTIME=addr("realtime")), "-g", "daemon off;"],
        "haproxy": lambda w: ["haproxy", "-db", "-f", fill("haproxy-cors.cfg.in", f"{work}/haproxy.cfg", WORKERS=w, LISTEN=addr("haproxy"), TLSLISTEN=tls_addr("haproxy"), PEM=pem, BACKEND=addr("backend"), REALTIME=addr("realtime"))],
        "bare": lambda w: [args.bare, "--listen", addr("bare"), "--upstream", addr("backend")],
        "bare-timeouts": lambda w: [args.bare, "--listen", addr("bare-timeouts"), "--upstream", addr("backend"), "--timeouts"],
        "lean": lambda w: [args.lean, "--threads", str(w), "--listen", addr("lean"), "--tls-listen", tls_addr("lean"), "--tls-cert", cert, "--tls-key", key, "--upstream", addr("backend")],
        "lean-own": lambda w: [args.lean, "--threads", str(w), "--listen", addr("lean-own"), "--tls-listen", tls_addr("lean-own"), "--tls-cert", cert, "--tls-key", key, "--upstream", addr("backend"), "--own-loop"],
        "lean-pool": lambda w: [args.lean, "--listen", addr("lean-pool"), "--upstream", addr("backend"), "--pool"],
        "lean-timers": lambda w: [args.lean, "--listen", addr("lean-timers"), "--upstream", addr("backend"), "--pingora-timers"],
        "baseline": lambda w: [args.baseline, "run", "--no-watch", "--config", fill("crossgate.yaml.in", f"{work}/baseline.yaml", WORKERS=w, LISTEN=addr("baseline"), BACKEND=addr("backend"), REALTIME=addr("realtime"), TLS=crossgate_tls("baseline"))],
    }
    wanted = args.proxies.split(",") + (["baseline"] if args.baseline else [])
    origin = ["Origin: http://bench.example"]
    proxies = ["crossgate", "baseline", "lean", "lean-own", "lean-pool", "lean-timers", "nginx", "haproxy", "bare", "bare-timeouts"]
    scenarios = [
        ("preflight", "/api/json1k", [], os.path.join(HERE, "preflight.lua"), proxies),
        ("GET 1 KiB with Origin", "/api/json1k", origin, None, ["direct"] + proxies),
        ("GET 64 KiB with Origin", "/api/json64k", origin, None, ["direct"] + proxies),
        ("JSONP 1 KiB", "/api/json1k?callback=cb", [], None, ["crossgate", "baseline"]),
        # Every request on a new client connection (the proxies keep theirs to the backend).
        ("GET 1 KiB, new connection each", "/api/json1k", origin + ["Connection: close"], None, proxies),
        # HTTPS + HTTP/2 (ALPN h2), h2load with 16 connections of 10 streams each.
        ("HTTPS h2 GET 1 KiB, 16x10 streams", "/api/json1k", origin, "h2load", ["crossgate", "baseline", "lean", "lean-own", "nginx", "haproxy"]),
    ]
    if args.scenarios:
        scenarios = [s for s in scenarios if any(w in s[0] for w in args.scenarios.split(","))]
    results = {}
    extra = {}
    # The WebSocket, SSE and idle-WebSocket figures: every round, unless only some scenarios run.
    realtime = not args.scenarios or "realtime" in args.scenarios.split(",")
    for mode in args.modes.split(","):
        proxy_pin = 1 if mode == "pinned" else None
        client_pin = 0 if mode == "pinned" else None
        # workers2: the proxies that can run two workers, with two; wrk with two threads.
        workers = 2 if mode == "workers2" else 1
        scalable = ("crossgate", "baseline", "lean-own", "nginx", "haproxy", "direct")
        for rnd in range(args.rounds):
            for name in [n for n in proxies + ["direct"] if n in wanted and (workers == 1 or n in scalable)]:
                proc = None
                if name != "direct":
                    proc = start(configs[name](workers), name, ports[name], pin=proxy_pin)
                    pid = main_pid(proc, name)
                port = ports["backend"] if name == "direct" else ports[name]
                for scen, path, headers, script, who in scenarios:
                    if name not in who:
                        continue
                    cpu0 = cpu_seconds(pid) if proc else 0
                    if script == "h2load":
                        r = h2load(f"https://127.0.0.1:{tls_port(name)}{path}", args.duration, 16, 10, headers, client_pin)
                    else:
                        r = wrk(f"http://127.0.0.1:{port}{path}", args.duration, args.connections, headers, script, client_pin, workers)
                    cpu = (cpu_seconds(pid) - cpu0) if proc else float("nan")
                    r["cpu_us"] = cpu * 1e6 / r["requests"] if r["requests"] else float("nan")
                    r["rss_mib"] = rss_kib(pid, "VmHWM") / 1024 if proc else float("nan")
                    r["proxy_cpu"] = 100 * cpu / args.duration if proc else float("nan")
                    results.setdefault((mode, scen, name), []).append(r)
                    print(f"[{mode} round {rnd + 1}] {scen:24} {name:9} {r['rps']:>10.0f} req/s  p99 {r['p99']:>8.0f} us  cpu {r['cpu_us']:>6.1f} us/req  non-2xx {r['bad']} {r['socket_errors']}", flush=True)
                if realtime and workers == 1 and name in ("crossgate", "baseline", "nginx", "haproxy", "direct"):
                    base_url = f"ws://127.0.0.1:{ports['realtime'] if name == 'direct' else port}/ws/echo"
                    ws = loadgen(args.loadgen, "ws-echo", base_url, 20000, client_pin)
                    sse = loadgen(args.loadgen, "sse-first", f"http://127.0.0.1:{ports['realtime'] if name == 'direct' else port}/events/clock", 200, client_pin)
                    idle, idle2 = idle_ws_kib(args.loadgen, base_url, pid, args.idle_sockets, client_pin) if proc else (float("nan"), float("nan"))
                    e = extra.setdefault((mode, name), {"ws": [], "sse": [], "idle": [], "idle2": []})
                    e["ws"].append(ws)
                    e["sse"].append(sse)
                    e["idle"].append(idle)
                    e["idle2"].append(idle2)
                    print(f"[{mode} round {rnd + 1}] {name}: ws echo {ws}, sse first event {sse}, idle WebSocket {idle:.1f} KiB, a second batch {idle2:.1f}", flush=True)
                if proc:
                    proc.send_signal(signal.SIGINT)
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        # HAProxy's stop can wait on a tunnel an idle-WebSocket client left.
                        proc.kill()
                        proc.wait(10)

    report = render(results, extra, args)
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)
    # A comparison with failed requests or missing figures compares nothing: say so, exit 1.
    problems = [f"{mode} {scen} {name}: {r['requests']} requests, {r['bad']} non-2xx, socket errors '{r['socket_errors']}'"
                for (mode, scen, name), rs in results.items() for r in rs
                if r["requests"] == 0 or r["bad"] or r["socket_errors"]]
    problems += [f"{mode} {name}: no {what} figure" for (mode, name), e in extra.items()
                 for what in ("ws", "sse") if not all(e[what])]
    problems += [f"{mode} {name}: no idle WebSocket figure" for (mode, name), e in extra.items()
                 if name != "direct" and any(x != x for x in e["idle"] + e["idle2"])]
    if problems:
        sys.exit("compare: FAILED\n  " + "\n  ".join(problems))



def med(xs, key):
    vals = [x[key] for x in xs if x[key] == x[key]]
    return statistics.median(vals) if vals else float("nan")


def ratio(a, b):
    return f"{a / b:.2f}x" if b and a == a and b == b else "-"


def render(results, extra, args):
    cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    versions = {
        "nginx": subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
        "haproxy": subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout.splitlines()[0],
        "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[0] if shutil.which("wrk") else "",
        "crossgate": subprocess.run([args.crossgate, "--version"], capture_output=True, text=True).stdout.strip() + " (pingora 0.9.1)",
    }
    out = [f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC} on {os.cpu_count()} cores, {cpu_model}; "
           f"wrk 1 thread, {args.connections} connections, {args.duration} s per run, {args.rounds} alternating rounds (medians); 1 worker per proxy (workers2: 2 workers, wrk 2 threads).",
           "", "Versions: " + "; ".join(f"{k}: {v}" for k, v in versions.items()), ""]
    for mode in args.modes.split(","):
        out.append(f"### {mode}" + (" (proxy on core 1, load generator on core 0)" if mode == "pinned" else ""))
        out.append("")
        out.append("| scenario | proxy | req/s | p50 µs | p99 µs | CPU µs/req | CPU s per 100k | peak RSS MiB | req/s vs nginx | CPU vs nginx | req/s vs direct | proxy / load generator CPU % |")
        out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for scen in dict.fromkeys(k[1] for k in results if k[0] == mode):
            row = {name: results[(mode, scen, name)] for (m, s, name) in results if m == mode and s == scen}
            ngx = row.get("nginx")
            direct = row.get("direct")
            for name, rs in row.items():
                rps, cpu = med(rs, "rps"), med(rs, "cpu_us")
                out.append(
                    f"| {scen} | {name} | {rps:.0f} | {med(rs, 'p50'):.0f} | {med(rs, 'p99'):.0f} | {cpu:.1f} | {cpu / 10:.2f} | {med(rs, 'rss_mib'):.1f} | "
                    f"{ratio(rps, med(ngx, 'rps')) if ngx else '-'} | {ratio(cpu, med(ngx, 'cpu_us')) if ngx else '-'} | {ratio(rps, med(direct, 'rps')) if direct else '-'} | "
                    f"{med(rs, 'proxy_cpu'):.0f} / {med(rs, 'client_cpu'):.0f} |"
                )
        out.append("")
        if not any(m == mode for (m, _) in extra):
            continue
        out.append("| proxy | WebSocket echo p50 / p99 µs | echo msgs/s | SSE first event p50 / p99 µs | idle WebSocket KiB each | a second batch, KiB each |")
        out.append("|---|---:|---:|---:|---:|---:|")
        for (m, name), e in extra.items():
            if m != mode:
                continue
            ws, sse = [x for x in e["ws"] if x], [x for x in e["sse"] if x]
            idle = lambda k: statistics.median(e[k]) if e[k] else float("nan")
            out.append(f"| {name} | {med(ws, 'p50'):.0f} / {med(ws, 'p99'):.0f} | {med(ws, 'rate'):.0f} | "
                       f"{med(sse, 'p50'):.0f} / {med(sse, 'p99'):.0f} | {idle('idle'):.1f} | {idle('idle2'):.1f} |")
        out.append("")
    modes = args.modes.split(",")
    if "workers2" in modes and "unpinned" in modes:
        out.append("### scaling from 1 worker (unpinned) to 2 (workers2)")
        out.append("")
        out.append("| scenario | proxy | req/s, 1 worker | req/s, 2 workers | 2 / 1 | CPU µs/req, 1 | CPU µs/req, 2 |")
        out.append("|---|---|---:|---:|---:|---:|---:|")
        for (m, scen, name), rs in results.items():
            two = results.get(("workers2", scen, name))
            if m != "unpinned" or not two:
                continue
            r1, r2 = med(rs, "rps"), med(two, "rps")
            out.append(f"| {scen} | {name} | {r1:.0f} | {r2:.0f} | {ratio(r2, r1)} | {med(rs, 'cpu_us'):.1f} | {med(two, 'cpu_us'):.1f} |")
        out.append("")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
