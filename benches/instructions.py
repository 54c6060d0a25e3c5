#!/usr/bin/env python3
"""Instructions per request (callgrind) for crossgate, the engine study and the peers, per
scenario: kept-alive preflight, GET 1 KiB, GET 64 KiB, a GET on a new connection each, and
HTTPS + HTTP/2 GETs on one connection. Run through benches/instructions.sh, which builds the
binaries.

Each proxy runs under `valgrind --tool=callgrind` in front of the same nginx backend (not under
valgrind). For each scenario the counts are dumped after a warm-up of WARM requests and again
after WARM + N more; the second dump holds exactly those N requests' instructions (callgrind
zeroes its counters at each dump), so start-up and warm-up are out of the figure. CPU time on
this shared machine moves 5-10% between runs; these counts move well under 1%.

With --functions K it also prints, per proxy and scenario, the K functions with the most self
instructions per request (callgrind_annotate): where the profile says the cost is.
"""

import argparse
import glob
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare  # noqa: E402  (its process helpers: start, fill, port_free, stop_all)

WARM = 20


def read_response(sock, buf=b""):
    """One HTTP/1.1 response from `sock` (Content-Length, chunked or 204); returns the leftover."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed before a response head")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    status = int(head.split(b" ", 2)[1])
    # nginx closes a connection after keepalive_requests (1,000) requests: say so.
    closing = re.search(rb"\r\nconnection:\s*close", head, re.I) is not None
    m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
    if status in (204, 304) or (100 <= status < 200):
        length = 0
    elif m:
        length = int(m.group(1))
    elif re.search(rb"\r\ntransfer-encoding:\s*chunked", head, re.I):
        while not rest.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed inside a chunked body")
            rest += chunk
        return (-status if closing else status), b""
    else:
        raise RuntimeError(f"a response without a length: {head[:200]!r}")
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed inside a body")
        rest += chunk
    return (-status if closing else status), rest[length:]


def request(path, headers, method="GET"):
    lines = [f"{method} {path} HTTP/1.1", "Host: bench.example"] + headers
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def kept_alive(port, raw, count):
    """`count` requests on one connection (a new one only where the server closes it)."""
    s, left = None, b""
    for _ in range(count):
        if s is None:
            s = socket.create_connection(("127.0.0.1", port))
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(raw)
        status, left = read_response(s, left)
        if status < 0:
            s.close()
            s, left, status = None, b"", -status
        if status >= 400:
            raise RuntimeError(f"status {status}")
    if s is not None:
        s.close()


def new_connections(port, raw, count):
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(raw)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            if not data.startswith(b"HTTP/1.1 2"):
                raise RuntimeError(f"answer {data[:80]!r}")


def h2(port, path, headers, count):
    cmd = ["h2load", "-c1", "-m1", f"-n{count}"] + [a for h in headers for a in ("-H", h)] + [f"https://127.0.0.1:{port}{path}"]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    if f"{count} succeeded" not in out:
        raise RuntimeError(f"h2load: {out[-400:]}")


ORIGIN = ["Origin: http://bench.example"]
PREFLIGHT = ORIGIN + ["Access-Control-Request-Method: PUT", "Access-Control-Request-Headers: content-type"]
# name, client(port, tls_port, count); the new-connection and h2 runs subtract a run of WARM
# (both include one connection's setup when they are h2; per-connection runs count it per request).
SCENARIOS = {
    "preflight": lambda p, t, n: kept_alive(p, request("/api/json1k", PREFLIGHT, "OPTIONS"), n),
    "GET 1 KiB": lambda p, t, n: kept_alive(p, request("/api/json1k", ORIGIN), n),
    "GET 64 KiB": lambda p, t, n: kept_alive(p, request("/api/json64k", ORIGIN), n),
    "GET 1 KiB, new connection each": lambda p, t, n: new_connections(p, request("/api/json1k", ORIGIN + ["Connection: close"]), n),
    "HTTPS h2 GET 1 KiB, one connection": lambda p, t, n: h2(t, "/api/json1k", ORIGIN, n),
}


def dump(pid, work, name):
    """Ask callgrind to dump; return the instructions counted since the last dump."""
    before = set(glob.glob(f"{work}/cg.{name}.*"))
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True, timeout=120)
    deadline = time.time() + 60
    while time.time() < deadline:
        new = sorted(set(glob.glob(f"{work}/cg.{name}.*")) - before, key=os.path.getmtime)
        for f in new:
            text = open(f).read()
            m = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
            if m:
                return int(m.group(1)), f
        time.sleep(0.05)
    sys.exit(f"no callgrind dump from {name}")


def functions(path, per):
    """(self instructions per request, function) for every function in one dump, dearest first."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", path], capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+\([\s\d.]+%\)\s+(\S.*)$", line)
        if m and "PROGRAM TOTALS" not in line:
            # Shorter names: drop the source file, keep the function and its object.
            fn = re.sub(r"^\S*?:(?=\S)", "", m.group(2), count=1) if not m.group(2).startswith("<") else m.group(2)
            rows.append((int(m.group(1).replace(",", "")) / per, fn))
    # Drop the frames that hold the whole run (main, thread start): inclusive, not self, cost.
    top = rows[0][0] if rows else 0
    return [r for r in rows if r[0] < 0.99 * top]


def copies(rows):
    """The part of a profile in memcpy/memset/memmove: callgrind counts their `rep movsb` /
    `rep stosb` once per byte, far above their share of the time."""
    return sum(per for per, fn in rows if re.search(r"mem(cpy|set|move)", fn))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--crossgate", required=True)
    ap.add_argument("--bare", required=True)
    ap.add_argument("--lean", required=True)
    ap.add_argument("--baseline", help="another crossgate binary, measured beside")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--proxies", default="nginx,haproxy,bare,bare-timeouts,lean,lean-own,lean-pool,lean-timers,crossgate")
    ap.add_argument("--scenarios", default="", help="only the scenarios whose names contain one of these")
    ap.add_argument("--functions", type=int, default=0, help="also list the top K functions by self instructions")
    ap.add_argument("--port-base", type=int, default=18300)
    ap.add_argument("--out", help="also write the report (Markdown) here")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="crossgate-callgrind-")
    os.chmod(work, 0o755)
    os.makedirs(f"{work}/www/api")
    os.makedirs(f"{work}/nginx-tmp")
    item = '{"id":1,"name":"Ada Lovelace","email":"ada@example.com","active":true,"tags":["a","b"]},'
    for name, size in [("json1k", 1024), ("json64k", 65536)]:
        body = ("[" + item * (size // len(item) + 1))[: size - 2] + "{}]"
        with open(f"{work}/www/api/{name}", "w") as f:
            f.write(body[:size])
    cert, key, pem = compare.self_signed(work)
    base = args.port_base
    port = {"backend": base, "realtime": base + 1}
    names = args.proxies.split(",") + (["baseline"] if args.baseline else [])
    for i, n in enumerate(names):
        port[n] = base + 10 + i
    tls = lambda n: port[n] + 50
    addr = lambda n: f"127.0.0.1:{port[n]}"
    taddr = lambda n: f"127.0.0.1:{tls(n)}"
    busy = [f"{n} ({p})" for n, p in port.items() for p in (p, p + 50) if not compare.port_free(p)]
    if busy:
        sys.exit(f"ports busy: {', '.join(busy)}; pass --port-base")
    compare.start(["nginx", "-c", compare.fill("nginx-backend.conf.in", f"{work}/backend.conf", DIR=work, LISTEN=addr("backend")), "-g", "daemon off;"], "backend", port["backend"])
    compare.start([args.crossgate, "backend", "--listen", addr("realtime")], "realtime backend", port["realtime"])
    cg_tls = lambda n: f"\ntls:\n  - {{listen: {taddr(n)}, cert: {cert}, key: {key}, http2: true}}\n"
    commands = {
        "nginx": lambda: ["nginx", "-c", compare.fill("nginx-cors.conf.in", f"{work}/nginx.conf", WORKERS=1, DIR=work, LISTEN=addr("nginx"), TLSLISTEN=taddr("nginx"), CERT=cert, KEY=key, BACKEND=addr("backend"), REALTIME=addr("realtime")), "-g", "daemon off; master_process off;"],
        "haproxy": lambda: ["haproxy", "-db", "-f", compare.fill("haproxy-cors.cfg.in", f"{work}/haproxy.cfg", WORKERS=1, LISTEN=addr("haproxy"), TLSLISTEN=taddr("haproxy"), PEM=pem, BACKEND=addr("backend"), REALTIME=addr("realtime"))],
        "bare": lambda: [args.bare, "--listen", addr("bare"), "--upstream", addr("backend")],
        "bare-timeouts": lambda: [args.bare, "--listen", addr("bare-timeouts"), "--upstream", addr("backend"), "--timeouts"],
        "lean": lambda: [args.lean, "--listen", addr("lean"), "--tls-listen", taddr("lean"), "--tls-cert", cert, "--tls-key", key, "--upstream", addr("backend")],
        "lean-own": lambda: [args.lean, "--listen", addr("lean-own"), "--tls-listen", taddr("lean-own"), "--tls-cert", cert, "--tls-key", key, "--upstream", addr("backend"), "--own-loop"],
        "lean-pool": lambda: [args.lean, "--listen", addr("lean-pool"), "--upstream", addr("backend"), "--pool"],
        "lean-timers": lambda: [args.lean, "--listen", addr("lean-timers"), "--upstream", addr("backend"), "--pingora-timers"],
        "crossgate": lambda: [args.crossgate, "run", "--no-watch", "--config", compare.fill("crossgate.yaml.in", f"{work}/crossgate.yaml", WORKERS=1, LISTEN=addr("crossgate"), BACKEND=addr("backend"), REALTIME=addr("realtime"), TLS=cg_tls("crossgate"))],
        "baseline": lambda: [args.baseline, "run", "--no-watch", "--config", compare.fill("crossgate.yaml.in", f"{work}/baseline.yaml", WORKERS=1, LISTEN=addr("baseline"), BACKEND=addr("backend"), REALTIME=addr("realtime"), TLS=cg_tls("baseline"))],
    }
    has_tls = {"nginx", "haproxy", "lean", "lean-own", "crossgate", "baseline"}
    scenarios = [s for s in SCENARIOS if not args.scenarios or any(w in s for w in args.scenarios.split(","))]
    n = args.requests
    results, tops, copied = {}, {}, {}
    for name in names:
        # Names uncompressed: each dump must be readable on its own by callgrind_annotate.
        cmd = ["valgrind", "--tool=callgrind", "--compress-strings=no", "--compress-pos=no", f"--callgrind-out-file={work}/cg.{name}.%p.out"] + commands[name]()
        proc = compare.start(cmd, f"{name} under callgrind", port[name], timeout=120)
        for scen in scenarios:
            if "h2" in scen and name not in has_tls:
                continue
            client = SCENARIOS[scen]
            client(port[name], tls(name), WARM)
            dump(proc.pid, work, name)
            if "h2" in scen:
                # Both runs set up one TLS connection: subtract the short one. nginx closes an
                # HTTP/2 connection after 1,000 requests (http2_max_requests), so fewer here.
                count = min(n, 900)
                client(port[name], tls(name), WARM)
                short, _ = dump(proc.pid, work, name)
                client(port[name], tls(name), WARM + count)
                total, f = dump(proc.pid, work, name)
                total -= short
            else:
                count = n
                client(port[name], tls(name), n)
                total, f = dump(proc.pid, work, name)
            results[(scen, name)] = total / count
            rows = functions(f, count)
            copied[(scen, name)] = copies(rows)
            if args.functions:
                tops[(scen, name)] = rows[: args.functions]
            print(f"{scen:36} {name:14} {total / count:>10,.0f} instructions per request", flush=True)
        proc.send_signal(2)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()

    out = ["| scenario | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for scen in scenarios:
        cells = [f"{results[(scen, nm)]:,.0f}" if (scen, nm) in results else "-" for nm in names]
        out.append(f"| {scen} | " + " | ".join(cells) + " |")
    out += ["", "Of which memcpy, memset and memmove (callgrind counts their `rep` forms once per byte):", "",
            "| scenario | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for scen in scenarios:
        cells = [f"{copied[(scen, nm)]:,.0f}" if (scen, nm) in copied else "-" for nm in names]
        out.append(f"| {scen} | " + " | ".join(cells) + " |")
    report = f"Instructions per request (callgrind, {n} requests after {WARM} warm-up, HTTP/2 {min(n, 900)}; `benches/instructions.sh`):\n\n" + "\n".join(out) + "\n"
    for (scen, name), rows in tops.items():
        report += f"\n{name}, {scen}: top functions by self instructions per request\n\n"
        report += "\n".join(f"    {per:>9,.0f}  {fn}" for per, fn in rows) + "\n"
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)


if __name__ == "__main__":
    main()
