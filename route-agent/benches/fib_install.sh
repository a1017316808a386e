#!/usr/bin/env bash
# Benchmark (not a timed test): N IPv4 /26 routes into an empty main table,
# side by side in one run, each method in a fresh network namespace:
#   - ours: the batched FIB reconciler (examples/fib_install.rs) as
#     configured by default (`nexthop-objects: auto`: kernel nexthop objects
#     above 1,000 gateway routes; ACK on the last request of each batch
#     only), and with gateway routes (`nexthop-objects: false`) in both ACK
#     modes (the last request, or NLM_F_ACK on every request);
#   - `ip -batch` (one request and ACK per route);
#   - BIRD 2: static routes exported by its kernel protocol (one synchronous
#     request per route; the time includes BIRD parsing its config), if
#     `bird` is installed (Debian package bird2).
#
# Usage, as root:  [ROUNDS=3] route-agent/benches/fib_install.sh [N=100000] [via|blackhole] [HOPS=1]
#   ROUNDS:    every method runs once per round, rounds interleaved; the
#              table shows each method's median and every round
#   via:       B via 10.66.0.6 dev veth0 onlink   (the direct-route shape)
#   blackhole: blackhole B
#   HOPS > 1 (with via): the routes go through HOPS gateways 10.66.1.0, …,
#              each taking a run of consecutive routes (a cluster's nodes:
#              `10000 via 5000` is two blocks per node)
set -euo pipefail

N=${1:-100000}
KIND=${2:-via}
HOPS=${3:-1}
ROUNDS=${ROUNDS:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
(cd "$ROOT" && cargo build --release --quiet -p route-agent --example fib_install)
BIN=$ROOT/target/release/examples/fib_install
WORK=$(mktemp -d)
PREFIX=rabench-$$
NAMESPACES=()

cleanup() {
    if [[ -f $WORK/bird.pid ]]; then kill "$(cat "$WORK/bird.pid")" 2>/dev/null || true; fi
    for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# A namespace with the underlay veth0 (10.66.0.5/24) up and an empty table.
fresh_ns() {
    local ns=$PREFIX-$1
    NAMESPACES+=("$ns")
    ip netns add "$ns"
    ip -n "$ns" link add veth0 type veth peer name veth1
    ip -n "$ns" addr add 10.66.0.5/24 dev veth0
    ip -n "$ns" link set veth0 up
    ip -n "$ns" link set veth1 up
}

count_routes() { ip -n "$1" route show proto "$2" | wc -l; }

check_count() {
    local got
    got=$(count_routes "$1" "$2")
    if [[ $got -ne $N ]]; then
        echo "$3: $got routes in the table, expected $N" >&2
        exit 1
    fi
}

now() { date +%s.%N; }

# Prefixes in the main FIB trie (it holds the local table too).
fib_prefixes() {
    ip netns exec "$1" awk '/^Main:/ {m = 1} m && /Prefixes:/ {print $2; exit}' /proc/net/fib_triestat
}

# Each method's times, in the order the methods first ran.
declare -a NAMES
declare -A TIMES
record() {
    if [[ -z ${TIMES[$1]+set} ]]; then
        NAMES+=("$1")
        TIMES[$1]=""
    fi
    TIMES[$1]+="$2 "
}

# ours: the default (`nexthop-objects: auto`, which takes kernel nexthop
# objects for tables of over 1,000 gateway routes), then gateway routes
# (`nexthop-objects: false`, Calico's shapes) in both ACK modes.
ours_row() {
    local name=$1 label=$2 nexthops=$3 ack=$4
    fresh_ns "$name"
    out=$(ip netns exec "$PREFIX-$name" env ${nexthops:+FIB_NEXTHOPS=$nexthops} "$BIN" install "$N" "$KIND" "$ack" "$HOPS")
    echo "$label: $out" | sed 's/^/  /' >&2
    check_count "$PREFIX-$name" 98 "$label"
    record "$label" "$(awk '/^install/ {print $2}' <<<"$out")"
}

ip_batch_row() {
    local name=ipbatch-$1
    fresh_ns "$name"
    [[ -f $WORK/routes.batch ]] || "$BIN" ip-batch "$N" "$KIND" last "$HOPS" >"$WORK/routes.batch"
    t0=$(now)
    ip -n "$PREFIX-$name" -batch "$WORK/routes.batch"
    t1=$(now)
    check_count "$PREFIX-$name" 98 "ip -batch"
    record "ip -batch" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')"
}

# BIRD's time runs from starting `bird` until the kernel holds all routes.
# BIRD counts a route as exported before its kernel protocol writes it, so
# the end is the FIB trie's prefix count, which the kernel keeps without
# walking the table. BIRD is then SIGKILLed: a clean stop would withdraw
# its routes while the next method runs.
bird_row() {
    local name=bird-$1
    fresh_ns "$name"
    if [[ ! -f $WORK/bird.conf ]]; then
        {
            echo "router id 10.66.0.5;"
            echo "protocol device {}"
            echo "protocol kernel kernfib { ipv4 { export all; import none; }; }"
            echo "protocol static pods { ipv4;"
            "$BIN" bird "$N" "$KIND" last "$HOPS"
            echo "}"
        } >"$WORK/bird.conf"
    fi
    local base
    base=$(fib_prefixes "$PREFIX-$name")
    t0=$(now)
    ip netns exec "$PREFIX-$name" bird -c "$WORK/bird.conf" -s "$WORK/bird.ctl" -P "$WORK/bird.pid"
    until (($(fib_prefixes "$PREFIX-$name") >= base + N)); do
        sleep 0.01
    done
    t1=$(now)
    kill -KILL "$(cat "$WORK/bird.pid")" 2>/dev/null || true
    rm -f "$WORK/bird.pid" "$WORK/bird.ctl"
    check_count "$PREFIX-$name" bird "BIRD"
    record "BIRD $(bird --version 2>&1 | awk '{print $3}') static + kernel protocol" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')"
}

HAVE_BIRD=
if command -v bird >/dev/null && command -v birdc >/dev/null; then
    HAVE_BIRD=1
else
    echo "  bird not installed (apt-get install bird2): BIRD row skipped" >&2
fi
# A namespace deleted shortly before (this script's last run or another
# benchmark's) is torn down by the kernel in the background, under the RTNL
# lock every method here needs: with 100,000 routes in it that takes
# seconds. Let it finish first (SETTLE seconds).
sleep "${SETTLE:-5}"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# Rounds interleave the methods, so a burst of other load on the machine
# falls on all of them; the table shows each method's median.
for ((r = 1; r <= ROUNDS; r++)); do
    ours_row "auto-$r" "ours, default (nexthop-objects: auto)" "" last
    ours_row "gw-$r" "ours, nexthop-objects: false" 0 last
    ours_row "gw-every-$r" "ours, nexthop-objects: false, ACK every" 0 every
    ip_batch_row "$r"
    if [[ -n $HAVE_BIRD ]]; then bird_row "$r"; fi
done

median() { tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
ours=$(median <<<"${TIMES[${NAMES[0]}]}")
echo
echo "$N IPv4 /26 routes ($KIND, $HOPS gateway(s)) into an empty main table, $(uname -r), $(nproc) cores, $ROUNDS rounds, load $LOAD_BEFORE before, $(cut -d' ' -f1-3 /proc/loadavg) after"
printf '| %-45s | %8s | %10s | %12s | %-23s |\n' method "median s" routes/s "time vs ours" "each round (s)"
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..47})" "----------" "------------" "--------------" "-------------------------"
for name in "${NAMES[@]}"; do
    s=$(median <<<"${TIMES[$name]}")
    printf '| %-45s | %8s | %10s | %12s | %-23s |\n' "$name" "$s" \
        "$(awk -v n="$N" -v s="$s" 'BEGIN {printf "%.0f", n / s}')" \
        "$(awk -v o="$ours" -v s="$s" 'BEGIN {printf "%.2fx", s / o}')" \
        "${TIMES[$name]% }"
done
