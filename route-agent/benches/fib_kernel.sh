#!/usr/bin/env bash
# Benchmark (not a timed test): what the kernel's side of an install costs
# for the same N IPv4 /26 routes sent the same way (batched netlink, 200
# requests per send, ACK on the last), changing only
#   - the order: by destination (`sorted`) or bit-reversed (`spread`, what
#     the reconciler sends), and
#   - the route form: gateway and device in every route, or a shared
#     nexthop object (`ip nexthop`, RTA_NH_ID; kernel >= 5.3), which the
#     reconciler does NOT use (see benches/README.md).
# Each case runs ROUNDS times, each in a fresh network namespace; the
# request time only (no dump, no diff), wall clock and CPU.
#
# Usage, as root:  route-agent/benches/fib_kernel.sh [N=100000] [ROUNDS=3]
set -euo pipefail

N=${1:-100000}
ROUNDS=${2:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
(cd "$ROOT" && cargo build --release --quiet -p route-agent --example fib_install)
BIN=$ROOT/target/release/examples/fib_install
PREFIX=rakern-$$
NAMESPACES=()

cleanup() {
    for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT

fresh_ns() {
    local ns=$PREFIX-$1
    NAMESPACES+=("$ns")
    ip netns add "$ns"
    ip -n "$ns" link add veth0 type veth peer name veth1
    ip -n "$ns" addr add 10.66.0.5/24 dev veth0
    ip -n "$ns" link set veth0 up
    ip -n "$ns" link set veth1 up
}

echo "$N IPv4 /26 routes via 10.66.0.6 dev veth0 onlink, $(uname -r), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '| %-8s | %-24s | %-24s | %-24s |\n' order "route form" "wall s (each round)" "CPU s (each round)"
printf '|%s|%s|%s|%s|\n' ---------- -------------------------- -------------------------- --------------------------
run=0
for order in sorted spread; do
    for form in gateway nhid; do
        walls=() cpus=()
        for ((r = 0; r < ROUNDS; r++)); do
            run=$((run + 1))
            fresh_ns "$run"
            ns=$PREFIX-$run
            args=(raw "$N" "$order")
            if [[ $form == nhid ]]; then
                ip -n "$ns" nexthop add id 1 via 10.66.0.6 dev veth0 onlink
                args+=(1)
            fi
            out=$(ip netns exec "$ns" "$BIN" "${args[@]}")
            got=$(ip -n "$ns" route show proto 98 | wc -l)
            if [[ $got -ne $N ]]; then
                echo "$order/$form: $got routes in the table, expected $N" >&2
                exit 1
            fi
            walls+=("$(awk '{print $2}' <<<"$out")")
            cpus+=("$(awk '{print $5}' <<<"$out")")
            ip netns del "$ns"
        done
        printf '| %-8s | %-24s | %-24s | %-24s |\n' "$order" \
            "$([[ $form == nhid ]] && echo "nhid 1 (shared object)" || echo "via 10.66.0.6 dev veth0")" \
            "${walls[*]}" "${cpus[*]}"
    done
done
