#!/usr/bin/env bash
# Runs the `decode` criterion bench, then prints ns per message and per
# prefix for each decoder from the saved estimates, and bgpkit/ours ratios.
#
# Usage: bash bgp-core/benches/ns_per_prefix.sh [extra criterion args]
# Set SKIP_RUN=1 to only print the table from the last run.
set -euo pipefail

cd "$(dirname "$0")/../.."

if [[ -z "${SKIP_RUN:-}" ]]; then
    # Criterion prints the prefix counts at setup on stderr.
    cargo bench -p bgp-core --bench decode -- --noplot "$@"
fi

target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

python3 - "$target_dir/criterion" <<'EOF'
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1])
groups = ["ipv4_max_26", "ipv4_mixed", "ipv6_mp_reach"]
ours, theirs = "bgp-core", "bgpkit"


def load(group, fn):
    base = root / group / fn / "new"
    try:
        est = json.loads((base / "estimates.json").read_text())
        bench = json.loads((base / "benchmark.json").read_text())
    except FileNotFoundError:
        return None
    prefixes = (bench.get("throughput") or {}).get("Elements")
    return est["mean"]["point_estimate"], prefixes


print(f"{'benchmark':<26} {'ns/msg':>10} {'prefixes':>9} {'ns/prefix':>10} {'bgpkit/ours':>12}")
for group in groups:
    rows = {fn: load(group, fn) for fn in (ours, theirs)}
    ratio = ""
    if rows[ours] and rows[theirs]:
        ratio = f"{rows[theirs][0] / rows[ours][0]:.2f}x"
    for fn in (ours, theirs):
        row = rows[fn]
        if row is None:
            print(f"{group + '/' + fn:<26} {'(missing)':>10}")
            continue
        ns, prefixes = row
        per = f"{ns / prefixes:.2f}" if prefixes else "-"
        print(
            f"{group + '/' + fn:<26} {ns:>10.0f} {prefixes or '-':>9} {per:>10}"
            f" {ratio if fn == theirs else '':>12}"
        )
EOF
