#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 30) from its committed corpus.
# libFuzzer needs a few unstable rustc flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain take
# them. `-s none`: the targets are safe Rust, so AddressSanitizer would add build time and no
# findings; panics and failed assertions are what they catch.
#   fuzz/run.sh 30           # all targets, 30 s each
#   fuzz/run.sh 600 config   # one target, 10 minutes
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config origin callback jsonp_wrapper path chunked wire_request wire_response wire_differential)
command -v cargo-fuzz >/dev/null || {
  echo "cargo-fuzz is missing: install it with 'cargo install cargo-fuzz --locked'" >&2
  exit 1
}
export RUSTC_BOOTSTRAP=1
cargo fuzz build -s none
for t in "${targets[@]}"; do
  echo "fuzz: $t for ${seconds}s"
  # New inputs go to a scratch copy so that a run does not dirty the committed corpus.
  scratch=$(mktemp -d)
  cp -r "corpus/$t/." "$scratch/"
  log="$scratch.log"
  status=0
  cargo fuzz run -s none "$t" "$scratch" -- -max_total_time="$seconds" >"$log" 2>&1 || status=$?
  grep -E '^(Done|INFO: seed corpus)|panicked|ERROR|SUMMARY|^ +[0-9]+: ' "$log" || true
  rm -rf "$scratch" "$log"
  if [ "$status" -ne 0 ]; then
    echo "fuzz: $t failed; the input is in fuzz/artifacts/$t/ (replay: RUSTC_BOOTSTRAP=1 cargo fuzz run -s none $t <file>)" >&2
    exit "$status"
  fi
done
