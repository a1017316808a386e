#!/usr/bin/env bash
# Benchmark (not a timed test): convergence of one node of a simulated
# cluster. A route reflector (examples/routegen.rs, an iBGP peer in its own
# namespace) sends N /26 pod blocks, two per simulated node (N/2 distinct
# next hops, all on the node's /16 underlay, so every route is a direct
# `B via NH dev eth0 onlink`), then End-of-RIB. Measured: from the session
# reaching Established (the generator's timestamp: it is Established when
# the node's KEEPALIVE arrives) until the node's kernel main table holds
# all N routes (a netlink listener in the node's namespace counting route
# notifications: `fib_install watch`). Side by side in one run, each in
# fresh namespaces:
#   - ours: the release `route-agent run` binary, default config but for
#     the pool (ipip-mode never: direct routes only, no tunnel device) and
#     the peer; graceful restart enabled as by default (a first start with
#     no routes of ours in the kernel, so nothing waits for End-of-RIB),
#     `nexthop-objects: auto` as by default (kernel nexthop objects above
#     1,000 gateway routes), and again with `nexthop-objects: false`
#     (gateway routes, Calico's shapes);
#   - BIRD 2 as the node: the same BGP session (graceful restart on,
#     `gateway direct`) and its kernel protocol exporting to the main table.
# Three cluster shapes, each ROUNDS times:
#   - "per node": N/2 next hops, so one UPDATE per simulated node (2
#     prefixes each), as a reflector sends a Calico cluster's blocks;
#   - "one next hop": the same N prefixes behind a single next hop, packed
#     810 per UPDATE (a control: the same routes in 13 UPDATEs);
#   - "two reflectors": "per node" from two redundant reflectors at once
#     (the second, 10.80.255.253, listens and the node connects to it), as
#     a node peered with both of a cluster's reflectors sees them; timed
#     from the first of the two sessions reaching Established.
#
# Usage, as root:  route-agent/benches/convergence.sh [N=10000] [ROUNDS=3]
# (AGENT=/path/to/route-agent measures another build of the agent.)
set -euo pipefail

N=${1:-10000}
ROUNDS=${2:-3}
NODES=$((N / 2))
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
(cd "$ROOT" && cargo build --release --quiet -p route-agent --bin route-agent --example fib_install)
(cd "$ROOT" && cargo build --release --quiet -p podroute-examples --example routegen)
AGENT=${AGENT:-$ROOT/target/release/route-agent}
WATCH=$ROOT/target/release/examples/fib_install
ROUTEGEN=$ROOT/target/release/examples/routegen
WORK=$(mktemp -d)
PREFIX=racv-$$
NAMESPACES=()
PIDS=()

NODE_IP=10.80.0.1
RR_IP=10.80.255.254
# The second reflector of the "two reflectors" shape, in the same namespace.
RR2_IP=10.80.255.253
# Simulated nodes 10.80.1.0 … 10.80.20.135 (5,000 addresses): neither the
# node's nor the reflector's.
FIRST_NH=10.80.1.0

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [[ -f $WORK/bird.pid ]]; then kill "$(cat "$WORK/bird.pid")" 2>/dev/null || true; fi
    sleep 0.2
    for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# Two namespaces: NAME-node (eth0 10.80.0.1/16) and NAME-rr (eth0
# 10.80.255.254/16), joined by a veth pair.
fresh_pair() {
    local node=$PREFIX-$1-node rr=$PREFIX-$1-rr
    NAMESPACES+=("$node" "$rr")
    ip netns add "$node"
    ip netns add "$rr"
    ip -n "$node" link add eth0 type veth peer name eth0 netns "$rr"
    ip -n "$node" addr add $NODE_IP/16 dev eth0
    ip -n "$rr" addr add $RR_IP/16 dev eth0
    ip -n "$rr" addr add $RR2_IP/16 dev eth0
    for ns in "$node" "$rr"; do
        ip -n "$ns" link set lo up
        ip -n "$ns" link set eth0 up
    done
}

# Ends a finished run without leaving the kernel work for the next one:
# deleting a namespace that holds 10,000 routes (and a BIRD that withdraws
# its routes on a clean stop) keeps the kernel busy under the RTNL lock
# for a few hundred milliseconds, which the next run would wait for (seen
# as installs taking 0.23 s of wall time on 0.03 s of CPU). So the
# namespaces stay until the script exits (the EXIT trap deletes them) and
# BIRD is stopped with SIGKILL.

# Starts the listener in the node namespace and waits until it is
# subscribed. Its output goes to $WORK/$1.watch.
start_watch() {
    local name=$1 protocol=$2
    : >"$WORK/$name.watch"
    ip netns exec "$PREFIX-$name-node" "$WATCH" watch "$N" "$protocol" >"$WORK/$name.watch" 2>&1 &
    PIDS+=($!)
    until grep -q '^watch: ready' "$WORK/$name.watch"; do
        if ! kill -0 "${PIDS[-1]}" 2>/dev/null; then
            cat "$WORK/$name.watch" >&2
            exit 1
        fi
        sleep 0.01
    done
}

start_routegen() {
    local name=$1
    ip netns exec "$PREFIX-$name-rr" "$ROUTEGEN" --connect $NODE_IP:179 --local-as 64512 \
        --router-id $RR_IP --count "$N" --next-hop $FIRST_NH --next-hops "$NEXT_HOPS" \
        --start 10.128.0.0 --prefix-len 26 2>"$WORK/$name.routegen" &
    PIDS+=($!)
}

# The second reflector (shape "two reflectors"): listens, the node connects.
# Started before the node so its first connect succeeds.
start_routegen2() {
    local name=$1
    : >"$WORK/$name.routegen2"
    [[ $REFLECTORS == 2 ]] || return 0
    ip netns exec "$PREFIX-$name-rr" "$ROUTEGEN" --listen $RR2_IP:179 --local-as 64512 \
        --router-id $RR2_IP --count "$N" --next-hop $FIRST_NH --next-hops "$NEXT_HOPS" \
        --start 10.128.0.0 --prefix-len 26 2>"$WORK/$name.routegen2" &
    PIDS+=($!)
    until grep -q 'listening' "$WORK/$name.routegen2"; do sleep 0.01; done
}

# The node's peers in route-agent's config.
agent_peers() {
    printf '  - address: %s\n    asn: 64512\n    passive: true\n' $RR_IP
    if [[ $REFLECTORS == 2 ]]; then
        printf '  - address: %s\n    asn: 64512\n' $RR2_IP
    fi
}

# The node's BGP protocols in BIRD's config.
bird_peers() {
    cat <<BIRD
protocol bgp reflector {
    local $NODE_IP as 64512;
    neighbor $RR_IP as 64512;
    passive on;
    direct;
    graceful restart on;
    ipv4 { import all; export none; gateway direct; };
}
BIRD
    if [[ $REFLECTORS == 2 ]]; then
        cat <<BIRD
protocol bgp reflectortwo {
    local $NODE_IP as 64512;
    neighbor $RR2_IP as 64512;
    direct;
    graceful restart on;
    ipv4 { import all; export none; gateway direct; };
}
BIRD
    fi
}

# Waits (up to 60 s) for the listener to see all N, then sets RESULT to
# "established_ns first_ns all_ns sent_ns". (No subshells anywhere: the
# namespaces and processes a run makes must land in this shell's arrays,
# which the EXIT trap cleans up.)
finish() {
    local name=$1 pid=$2
    for _ in $(seq 6000); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.01
    done
    if ! grep -q '^watch: first_ns' "$WORK/$name.watch"; then
        echo "$name: not all $N routes in the kernel after 60 s" >&2
        cat "$WORK/$name.watch" "$WORK/$name.routegen" >&2
        [[ -f $WORK/$name.log ]] && tail -20 "$WORK/$name.log" >&2
        exit 1
    fi
    local est est2 sent first all
    est=$(sed -n 's/^routegen: established at_ns=\([0-9]*\).*/\1/p' "$WORK/$name.routegen")
    est2=$(sed -n 's/^routegen: established at_ns=\([0-9]*\).*/\1/p' "$WORK/$name.routegen2" 2>/dev/null || true)
    sent=$(sed -n 's/^routegen: sent .* at_ns=\([0-9]*\).*/\1/p' "$WORK/$name.routegen")
    # Two reflectors: from whichever session came up first (the other may
    # still be connecting when all routes are in).
    if [[ -n $est2 && ( -z $est || $est2 -lt $est ) ]]; then
        est=$est2
        sent=$(sed -n 's/^routegen: sent .* at_ns=\([0-9]*\).*/\1/p' "$WORK/$name.routegen2")
    fi
    first=$(sed -n 's/^watch: first_ns=\([0-9]*\).*/\1/p' "$WORK/$name.watch")
    all=$(sed -n 's/^watch: .* all_ns=\([0-9]*\).*/\1/p' "$WORK/$name.watch")
    RESULT="$est $first $all ${sent:-0}"
}

ms() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", (b - a) / 1e6}'; }

run_agent() {
    local name=agent-$1
    local nexthops=${2:-auto}
    fresh_pair "$name"
    cat >"$WORK/$name.yaml" <<YAML
node:
  name: bench-node
  address: $NODE_IP/16
asn: 64512
pools:
  - cidr: 10.128.0.0/12
    ipip-mode: never
peers:
$(agent_peers)
admin:
  listen: 127.0.0.1:9179
nexthop-objects: $nexthops
YAML
    start_watch "$name" 98
    local watch_pid=${PIDS[-1]}
    start_routegen2 "$name"
    ip netns exec "$PREFIX-$name-node" env ROUTE_AGENT_LOG=info ${PERF_AGENT:+perf record -g -o "$PERF_AGENT"} "$AGENT" run \
        --config "$WORK/$name.yaml" --log-format json >"$WORK/$name.log" 2>&1 &
    local agent_pid=$!
    PIDS+=("$agent_pid")
    start_routegen "$name"
    local rg_pid=${PIDS[-1]}
    finish "$name" "$watch_pid"
    kill "$rg_pid" "$agent_pid" 2>/dev/null || true
    wait "$rg_pid" "$agent_pid" 2>/dev/null || true
    echo "  $name: $(grep -c 'kernel routes reconciled' "$WORK/$name.log") reconcile passes that changed routes" >&2
    if [[ -n ${KEEP_LOG:-} ]]; then cp "$WORK/$name.log" "$KEEP_LOG"; fi
}

run_bird() {
    local name=bird-$1
    fresh_pair "$name"
    cat >"$WORK/$name.conf" <<BIRD
router id $NODE_IP;
log "$WORK/$name.log" all;
timeformat log "%F %T.%6f";
protocol device {}
protocol kernel kernfib { ipv4 { export all; import none; }; }
$(bird_peers)
BIRD
    start_watch "$name" 12
    local watch_pid=${PIDS[-1]}
    start_routegen2 "$name"
    ip netns exec "$PREFIX-$name-node" bird -c "$WORK/$name.conf" -s "$WORK/$name.ctl" -P "$WORK/bird.pid"
    start_routegen "$name"
    local rg_pid=${PIDS[-1]}
    finish "$name" "$watch_pid"
    kill "$rg_pid" 2>/dev/null || true
    wait "$rg_pid" 2>/dev/null || true
    kill -KILL "$(cat "$WORK/bird.pid")" 2>/dev/null || true
    rm -f "$WORK/bird.pid"
}

# A namespace deleted shortly before (this script's last run or another
# benchmark's) is torn down by the kernel in the background, under the RTNL
# lock every method here needs: with 100,000 routes in it that takes
# seconds. Let it finish first (SETTLE seconds).
sleep "${SETTLE:-5}"
declare -a ROWS
SHAPES=("per node" "one next hop" "two reflectors")
for shape in "${SHAPES[@]}"; do
    NEXT_HOPS=$NODES
    [[ $shape == "one next hop" ]] && NEXT_HOPS=1
    REFLECTORS=1
    [[ $shape == "two reflectors" ]] && REFLECTORS=2
    for ((r = 1; r <= ROUNDS; r++)); do
        run_agent "r$r-h$NEXT_HOPS-rr$REFLECTORS"
        read -r est first all sent <<<"$RESULT"
        ROWS+=("ours|$shape|$r|$(ms "$est" "$first")|$(ms "$est" "$all")|$(ms "$est" "$sent")")
        run_agent "gw-r$r-h$NEXT_HOPS-rr$REFLECTORS" false
        read -r est first all sent <<<"$RESULT"
        ROWS+=("oursgw|$shape|$r|$(ms "$est" "$first")|$(ms "$est" "$all")|$(ms "$est" "$sent")")
        run_bird "r$r-h$NEXT_HOPS-rr$REFLECTORS"
        read -r est first all sent <<<"$RESULT"
        ROWS+=("bird|$shape|$r|$(ms "$est" "$first")|$(ms "$est" "$all")|$(ms "$est" "$sent")")
    done
done
echo
echo "$N /26 routes from one iBGP reflector (two in the last shape), direct routes (next hops on the node's /16), $(uname -r), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "times in ms from Established (generator's clock = node's clock)"
printf '| %-36s | %-12s | %5s | %11s | %16s | %14s |\n' node "next hops" round "first route" "all $N routes" "generator done"
printf '|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..38})" -------------- ------- ------------- ------------------ ----------------
for row in "${ROWS[@]}"; do
    IFS='|' read -r who shape r first all sent <<<"$row"
    label="ours (default: nexthop-objects auto)"
    [[ $who == oursgw ]] && label="ours, nexthop-objects: false"
    [[ $who == bird ]] && label="BIRD $(bird --version 2>&1 | awk '{print $3}') (BGP + kernel protocol)"
    hops=$NODES
    [[ $shape == "one next hop" ]] && hops=1
    [[ $shape == "two reflectors" ]] && hops="$NODES x2 RR"
    printf '| %-36s | %-12s | %5s | %11s | %16s | %14s |\n' "$label" "$hops" "$r" "$first" "$all" "$sent"
done
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
# The "all N" column of the rows of one node and shape.
column() {
    local row who sh all
    for row in "${ROWS[@]}"; do
        IFS='|' read -r who sh _ _ all _ <<<"$row"
        if [[ $who == "$1" && $sh == "$2" ]]; then echo "$all"; fi
    done
}
echo
for shape in "${SHAPES[@]}"; do
    ours=$(column ours "$shape" | median)
    oursgw=$(column oursgw "$shape" | median)
    bird=$(column bird "$shape" | median)
    echo "$shape: median Established -> all $N routes: ours $ours ms, ours with gateway routes (nexthop-objects: false) $oursgw ms, BIRD $bird ms; ours/BIRD = $(awk -v o="$ours" -v b="$bird" 'BEGIN {printf "%.2f", o / b}')x, with gateway routes $(awk -v o="$oursgw" -v b="$bird" 'BEGIN {printf "%.2f", o / b}')x (goal: ours <= 100 ms)"
done
