#!/usr/bin/env bash
# Soak: mixed traffic (CORS GETs, preflights, JSONP, SSE streams, WebSocket churn) and a config
# reload every 3 s through a release build of crossgate, for SECONDS (default 600); then a
# report of requests, errors, and the proxy's RSS and open descriptors at the start and the
# end, written to benches/SOAK.md. Exit 1 on any error or growth. Not part of CI.
#
#   benches/soak.sh          # 10 minutes
#   benches/soak.sh 120      # 2 minutes
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
cargo build --release --locked --bin crossgate
soak=$(cargo bench --locked --no-run --bench soak --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "soak":
        print(m["executable"])' | tail -n 1)
[ -n "$soak" ] || { echo "could not build the soak binary" >&2; exit 1; }
exec "$soak" target/release/crossgate "$seconds" benches/SOAK.md
