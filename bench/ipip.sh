#!/usr/bin/env bash
# IPIP data-plane benchmark: pod-to-pod TCP throughput (iperf3) and ping
# latency between two pods behind two nodes, over four paths, in one run:
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
#   bpf     our eBPF IPIP (ipip/src/bpf/, issue 18), set up on both nodes by
#           `ipip-tunnel bpf-setup --underlay eth0 --local NODE --route
#           PODNET=OTHER_NODE`: route `PODNET via OTHER_NODE dev eth0
#           onlink encap bpf xmit … headroom 20` (no `mtu` on it: the
#           headroom already makes its path MTU 1480) and tc ingress
#           decapsulation on eth0; pins on a bpffs this script mounts under
#           its temp dir (`ip netns exec` gives each command a fresh /sys).
#           The report prints both nodes' program counters
#
#   bash bench/ipip.sh            (root; iperf3, ping, python3, cargo)
#   IPIP_BENCH_CC="bbr cubic" IPIP_BENCH_REPEAT=3 bash bench/ipip.sh
#                                 (3 rounds per congestion control, medians)
#
# Every path gets its own fresh namespaces (names carry this script's PID and
# the path), all with the same shape:
#
#   pod-a 10.244.1.2 ── 10.244.1.1 node-a 10.92.N.1 ══ 10.92.N.2 node-b 10.244.2.1 ── 10.244.2.2 pod-b
#
# (══ is the underlay veth, MTU 1500; vxlan0 carries 10.93.N.1 ↔ 10.93.N.2.)
# Each pod veth gets the path's MTU (1500 / 1450 / 1480 / 1480), as a CNI sets it,
# so TCP picks the right MSS at once instead of learning it from ICMP.
#
# Per path: 3 warm-up pings (neighbour entries), then `ping -c 200 -i 0.01`
# pod-a → pod-b (avg, p50, p99 from the 200 individual RTTs: "idle" latency,
# every ping wakes idle CPUs, which on this VM costs more than the path),
# then `ping -A -c 2000` (back to back: the next ping leaves when the reply
# is in, so no CPU idles; on CPU 0 when pinned): the path's own latency,
# which the added-latency goals use, then
# `iperf3 -c POD_B -t 5 -J` from pod-a to `iperf3 -s -D -1` in pod-b
# (end.sum_received.bits_per_second). Pings run on an otherwise idle path.
#
# Environment:
#   IPIP_BENCH_TIME  iperf3 seconds (default 5)
#   IPIP_BENCH_PATHS the paths to run, in order (default "direct vxlan ipip
#                    bpf"; the ratios need direct and vxlan, A/B runs of a
#                    tunnel need only that tunnel)
#   IPIP_BENCH_CC    TCP congestion control(s) for every iperf3 run (`iperf3
#                    -C`), e.g. cubic, or a list ("bbr cubic"): each round
#                    runs every path once per listed one; default: the
#                    machine's net.ipv4.tcp_congestion_control. It moves the
#                    ratios a lot (BBR paces in TCP itself without the fq
#                    qdisc, which holds back paths that move 64 KB packets
#                    end to end), so the report is per congestion control
#                    and prints the one iperf3 used
#   IPIP_BENCH_REPEAT rounds (default 1); a round runs every path (and
#                    every IPIP_BENCH_CC) once, so slow phases of the
#                    machine hit all paths alike. With more than one the
#                    report adds the per-round rows and takes ratios and
#                    goals from the medians
#   IPIP_PERF=1      also `perf record -g` during the ipip iperf3 runs (both
#                    ipip-tunnel processes) and the bpf ones (every CPU: the
#                    programs run in softirq and iperf3's context) and print
#                    the top symbols
#   IPIP_PERF_ALL=1  with IPIP_PERF=1, record every CPU for ipip too (kernel
#                    work done in softirq and by iperf3 included), not only
#                    the tunnels, and for direct and vxlan as well
#   IPIP_PERF_KEEP=D with IPIP_PERF=1, keep each perf.data in directory D
#                    (PATH-CC-ROUND.perf.data)
#   IPIP_BENCH_PIN   1 (default): iperf3's client on CPU 0 and server on CPU 1
#                    (`iperf3 -A 0,1`), and each direction's packets handled
#                    on one fixed CPU from the pod's veth on (RPS: cali-a's
#                    receive queue on CPU 1, where the data is taken in;
#                    cali-b's on CPU 0, where the ACKs are), as a NIC's
#                    receive-side scaling keeps one flow on one queue; the
#                    pings before it are not steered.
#                    0: the scheduler places everything, as before 2026-12-06:
#                    on 2 cores one path then measures 18-41 Gbit/s from run
#                    to run, by where the ends and the softirq work land, and
#                    segments a flow sends from both CPUs reach the other
#                    end out of order through the two CPUs' backlogs (the
#                    retransmits that run counts are mostly spurious:
#                    DSACKs). Needs 2 CPUs (with 1, nothing is pinned)
#   IPIP_NO_BUILD=1  do not run cargo build (use the existing binary)
#   IPIP_TUNNEL_FLAGS extra ipip-tunnel flags, e.g. --no-offload to measure
#                    without TUN offloads (one packet per read and write), or
#                    --no-gro-egress to send every datagram on the raw socket
#
# Everything the script creates (namespaces, ipip-tunnel and iperf3
# processes, the bpffs it mounts, its temp dir) is removed on every exit path (trap on EXIT,
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
REPEAT=${IPIP_BENCH_REPEAT:-1}
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "IPIP_BENCH_REPEAT must be a positive integer"
read -r -a CCS <<<"${IPIP_BENCH_CC:-}"
[ ${#CCS[@]} -gt 0 ] || CCS=("$(cat /proc/sys/net/ipv4/tcp_congestion_control)")
for cc in "${CCS[@]}"; do
	grep -qw -- "$cc" /proc/sys/net/ipv4/tcp_available_congestion_control ||
		die "IPIP_BENCH_CC: $cc is not one of: $(cat /proc/sys/net/ipv4/tcp_available_congestion_control)"
done
read -r -a PATHS <<<"${IPIP_BENCH_PATHS:-direct vxlan ipip bpf}"
for path in "${PATHS[@]}"; do
	case $path in
	direct | vxlan | ipip | bpf) ;;
	*) die "IPIP_BENCH_PATHS: unknown path $path (direct, vxlan, ipip, bpf)" ;;
	esac
done
PIN=${IPIP_BENCH_PIN:-1}
[[ $PIN =~ ^[01]$ ]] || die "IPIP_BENCH_PIN must be 0 or 1"
[ "$(nproc)" -ge 2 ] || PIN=0
IPERF_PIN=() PING_PIN=()
if [ "$PIN" = 1 ]; then
	IPERF_PIN=(-A 0,1)
	PING_PIN=(taskset -c 0)
fi
if [ "${IPIP_PERF:-0}" = 1 ]; then
	command -v perf >/dev/null || die "IPIP_PERF=1 needs perf"
fi

WORK=$(mktemp -d /tmp/ipip-bench.XXXXXX)
NAMESPACES=()
PIDS=()
# The bpffs of the bpf path, while mounted.
BPFFS=

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
	# The namespaces took the routes and the tc hook with them; the pins
	# go with the bpffs.
	if [ -n "$BPFFS" ]; then
		umount "$BPFFS" 2>/dev/null || true
		rmdir "$BPFFS" 2>/dev/null || true
		BPFFS=
	fi
	NAMESPACES=()
	PIDS=()
}
# Never rm -rf into a bpffs that is still mounted (cleanup unmounts it).
trap 'cleanup; mountpoint -q "$WORK/bpffs" 2>/dev/null || rm -rf "$WORK"' EXIT
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
	ipip | bpf) mtu=1480 ;;
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
			# Emptied here, not only by the job's redirection: that runs
			# in the forked job, possibly after the wait below has read
			# an earlier round's "ready" from the same file.
			: >"$log"
			: >"$WORK/tunnel-$side.err"
			# `ip netns exec` straight from the job (no shell function in
			# between) so that $! is ipip-tunnel itself.
			# shellcheck disable=SC2086 # IPIP_TUNNEL_FLAGS is a word list
			ip netns exec "$ns_" "$BIN" --device tunl0 --local "10.92.$n.$me" --mtu 1500 \
				${IPIP_TUNNEL_FLAGS:-} >"$log" 2>"$WORK/tunnel-$side.err" </dev/null &
			PIDS+=($!)
			eval "TUN_${side^^}=$!"
			# Up to 60 s, and a start over 2 s is reported: the machine is
			# shared (load 3-6 at times); the figures are taken after it.
			local started=$EPOCHREALTIME
			for ((i = 0; i < 1200; i++)); do
				grep -q ready "$log" 2>/dev/null && break
				kill -0 "$!" 2>/dev/null || die "ipip-tunnel in $ns_ exited: $(cat "$WORK/tunnel-$side.err")"
				sleep 0.05
			done
			grep -q ready "$log" ||
				die "ipip-tunnel in $ns_ never got ready (its threads wait in: $(cat /proc/"$!"/task/*/wchan 2>/dev/null | tr '\0' ' ')): $(tail -c 400 "$log" "$WORK/tunnel-$side.err")"
			awk -v a="$started" -v b="$EPOCHREALTIME" -v ns="$ns_" \
				'BEGIN { if (b - a > 2) printf "ipip.sh: ipip-tunnel in %s took %.1f s to get ready\n", ns, b - a }' >&2
			# Underlay MTU − 20, as Calico sets it.
			nsx "$ns_" ip link set tunl0 mtu 1480
			nsx "$ns_" ip route add "$peer_net" via "10.92.$n.$other" dev tunl0 onlink
		done
		;;
	bpf)
		local side ns_ me other peer_net out
		if [ -z "$BPFFS" ]; then
			mkdir -p "$WORK/bpffs"
			mount -t bpf bpf "$WORK/bpffs" || die "cannot mount a bpffs on $WORK/bpffs"
			BPFFS=$WORK/bpffs
		fi
		for side in a b; do
			if [ $side = a ]; then
				ns_=$NA me=1 other=2 peer_net=10.244.2.0/24
			else
				ns_=$NB me=2 other=1 peer_net=10.244.1.0/24
			fi
			# The route carries no `mtu`: its 20 bytes of headroom already
			# make the kernel's path MTU 1500 − 20.
			out=$(nsx "$ns_" "$BIN" bpf-setup --underlay eth0 --local "10.92.$n.$me" \
				--route "$peer_net=10.92.$n.$other" --pin-root "$BPFFS/podroute" 2>&1) ||
				die "bpf-setup in $ns_ failed: $out"
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

# busy_ticks — the CPUs' busy time so far (user, nice, system, irq,
# softirq; /proc/stat, in USER_HZ ticks).
busy_ticks() {
	local _cpu user nice system idle iowait irq softirq _rest
	read -r _cpu user nice system idle iowait irq softirq _rest </proc/stat
	echo $((user + nice + system + irq + softirq))
}

# measure PATH CC ROUND — ping then iperf3 (congestion control CC) over
# the current namespaces; writes $WORK/res/PATH.CC.ROUND.ping (one RTT in
# ms per line) and $WORK/res/PATH.CC.ROUND.json.
measure() {
	local path=$1 cc=$2 round=$3
	local out=$WORK/res/$path.$cc.$round
	nsx "$PA" ping -c 3 -i 0.01 "$POD_B" >/dev/null
	nsx "$PA" ping -c 200 -i 0.01 "$POD_B" >"$out.ping.out" ||
		die "$path: ping failed"
	sed -n 's/.* time=\([0-9.]*\) ms.*/\1/p' "$out.ping.out" >"$out.ping"
	# Back to back (see the top): the path's own latency.
	nsx "$PA" "${PING_PIN[@]}" ping -A -c 2000 "$POD_B" >"$out.bb.out" ||
		die "$path: back-to-back ping failed"
	sed -n 's/.* time=\([0-9.]*\) ms.*/\1/p' "$out.bb.out" >"$out.bb"

	if [ "$PIN" = 1 ]; then
		# RPS masks for iperf3 only (the pings go as the scheduler
		# places them: steering a lone ping to another CPU adds a
		# cross-CPU wake-up to every hop): data (pod-a -> pod-b) on
		# CPU 1, ACKs on CPU 0. See IPIP_BENCH_PIN above.
		nsx "$NA" sh -c 'echo 2 >/sys/class/net/cali-a/queues/rx-0/rps_cpus' ||
			die "cannot set RPS on cali-a (a kernel without CONFIG_RPS? IPIP_BENCH_PIN=0 runs without)"
		nsx "$NB" sh -c 'echo 1 >/sys/class/net/cali-b/queues/rx-0/rps_cpus' ||
			die "cannot set RPS on cali-b (IPIP_BENCH_PIN=0 runs without)"
	fi

	nsx "$PB" iperf3 -s -D -1 -I "$WORK/$path.iperf.pid" >/dev/null
	local i
	for ((i = 0; i < 50; i++)); do
		nsx "$PB" ss -Hltn 'sport = :5201' | grep -q . && break
		sleep 0.05
	done
	local perf_pid= target=()
	rm -f "$WORK/perf.data"
	if [ "${IPIP_PERF:-0}" = 1 ]; then
		case $path in
		ipip)
			target=(-p "$TUN_A,$TUN_B")
			[ "${IPIP_PERF_ALL:-0}" = 1 ] && target=(-a)
			;;
		# No process of ours runs the programs: record every CPU.
		bpf) target=(-a) ;;
		# The references, to compare with: only when asked.
		direct | vxlan) [ "${IPIP_PERF_ALL:-0}" = 1 ] && target=(-a) ;;
		esac
	fi
	if [ ${#target[@]} -gt 0 ]; then
		perf record -q -g -o "$WORK/perf.data" "${target[@]}" -- sleep $((SECS > 2 ? SECS - 1 : 1)) \
			>/dev/null 2>&1 &
		perf_pid=$!
		PIDS+=($perf_pid)
	fi
	# The machine's busy CPU time during the transfer (every process:
	# run it on an otherwise idle machine), for the CPU cost per GB.
	local busy0 busy1
	busy0=$(busy_ticks)
	nsx "$PA" iperf3 -c "$POD_B" -t "$SECS" -J -C "$cc" "${IPERF_PIN[@]}" >"$out.json" ||
		die "$path: iperf3 failed: $(head -c 400 "$out.json")"
	busy1=$(busy_ticks)
	echo $((busy1 - busy0)) >"$out.cpu"
	if [ -n "$perf_pid" ]; then
		wait "$perf_pid" || true
	fi
}

# perf_report PATH CC ROUND — the top symbols of the perf.data measure
# recorded, if any.
perf_report() {
	[ -s "$WORK/perf.data" ] || return 0
	local who="both ipip-tunnel processes"
	{ [ "$1" = bpf ] || [ "${IPIP_PERF_ALL:-0}" = 1 ]; } && who="every CPU"
	echo "perf: top symbols ($who) during the $1 iperf3 run ($2, round $3)"
	perf report -i "$WORK/perf.data" --no-children --sort dso --stdio 2>/dev/null |
		awk '/^ +[0-9.]+%/ {print "  " $1, $2}' | head -6 || true
	perf report -i "$WORK/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null |
		awk '/^ +[0-9.]+%/ {print "  " $1, $2, $4}' | head -25 || true
	if [ -n "${IPIP_PERF_KEEP:-}" ]; then
		mkdir -p "$IPIP_PERF_KEEP"
		cp "$WORK/perf.data" "$IPIP_PERF_KEEP/$1-$2-$3.perf.data"
	fi
}

# summarize_bpf N — both nodes' program counters; fails the run when the
# programs did not carry the traffic (the route or the hook not theirs).
summarize_bpf() {
	local side ns_ line
	for side in a b; do
		[ $side = a ] && ns_=$NA || ns_=$NB
		line=$(nsx "$ns_" "$BIN" bpf-setup --underlay eth0 --show --pin-root "$BPFFS/podroute" 2>&1) ||
			die "bpf-setup --show in $ns_ failed: $line"
		echo "bpf node-$side: $line"
		[[ $line =~ \ encapsulated=([0-9]+)\  ]] && [ "${BASH_REMATCH[1]}" -gt 0 ] ||
			die "bpf: node-$side encapsulated nothing: the route did not run the program"
		[[ $line =~ \ decapsulated=([0-9]+)\  ]] && [ "${BASH_REMATCH[1]}" -gt 0 ] ||
			die "bpf: node-$side decapsulated nothing: the tc hook did not run"
	done
	echo "node-a: eth0 sent $(nsx "$NA" cat /sys/class/net/eth0/statistics/tx_packets) packets" \
		"($(nsx "$NA" cat /sys/class/net/eth0/statistics/tx_bytes) bytes)"
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

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$WORK/res"
n=0
for ((round = 1; round <= REPEAT; round++)); do
	for cc in "${CCS[@]}"; do
		for path in "${PATHS[@]}"; do
			# N is an address octet (10.92.N, 10.93.N): wrap it; the
			# previous path's namespaces are gone by then.
			n=$((n % 250 + 1))
			if [ "$REPEAT" -gt 1 ] || [ ${#CCS[@]} -gt 1 ]; then
				echo "== round $round/$REPEAT, $cc, $path" >&2
			fi
			setup "$path" "$n"
			measure "$path" "$cc" "$round"
			case $path in
			ipip) summarize_tunnels ;;
			bpf) summarize_bpf ;;
			esac
			perf_report "$path" "$cc" "$round"
			cleanup
		done
	done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "date $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores"
echo "ipip-tunnel flags: --mtu 1500 ${IPIP_TUNNEL_FLAGS:-(offloads on)}"
if [ "$PIN" = 1 ]; then
	echo "pinned (IPIP_BENCH_PIN=1): iperf3 -A 0,1; RPS: data on CPU 1 (cali-a), ACKs on CPU 0 (cali-b)"
else
	echo "not pinned (IPIP_BENCH_PIN=0): the scheduler places iperf3 and the softirq work"
fi
echo "load average (1/5/15 min) before: $LOAD_BEFORE, after: $LOAD_AFTER"
python3 - "$WORK" "$SECS" "$REPEAT" "${CCS[*]}" "$(getconf CLK_TCK)" "${PATHS[@]}" <<'EOF'
import json, statistics, sys
work, secs, repeat, ccs, hz, paths = (sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split(),
                                      int(sys.argv[5]), sys.argv[6:])
med = statistics.median

def load(path, cc, rnd):
    f = f"{work}/res/{path}.{cc}.{rnd}"
    rtts = sorted(float(l) * 1000 for l in open(f + ".ping") if l.strip())
    bb = sorted(float(l) * 1000 for l in open(f + ".bb") if l.strip())
    end = json.load(open(f + ".json"))["end"]
    cpu = int(open(f + ".cpu").read()) / hz
    return dict(
        gbps=end["sum_received"]["bits_per_second"] / 1e9,
        # CPU seconds (the whole machine's) per GB received.
        cpu=cpu / (end["sum_received"]["bytes"] / 1e9),
        bb=statistics.mean(bb), bb50=med(bb),
        retr=end.get("sum_sent", {}).get("retransmits", 0),
        cc=end.get("sender_tcp_congestion", "?"),
        avg=statistics.mean(rtts), p50=med(rtts),
        p99=rtts[min(len(rtts) - 1, int(0.99 * len(rtts)))], mn=rtts[0], mx=rtts[-1])

# Goals per tunnel: (least share of VXLAN, least share of direct, most
# added µs per packet). ipip: issue 4; bpf: issue 18.
GOALS = {"ipip": (0.5, None, 50.0), "bpf": (1.0, 0.85, 5.0)}

def met(ok):
    return "MET" if ok else "NOT MET"

print(f"iperf3 -t {secs} (1 stream); idle ping -c 200 -i 0.01; back-to-back ping -A -c 2000; "
      "latency = ping RTT pod-a -> pod-b; CPU s/GB = busy CPU time of the machine during iperf3 per GB; "
      f"{repeat} round(s) per congestion control, paths in the order {' '.join(paths)}")
for cc in ccs:
    rounds = [{p: load(p, cc, r) for p in paths} for r in range(1, repeat + 1)]
    used = sorted({x["cc"] for rnd in rounds for x in rnd.values()})
    print()
    print(f"## TCP congestion control {cc} (iperf3 reports: {', '.join(used)})")
    if repeat > 1:
        print()
        print("| round | path | throughput Gbit/s | TCP retransmits | CPU s/GB | back-to-back ping avg µs "
              "| idle ping avg µs | p50 µs | p99 µs |")
        print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
        for i, rnd in enumerate(rounds, 1):
            for p in paths:
                r = rnd[p]
                print(f"| {i} | {p} | {r['gbps']:.2f} | {r['retr']} | {r['cpu']:.3f} | {r['bb']:.2f} "
                      f"| {r['avg']:.1f} | {r['p50']:.1f} | {r['p99']:.1f} |")
    # Each figure's median over the rounds (one round: the round itself).
    res = {p: {k: med([rnd[p][k] for rnd in rounds])
               for k in ("gbps", "retr", "cpu", "bb", "bb50", "avg", "p50", "p99", "mn", "mx")}
           for p in paths}
    d = res.get("direct")
    print()
    print(f"median of {repeat} rounds:" if repeat > 1 else "one round:")
    print()
    print("| path | throughput Gbit/s | TCP retransmits | CPU s/GB | back-to-back ping avg µs | added vs direct µs "
          "| idle ping avg µs | p50 µs | p99 µs | min/max µs | added vs direct µs |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p in paths:
        r = res[p]
        added = "—" if p == "direct" or d is None else f"{r['avg'] - d['avg']:+.1f}"
        added_bb = "—" if p == "direct" or d is None else f"{r['bb'] - d['bb']:+.2f}"
        print(f"| {p} | {r['gbps']:.2f} | {r['retr']:.0f} | {r['cpu']:.3f} | {r['bb']:.2f} | {added_bb} "
              f"| {r['avg']:.1f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['mn']:.0f}/{r['mx']:.0f} | {added} |")
    if "direct" not in res or "vxlan" not in res:
        print()
        print("(direct or vxlan did not run: no ratios, no goals)")
        continue
    v = res["vxlan"]
    print()
    print(f"vxlan/direct: {v['gbps'] / d['gbps']:.2f}")
    for t in ("ipip", "bpf"):
        if t not in res:
            continue
        r = res[t]
        to_v, to_d = r["gbps"] / v["gbps"], r["gbps"] / d["gbps"]
        # A round trip crosses the tunnel twice: per packet is half. The
        # goal reads the back-to-back pings (the path's own latency); the
        # idle ones are printed beside it.
        added, added50 = (r["bb"] - d["bb"]) / 2, (r["bb50"] - d["bb50"]) / 2
        idle = (r["avg"] - d["avg"]) / 2
        spread = ""
        if repeat > 1:
            # Per-round ratios show how far the medians can be trusted.
            per = [(x[t]["gbps"] / x["vxlan"]["gbps"], x[t]["gbps"] / x["direct"]["gbps"]) for x in rounds]
            spread = (f" (rounds: {t}/vxlan {', '.join(f'{a:.2f}' for a, _ in per)}; "
                      f"{t}/direct {', '.join(f'{b:.2f}' for _, b in per)})")
        print(f"{t}/vxlan: {to_v:.2f}; {t}/direct: {to_d:.2f}{spread}; "
              f"CPU per GB {t}/vxlan: {r['cpu'] / v['cpu']:.3f}, {t}/direct: {r['cpu'] / d['cpu']:.3f}")
        gv, gd, gl = GOALS[t]
        # Three decimals: 0.998 printed as 1.00 would read as met.
        print(f"goal: {t} >= {gv:.2f}x VXLAN throughput: {met(to_v >= gv)} ({to_v:.3f}x)")
        if gd is not None:
            print(f"goal: {t} >= {gd:.2f}x direct throughput: {met(to_d >= gd)} ({to_d:.3f}x)")
        print(f"goal: {t} adds <= {gl:g} us per packet: {met(added <= gl)} ({added:+.2f} us per packet one way = "
              f"half the back-to-back ping RTT difference {2 * added:+.2f} us avg; {added50:+.1f} us from p50; "
              f"idle pings: {idle:+.1f} us)")
EOF
