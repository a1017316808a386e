#!/usr/bin/env bash
# Soak (not a timed test): the same convergence run, repeated, to find the
# rounds that stray. One node (the release `route-agent run`, default
# config but for the pool and the peer: graceful restart on, a first
# start, `nexthop-objects: auto`) and a route reflector
# (examples/routegen.rs) in namespaces of their own, joined by a veth, as
# in benches/convergence.sh's "one next hop" shape: N /26 routes behind a
# single next hop, packed 810 per UPDATE, then End-of-RIB. Measured per
# round: from the session reaching Established (the generator's clock)
# until the node's main table holds all N routes (`fib_install watch`).
#
# Every round gets fresh namespaces; they are deleted after the round and
# the kernel is given SETTLE seconds (default 5) to tear them down before
# the next one starts (a namespace with 100,000 routes takes the RTNL lock
# for a while as it goes, and the next round would wait for it). A round
# that does not have every route after 60 s is a failure (the number of
# routes the node's kernel holds then is kept with the watch's output: a
# full table means the finish line missed them); the soak goes on.
#
# At the end: every round's time, the median and the worst, and every
# round that failed or took more than 3x the median, with what the agent
# logged in it (ROUTE_AGENT_LOG=info,route_agent=debug: plans, reconcile
# passes and their time). The logs of those rounds are kept in
# $KEEP (default /tmp/soak-logs-PID).
#
# Usage, as root:  route-agent/benches/soak.sh [ROUNDS=30] [N=100000]
# (AGENT=/path/to/route-agent soaks another build of the agent.)
set -euo pipefail

ROUNDS=${1:-30}
N=${2:-100000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
(cd "$ROOT" && cargo build --release --quiet -p route-agent --bin route-agent --example fib_install)
(cd "$ROOT" && cargo build --release --quiet -p podroute-examples --example routegen)
AGENT=${AGENT:-$ROOT/target/release/route-agent}
WATCH=$ROOT/target/release/examples/fib_install
ROUTEGEN=$ROOT/target/release/examples/routegen
WORK=$(mktemp -d)
KEEP=${KEEP:-/tmp/soak-logs-$$}
PREFIX=rasoak-$$
NAMESPACES=()
PIDS=()

NODE_IP=10.82.0.1
RR_IP=10.82.255.254
NEXT_HOP=10.82.1.0
# 100,000 /26s from 10.128.0.0 reach 10.225.168.0: the pool is a /9.
POOL=10.128.0.0/9

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    sleep 0.2
    for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# Ends a round: its processes and namespaces go, and the kernel gets
# SETTLE seconds to finish tearing them down.
end_round() {
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
    for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    NAMESPACES=()
    sleep "${SETTLE:-5}"
}

# One round: sets ROUND_MS to the time in ms, or "fail".
round() {
    local r=$1 node=$PREFIX-$1-node rr=$PREFIX-$1-rr
    NAMESPACES+=("$node" "$rr")
    ip netns add "$node"
    ip netns add "$rr"
    ip -n "$node" link add eth0 type veth peer name eth0 netns "$rr"
    ip -n "$node" addr add $NODE_IP/16 dev eth0
    ip -n "$rr" addr add $RR_IP/16 dev eth0
    for ns in "$node" "$rr"; do
        ip -n "$ns" link set lo up
        ip -n "$ns" link set eth0 up
    done
    cat >"$WORK/agent.yaml" <<YAML
node:
  name: soak-node
  address: $NODE_IP/16
asn: 64512
pools:
  - cidr: $POOL
    ipip-mode: never
peers:
  - address: $RR_IP
    asn: 64512
    passive: true
YAML
    : >"$WORK/watch"
    ip netns exec "$node" "$WATCH" watch "$N" 98 >"$WORK/watch" 2>&1 &
    PIDS+=($!)
    local watch_pid=$!
    until grep -q '^watch: ready' "$WORK/watch"; do sleep 0.01; done
    ip netns exec "$node" env ROUTE_AGENT_LOG=info,route_agent=debug "$AGENT" run \
        --config "$WORK/agent.yaml" --log-format json >"$WORK/agent.log" 2>&1 &
    PIDS+=($!)
    ip netns exec "$rr" "$ROUTEGEN" --connect $NODE_IP:179 --local-as 64512 \
        --router-id $RR_IP --count "$N" --next-hop $NEXT_HOP --next-hops 1 \
        --start 10.128.0.0 --prefix-len 26 2>"$WORK/routegen" &
    PIDS+=($!)
    for _ in $(seq 6000); do
        kill -0 "$watch_pid" 2>/dev/null || break
        sleep 0.01
    done
    local est all
    est=$(sed -n 's/^routegen: established at_ns=\([0-9]*\).*/\1/p' "$WORK/routegen")
    all=$(sed -n 's/^watch: .* all_ns=\([0-9]*\).*/\1/p' "$WORK/watch")
    if [[ -n $est && -n $all ]]; then
        ROUND_MS=$(awk -v a="$est" -v b="$all" 'BEGIN {printf "%.1f", (b - a) / 1e6}')
    else
        ROUND_MS=fail
        # Whose fault: the kernel's count tells the agent from the watch.
        echo "round $r: the node's kernel holds $(ip -n "$node" route show proto 98 | wc -l) routes of protocol 98" >>"$WORK/watch"
    fi
    mkdir -p "$KEEP"
    cp "$WORK/agent.log" "$KEEP/round-$r.agent.log"
    cp "$WORK/routegen" "$KEEP/round-$r.routegen"
    cp "$WORK/watch" "$KEEP/round-$r.watch"
    end_round
}

# What the agent logged in round $1, from the session's start: each line's
# time after Established in ms and its message (plans, reconciles).
timeline() {
    local r=$1 est
    est=$(sed -n 's/^routegen: established at_ns=\([0-9]*\).*/\1/p' "$KEEP/round-$r.routegen")
    python3 - "$KEEP/round-$r.agent.log" "${est:-0}" <<'PY'
import datetime, json, sys
est = int(sys.argv[2]) / 1e9
for line in open(sys.argv[1]):
    try:
        d = json.loads(line)
    except ValueError:
        print("   ", line.rstrip()); continue
    f = d.get("fields", {})
    msg = f.pop("message", "")
    if not any(k in msg for k in ("planned", "reconcil", "End-of-RIB", "session", "monitor", "stall", "error")):
        continue
    t = datetime.datetime.fromisoformat(d["timestamp"].replace("Z", "+00:00")).timestamp()
    rest = " ".join(f"{k}={v}" for k, v in f.items())
    print(f"    {1000 * (t - est):9.1f} ms  {msg} {rest}")
PY
}

sleep "${SETTLE:-5}"
START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
declare -a TIMES
for ((r = 1; r <= ROUNDS; r++)); do
    round "$r"
    TIMES+=("$ROUND_MS")
    echo "round $r: $ROUND_MS ms (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
done
END_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "soak: $ROUNDS rounds of $N /26 routes behind one next hop from one iBGP reflector, ours ($AGENT), $(uname -r), $(nproc) cores, load $START_LOAD at the start, $END_LOAD at the end"
echo "times in ms from Established to all $N routes in the kernel, in round order:"
echo "  ${TIMES[*]}"
ok=$(printf '%s\n' "${TIMES[@]}" | grep -v fail | sort -n || true)
fails=$(printf '%s\n' "${TIMES[@]}" | grep -c fail || true)
median=$(awk '{a[NR] = $1} END {if (NR) print a[int((NR + 1) / 2)]; else print "none"}' <<<"$ok")
worst=$(tail -n 1 <<<"$ok")
best=$(head -n 1 <<<"$ok")
echo "median $median ms, best $best ms, worst $worst ms, failed rounds $fails"
for ((r = 1; r <= ROUNDS; r++)); do
    t=${TIMES[$((r - 1))]}
    if [[ $t == fail ]] || awk -v t="$t" -v m="$median" 'BEGIN {exit !(t > 3 * m)}'; then
        echo "round $r: $t ms (median $median ms): the watch said"
        sed 's/^/    /' "$KEEP/round-$r.watch"
        echo "  the agent's timeline"
        timeline "$r"
    fi
done
echo "logs of every round: $KEEP"
