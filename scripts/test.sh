#!/usr/bin/env bash
# The project's one test command (README "Test"). CI runs it through
# .ci/run as root with CI=true on a fresh machine, so it installs what the
# tests need, then runs: fmt, clippy (warnings denied), the deploy/ checks
# (Kubernetes schemas, Dockerfile lint), every test, and a bounded fuzz run
# of every target.
#
# FUZZ_SECONDS (default 30) sets the time per fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "installing test dependencies"
scripts/install-deps.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "bgp-core without the speaker feature: the codec, engine and RIB alone, no tokio"
cargo clippy -p bgp-core --no-default-features --locked -- -D warnings
if cargo tree -p bgp-core --no-default-features -e normal --locked | grep -q '\btokio\b'; then
    echo "bgp-core --no-default-features depends on tokio:" >&2
    cargo tree -p bgp-core --no-default-features -e normal -i tokio --locked >&2
    exit 1
fi

step "deploy/: manifests against the Kubernetes schemas, Dockerfile lint"
deploy/validate.sh

step "fuzzing every target for ${FUZZ_SECONDS:-30} s"
fuzz/run.sh "${FUZZ_SECONDS:-30}"

step "cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
# One closing line over every test binary and doc-test run.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "cargo-test: %d passed, %d failed\n", p, f }' "$log"
