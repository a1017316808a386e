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

step "cargo doc (warnings denied) and cargo package of every publishable crate"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
# Publishable: every member without `publish = false`. Packaged in one
# command so each is verified (built from its .crate) against the others'
# packages rather than crates.io, where they are not published yet.
# --allow-dirty: a local run with uncommitted changes checks those too.
packages=()
for name in $(cargo metadata --no-deps --format-version 1 --locked |
    python3 -c 'import json, sys
for p in json.load(sys.stdin)["packages"]:
    if p["publish"] != []:
        print(p["name"])'); do
    packages+=(-p "$name")
done
if [ ${#packages[@]} -eq 0 ]; then
    echo "no publishable crate found in cargo metadata" >&2
    exit 1
fi
# cargo package verifies each crate against the others' tarballs through a
# local registry under target/package, and cargo extracts such a registry
# into $CARGO_HOME/registry/src/-<hash of its path>/ once: a clone at the same
# path as an earlier run would verify against that run's sources (seen: ipip
# built against a podroute-netlink without the modules added since). Those
# extractions are caches of our own crates only; drop them.
rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/
cargo package --locked --allow-dirty "${packages[@]}"

step "fuzzing every target for ${FUZZ_SECONDS:-30} s"
fuzz/run.sh "${FUZZ_SECONDS:-30}"

step "cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
# One closing line over every test binary and doc-test run.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "cargo-test: %d passed, %d failed\n", p, f }' "$log"
