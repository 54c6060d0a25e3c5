#!/usr/bin/env bash
# Load comparison of crossgate, nginx, HAProxy, a bare pingora passthrough and the backend
# directly, each doing the same CORS job with one worker. Prints one table.
#
#   benches/compare.sh                       # defaults: 10 s per run, 2 rounds, unpinned and pinned
#   benches/compare.sh --duration 5 --rounds 1 --modes unpinned --out /tmp/report.md
#
# Installs what is missing from Debian's packages (nginx, haproxy, wrk; needs root or sudo),
# builds crossgate and the bench binaries in release mode, and stops every process it started.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for tool in nginx haproxy wrk h2load openssl taskset python3; do
  command -v "$tool" >/dev/null || need+=("$tool")
done
if [ ${#need[@]} -gt 0 ]; then
  pkgs=()
  for t in "${need[@]}"; do
    case "$t" in taskset) pkgs+=(util-linux) ;; h2load) pkgs+=(nghttp2-client) ;; *) pkgs+=("$t") ;; esac
  done
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${pkgs[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
# Debian starts nginx and haproxy as services on install: this script runs its own.
for svc in nginx haproxy; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    echo "note: the $svc service is running; the benchmark uses its own ports and processes" >&2
  fi
done

cargo build --release --locked --bin crossgate
bench_bin() {
  cargo bench --locked --no-run --bench "$1" --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$1" | tail -n 1
}
bare=$(bench_bin bare_pingora)
loadgen=$(bench_bin loadgen)
lean=$(bench_bin lean_pingora)
[ -n "$bare" ] && [ -n "$loadgen" ] && [ -n "$lean" ] || { echo "could not build the bench binaries" >&2; exit 1; }

# Idle-WebSocket runs hold thousands of sockets; HAProxy sizes itself from maxconn.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec python3 benches/compare.py --crossgate target/release/crossgate --bare "$bare" --loadgen "$loadgen" --lean "$lean" "$@"
