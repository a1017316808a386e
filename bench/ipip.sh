#!/usr/bin/env bash
# IPIP data-plane benchmark: pod-to-pod TCP throughput (iperf3) and ping
# latency between two pods behind two nodes, over three paths, in one run:
#
#   direct  the nodes route the other node's pod subnet straight over the
#           underlay (same subnet, no encapsulation)
#   vxlan   kernel VXLAN between the nodes (id 42, dstport 4789, MTU 1450),
#           pod routes via vxlan0 — the nearest kernel-encapsulation reference
#           on a kernel without the ipip module
#   ipip    our userspace IPIP (target/release/ipip-tunnel on both nodes, TUN
#           device tunl0 with MTU underlay − 20 = 1480, routes
#           `PODNET via OTHER_NODE dev tunl0 onlink`; bulk TCP leaves through
#           the GRO device tunl0-gro, see ipip/src/userspace/gro.rs; the
#           report prints each node's egress path)
#
#   bash bench/ipip.sh            (root; iperf3, ping, python3, cargo)
#
# Every path gets its own fresh namespaces (names carry this script's PID and
# the path), all with the same shape:
#
#   pod-a 10.244.1.2 ── 10.244.1.1 node-a 10.92.N.1 ══ 10.92.N.2 node-b 10.244.2.1 ── 10.244.2.2 pod-b
#
# (══ is the underlay veth, MTU 1500; vxlan0 carries 10.93.N.1 ↔ 10.93.N.2.)
# Each pod veth gets the path's MTU (1500 / 1450 / 1480), as a CNI sets it,
# so TCP picks the right MSS at once instead of learning it from ICMP.
#
# Per path: 3 warm-up pings (neighbour entries), then `ping -c 200 -i 0.01`
# pod-a → pod-b (avg, p50, p99 from the 200 individual RTTs), then
# `iperf3 -c POD_B -t 5 -J` from pod-a to `iperf3 -s -D -1` in pod-b
# (end.sum_received.bits_per_second). Pings run on an otherwise idle path.
#
# Environment:
#   IPIP_BENCH_TIME  iperf3 seconds (default 5)
#   IPIP_BENCH_PATHS the paths to run, in order (default "direct vxlan ipip";
#                    the ratios need all three, A/B runs of the tunnel need
#                    only ipip)
#   IPIP_BENCH_CC    TCP congestion control for every iperf3 run (`iperf3
#                    -C`), e.g. cubic; default: the machine's
#                    net.ipv4.tcp_congestion_control. It moves the ratio a
#                    lot (BBR paces in TCP itself without the fq qdisc, which
#                    costs the kernel paths more than ours), so the report
#                    prints the one iperf3 used
#   IPIP_PERF=1      also `perf record -g` both ipip-tunnel processes during
#                    the ipip iperf3 run and print the top symbols
#   IPIP_PERF_ALL=1  with IPIP_PERF=1, record every CPU (kernel work done in
#                    softirq and by iperf3 included), not only the tunnels
#   IPIP_PERF_KEEP=F with IPIP_PERF=1, keep the perf.data as file F
#   IPIP_NO_BUILD=1  do not run cargo build (use the existing binary)
#   IPIP_TUNNEL_FLAGS extra ipip-tunnel flags, e.g. --no-offload to measure
#                    without TUN offloads (one packet per read and write), or
#                    --no-gro-egress to send every datagram on the raw socket
#
# Everything the script creates (namespaces, ipip-tunnel and iperf3
# processes, its temp dir) is removed on every exit path (trap on EXIT,
# INT, TERM, HUP, PIPE). Exit status 1 if a path cannot be set up or
# measured.

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/target/release/ipip-tunnel
SECS=${IPIP_BENCH_TIME:-5}
TAG=ipb$$
POD_A=10.244.1.2
POD_B=10.244.2.2

die() {
	echo "ipip.sh: $*" >&2
	exit 1
}

[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, TUN, raw sockets)"
for tool in ip iperf3 ping python3 cargo; do
	command -v "$tool" >/dev/null || die "$tool not found"
done
[[ $SECS =~ ^[1-9][0-9]*$ ]] || die "IPIP_BENCH_TIME must be a positive integer"
CC_ARGS=()
if [ -n "${IPIP_BENCH_CC:-}" ]; then
	grep -qw -- "$IPIP_BENCH_CC" /proc/sys/net/ipv4/tcp_available_congestion_control ||
		die "IPIP_BENCH_CC=$IPIP_BENCH_CC is not one of: $(cat /proc/sys/net/ipv4/tcp_available_congestion_control)"
	CC_ARGS=(-C "$IPIP_BENCH_CC")
fi
if [ "${IPIP_PERF:-0}" = 1 ]; then
	command -v perf >/dev/null || die "IPIP_PERF=1 needs perf"
fi

WORK=$(mktemp -d /tmp/ipip-bench.XXXXXX)
NAMESPACES=()
PIDS=()

cleanup() {
	local p ns f
	for p in "${PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	# iperf3 -D daemonizes: its PID is only in the pidfile.
	for f in "$WORK"/*.iperf.pid; do
		[ -s "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	for ns in "${NAMESPACES[@]}"; do
		ip netns del "$ns" 2>/dev/null || true
	done
	NAMESPACES=()
	PIDS=()
}
trap 'cleanup; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM HUP PIPE

if [ "${IPIP_NO_BUILD:-0}" != 1 ]; then
	(cd "$ROOT" && cargo build --release -q -p ipip --bin ipip-tunnel) || die "build failed"
fi
[ -x "$BIN" ] || die "$BIN missing"

# in NS CMD... — run CMD inside namespace NS.
nsx() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}

# setup PATH N — builds the namespaces for one path; sets NA NB PA PB.
setup() {
	local path=$1 n=$2 mtu
	NA=$TAG-$path-na NB=$TAG-$path-nb PA=$TAG-$path-pa PB=$TAG-$path-pb
	local ns
	for ns in "$NA" "$NB" "$PA" "$PB"; do
		ip netns add "$ns"
		NAMESPACES+=("$ns")
		nsx "$ns" ip link set lo up
	done
	case $path in
	direct) mtu=1500 ;;
	vxlan) mtu=1450 ;;
	ipip) mtu=1480 ;;
	esac
	# Underlay: one veth between the nodes, same subnet.
	ip -n "$NA" link add eth0 type veth peer name eth0 netns "$NB"
	nsx "$NA" ip addr add "10.92.$n.1/24" dev eth0
	nsx "$NB" ip addr add "10.92.$n.2/24" dev eth0
	# Pods, each behind its node.
	ip -n "$PA" link add eth0 mtu "$mtu" type veth peer name cali-a mtu "$mtu" netns "$NA"
	ip -n "$PB" link add eth0 mtu "$mtu" type veth peer name cali-b mtu "$mtu" netns "$NB"
	nsx "$NA" ip addr add 10.244.1.1/24 dev cali-a
	nsx "$NB" ip addr add 10.244.2.1/24 dev cali-b
	nsx "$PA" ip addr add "$POD_A/24" dev eth0
	nsx "$PB" ip addr add "$POD_B/24" dev eth0
	for ns in "$NA" "$NB"; do
		nsx "$ns" sysctl -qw net.ipv4.ip_forward=1
		nsx "$ns" ip link set eth0 up
	done
	nsx "$NA" ip link set cali-a up
	nsx "$NB" ip link set cali-b up
	nsx "$PA" ip link set eth0 up
	nsx "$PB" ip link set eth0 up
	nsx "$PA" ip route add default via 10.244.1.1
	nsx "$PB" ip route add default via 10.244.2.1

	case $path in
	direct)
		nsx "$NA" ip route add 10.244.2.0/24 via "10.92.$n.2"
		nsx "$NB" ip route add 10.244.1.0/24 via "10.92.$n.1"
		;;
	vxlan)
		local me other ns_ peer_net
		for side in a b; do
			if [ $side = a ]; then
				ns_=$NA me=1 other=2 peer_net=10.244.2.0/24
			else
				ns_=$NB me=2 other=1 peer_net=10.244.1.0/24
			fi
			nsx "$ns_" ip link add vxlan0 type vxlan id 42 local "10.92.$n.$me" \
				remote "10.92.$n.$other" dstport 4789 dev eth0
			nsx "$ns_" ip link set vxlan0 mtu 1450
			nsx "$ns_" ip addr add "10.93.$n.$me/24" dev vxlan0
			nsx "$ns_" ip link set vxlan0 up
			nsx "$ns_" ip route add "$peer_net" via "10.93.$n.$other" dev vxlan0
		done
		;;
	ipip)
		local side ns_ me other peer_net log i
		for side in a b; do
			if [ $side = a ]; then
				ns_=$NA me=1 other=2 peer_net=10.244.2.0/24
			else
				ns_=$NB me=2 other=1 peer_net=10.244.1.0/24
			fi
			log=$WORK/tunnel-$side.log
			# `ip netns exec` straight from the job (no shell function in
			# between) so that $! is ipip-tunnel itself.
			# shellcheck disable=SC2086 # IPIP_TUNNEL_FLAGS is a word list
			ip netns exec "$ns_" "$BIN" --device tunl0 --local "10.92.$n.$me" --mtu 1500 \
				${IPIP_TUNNEL_FLAGS:-} >"$log" 2>"$WORK/tunnel-$side.err" </dev/null &
			PIDS+=($!)
			eval "TUN_${side^^}=$!"
			for ((i = 0; i < 100; i++)); do
				grep -q ready "$log" 2>/dev/null && break
				kill -0 "$!" 2>/dev/null || die "ipip-tunnel in $ns_ exited: $(cat "$WORK/tunnel-$side.err")"
				sleep 0.05
			done
			grep -q ready "$log" || die "ipip-tunnel in $ns_ never got ready"
			# Underlay MTU − 20, as Calico sets it.
			nsx "$ns_" ip link set tunl0 mtu 1480
			nsx "$ns_" ip route add "$peer_net" via "10.92.$n.$other" dev tunl0 onlink
		done
		;;
	esac
	# The path is up once a ping gets through (the tunnels learn their
	# routes from netlink notifications).
	local i
	for ((i = 0; i < 50; i++)); do
		nsx "$PA" ping -c 1 -W 1 "$POD_B" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	die "$path: pod-a cannot reach pod-b"
}

# measure PATH — ping then iperf3 over the current namespaces; writes
# $WORK/PATH.ping (one RTT in ms per line) and $WORK/PATH.json.
measure() {
	local path=$1
	nsx "$PA" ping -c 3 -i 0.01 "$POD_B" >/dev/null
	nsx "$PA" ping -c 200 -i 0.01 "$POD_B" >"$WORK/$path.ping.out" ||
		die "$path: ping failed"
	sed -n 's/.* time=\([0-9.]*\) ms.*/\1/p' "$WORK/$path.ping.out" >"$WORK/$path.ping"

	nsx "$PB" iperf3 -s -D -1 -I "$WORK/$path.iperf.pid" >/dev/null
	local i
	for ((i = 0; i < 50; i++)); do
		nsx "$PB" ss -Hltn 'sport = :5201' | grep -q . && break
		sleep 0.05
	done
	local perf_pid=
	if [ "$path" = ipip ] && [ "${IPIP_PERF:-0}" = 1 ]; then
		local target=(-p "$TUN_A,$TUN_B")
		[ "${IPIP_PERF_ALL:-0}" = 1 ] && target=(-a)
		perf record -q -g -o "$WORK/perf.data" "${target[@]}" -- sleep $((SECS > 2 ? SECS - 1 : 1)) \
			>/dev/null 2>&1 &
		perf_pid=$!
		PIDS+=($perf_pid)
	fi
	nsx "$PA" iperf3 -c "$POD_B" -t "$SECS" -J "${CC_ARGS[@]}" >"$WORK/$path.json" ||
		die "$path: iperf3 failed: $(head -c 400 "$WORK/$path.json")"
	if [ -n "$perf_pid" ]; then
		wait "$perf_pid" || true
	fi
}

summarize_tunnels() {
	local side
	for side in A B; do
		local pid_var=TUN_$side
		kill -USR1 "${!pid_var}" 2>/dev/null || true
	done
	sleep 0.2
	for side in a b; do
		echo "ipip-tunnel node-$side: $(grep -m1 '^ready' "$WORK/tunnel-$side.log" | sed 's/.*\(egress=\)/\1/')"
		echo "ipip-tunnel node-$side counters (nonzero): $(awk '/^ready/{next} /^--/{exit} $2 != 0 {printf "%s=%s ", $1, $2}' "$WORK/tunnel-$side.log")"
	done
	# Losses the tunnel cannot count: the TUN queue overflowing before
	# ipip-tunnel reads it (tunl0 tx_dropped) and the raw socket's receive
	# buffer overflowing before it calls recvmmsg (/proc/net/raw drops).
	local ns
	for ns in "$NA" "$NB"; do
		echo "kernel drops in ${ns##*-}: tunl0 tx_dropped=$(nsx "$ns" cat /sys/class/net/tunl0/statistics/tx_dropped)" \
			"raw socket drops=$(nsx "$ns" awk 'NR > 1 {d += $NF} END {print d + 0}' /proc/net/raw)"
	done
	# How much the kernel batched: packets (super-packets, with offloads)
	# the TUN device handed node-a's tunnel, and what node-a's GRO device
	# passed on after merging (when GRO egress is on).
	echo "node-a: tunl0 handed out $(nsx "$NA" cat /sys/class/net/tunl0/statistics/tx_packets) packets;" \
		"tunl0-gro took in $(nsx "$NA" cat /sys/class/net/tunl0-gro/statistics/rx_packets 2>/dev/null || echo 0)," \
		"eth0 sent $(nsx "$NA" cat /sys/class/net/eth0/statistics/tx_packets)"
}

read -r -a PATHS <<<"${IPIP_BENCH_PATHS:-direct vxlan ipip}"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
n=0
for path in "${PATHS[@]}"; do
	n=$((n + 1))
	setup "$path" "$n"
	measure "$path"
	if [ "$path" = ipip ]; then
		summarize_tunnels
		if [ "${IPIP_PERF:-0}" = 1 ]; then
			echo "perf: top symbols in ipip-tunnel (both nodes) during the ipip iperf3 run"
			perf report -i "$WORK/perf.data" --no-children --sort dso --stdio 2>/dev/null |
				awk '/^ +[0-9.]+%/ {print "  " $1, $2}' | head -6 || true
			perf report -i "$WORK/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null |
				awk '/^ +[0-9.]+%/ {print "  " $1, $2, $4}' | head -25 || true
			if [ -n "${IPIP_PERF_KEEP:-}" ]; then
				cp "$WORK/perf.data" "$IPIP_PERF_KEEP"
			fi
		fi
	fi
	cleanup
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "date $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores"
echo "ipip-tunnel flags: --mtu 1500 ${IPIP_TUNNEL_FLAGS:-(offloads on)}"
echo "load average (1/5/15 min) before: $LOAD_BEFORE, after: $LOAD_AFTER"
python3 - "$WORK" "$SECS" "${PATHS[@]}" <<'EOF'
import json, statistics, sys
work, secs, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
res = {}
for p in paths:
    rtts = sorted(float(l) * 1000 for l in open(f"{work}/{p}.ping") if l.strip())
    j = json.load(open(f"{work}/{p}.json"))
    end = j["end"]
    def pct(q):
        return rtts[min(len(rtts) - 1, int(q * len(rtts)))]
    res[p] = dict(
        gbps=end["sum_received"]["bits_per_second"] / 1e9,
        retr=end.get("sum_sent", {}).get("retransmits", 0),
        cc=end.get("sender_tcp_congestion", "?"),
        n=len(rtts), avg=statistics.mean(rtts), p50=statistics.median(rtts),
        p99=pct(0.99), mn=rtts[0], mx=rtts[-1])
d = res.get("direct")
ccs = sorted({r["cc"] for r in res.values()})
print(f"iperf3 -t {secs} (1 stream, TCP congestion control {', '.join(ccs)}), ping -c 200 -i 0.01; "
      "latency = ping RTT pod-a -> pod-b")
print()
print("| path | throughput Gbit/s | TCP retransmits | ping avg µs | p50 µs | p99 µs | min/max µs | added avg vs direct µs |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for p in paths:
    r = res[p]
    added = "—" if p == "direct" or d is None else f"{r['avg'] - d['avg']:+.1f}"
    print(f"| {p} | {r['gbps']:.2f} | {r['retr']} | {r['avg']:.1f} | {r['p50']:.1f} | {r['p99']:.1f} "
          f"| {r['mn']:.0f}/{r['mx']:.0f} | {added} |")
if not all(p in res for p in ("direct", "vxlan", "ipip")):
    print()
    print("(not all three paths ran: no ratios, no goals)")
    sys.exit(0)
ratio = res["ipip"]["gbps"] / res["vxlan"]["gbps"]
added = res["ipip"]["avg"] - d["avg"]
added50 = res["ipip"]["p50"] - d["p50"]
print()
print(f"throughput ratio ipip/vxlan: {ratio:.2f} ({ratio*100:.0f}%); ipip/direct: "
      f"{res['ipip']['gbps']/d['gbps']:.2f}; vxlan/direct: {res['vxlan']['gbps']/d['gbps']:.2f}")
print(f"goal: userspace IPIP >= 50% of kernel VXLAN throughput: "
      f"{'MET' if ratio >= 0.5 else 'NOT MET'} ({ratio*100:.0f}%)")
print(f"goal: <= 50 us added latency per packet at low load: "
      f"{'MET' if added / 2 <= 50 else 'NOT MET'} ({added / 2:+.1f} us per packet one way = half the "
      f"ping RTT difference {added:+.1f} us avg; {added50 / 2:+.1f} us from p50); "
      f"counted on the whole round trip: {'MET' if added <= 50 else 'NOT MET'}")
EOF
