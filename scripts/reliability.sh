#!/usr/bin/env bash
# hubsync reliability suite: crash, fault soak, database faults, fuzzing, security checks.
#
#   scripts/reliability.sh            short form (what CI runs; a few minutes on 2 cores)
#   scripts/reliability.sh --long     long form: >= 20 SIGKILLs, 5-minute soak, 10 database
#                                     outages, 10x property-test cases, and a cargo-fuzz run
#                                     of every target (needs a nightly toolchain + cargo-fuzz)
#
# Environment: HUBSYNC_RELIABILITY_SEED (kill moments and edits), HUBSYNC_RELIABILITY_KILLS,
# FUZZ_SECONDS (per target in the long form, default 300), CI=true (PostgreSQL scenarios must
# run instead of being skipped). Each scenario prints its figures on stderr (--nocapture).
set -euo pipefail
cd "$(dirname "$0")/.."

long=0
if [[ "${1:-}" == "--long" ]]; then
  long=1
  export HUBSYNC_RELIABILITY_LONG=1
  export HUBSYNC_FUZZ_CASES="${HUBSYNC_FUZZ_CASES:-10}"
fi

tests=(reliability_crash reliability_soak reliability_database reliability_stale_state security_webhooks security_secrets security_api_keys fuzz_targets)
args=()
for t in "${tests[@]}"; do args+=(--test "$t"); done

start=$(date +%s)
# One test binary at a time, one test at a time: the scenarios start real processes and
# measure API calls; running them side by side would only make them slower.
cargo test -p hubsync --no-fail-fast "${args[@]}" -- --nocapture --test-threads=1

if [[ $long == 1 ]]; then
  if cargo +nightly fuzz --version >/dev/null 2>&1; then
    secs="${FUZZ_SECONDS:-300}"
    for target in webhook_delivery webhook_signature filter_params mapping_files; do
      mkdir -p "fuzz/corpus/$target"
      (cd fuzz && cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$secs" -max_len=4096 -rss_limit_mb=4096)
    done
  else
    echo "NOTICE: cargo-fuzz or a nightly toolchain is missing; the fuzz targets ran only as property tests" >&2
  fi
  if command -v cargo-audit >/dev/null 2>&1; then
    cargo audit || echo "NOTICE: cargo audit failed (it needs to fetch the RustSec advisory DB from github.com)" >&2
  elif command -v cargo-deny >/dev/null 2>&1; then
    cargo deny check advisories || echo "NOTICE: cargo deny failed (it needs to fetch the RustSec advisory DB from github.com)" >&2
  else
    echo "NOTICE: neither cargo-audit nor cargo-deny is installed (cargo install cargo-audit)" >&2
  fi
fi
echo "reliability suite ($([[ $long == 1 ]] && echo long || echo short) form) passed in $(( $(date +%s) - start )) s"
