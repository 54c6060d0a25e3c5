#!/usr/bin/env bash
# Instructions per request under callgrind (benches/instructions.py): crossgate, the engine
# study (benches/lean_pingora.rs), the bare pingora proxy, nginx and HAProxy.
#
#   benches/instructions.sh                          # every proxy and scenario, 2,000 requests
#   benches/instructions.sh --proxies lean,nginx --scenarios "GET 1" --functions 25
#
# Installs what is missing from Debian's packages (valgrind, nginx, haproxy, nghttp2-client),
# builds the release binaries, and stops every process it started.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for tool in valgrind nginx haproxy h2load openssl python3; do
  command -v "$tool" >/dev/null || need+=("$tool")
done
if [ ${#need[@]} -gt 0 ]; then
  pkgs=()
  for t in "${need[@]}"; do
    case "$t" in h2load) pkgs+=(nghttp2-client) ;; *) pkgs+=("$t") ;; esac
  done
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${pkgs[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
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
lean=$(bench_bin lean_pingora)
[ -n "$bare" ] && [ -n "$lean" ] || { echo "could not build the bench binaries" >&2; exit 1; }
exec python3 benches/instructions.py --crossgate target/release/crossgate --bare "$bare" --lean "$lean" "$@"
