#!/usr/bin/env bash
# Ingestion benchmark: how long a BGP receiver takes to hold N routes sent by
# one iBGP peer right after OPEN, and its peak RSS — our speaker, BIRD 2 and
# GoBGP, each in fresh network namespaces, in one run.
#
#   bash bench/ingest.sh [N ...]        (default: 100000 1000000; needs root)
#
# For every N and every receiver: namespaces gen and recv joined by a veth
# (10.79.0.1 ↔ 10.79.0.2), the receiver started in recv with one passive
# iBGP neighbour, then examples/routegen in gen, which connects and sends
# N /26s (pre-encoded, 810 per 4096-byte UPDATE, End-of-RIB last).
# - t0 is the moment the session is Established. podroute times itself
#   (examples/ingest_receiver.rs); for BIRD and GoBGP t0 is the generator's
#   own Established timestamp (same clock; the two ends reach Established
#   within one veth round trip), which is exact where polling the daemon for
#   its state would be late by up to a poll interval.
# - t1 is when the receiver holds all N: podroute counts best-route changes on
#   its route stream; BIRD is polled with `birdc show protocols all NAME`
#   (`Routes: N imported`, a counter — `show route count` walks the table and
#   slows BIRD down), GoBGP with `gobgp neighbor` (the Accepted column; the
#   cheapest call, ~10 ms). Polls come every max(5 ms, elapsed/100), so
#   polling costs the daemon little; t1 is the midpoint between the last poll
#   that saw fewer than N and the first that saw N.
# - Peak RSS is VmHWM of the receiving process; CPU s is the CPU time all its
#   threads used during the run (/proc/PID/task/*/schedstat), which exceeds
#   the wall time when a receiver works on both cores.
# Nothing is installed into any kernel routing table.
#
# Every receiver runs INGEST_REPEAT times per N (default 3, interleaved);
# the table shows the medians and every run. INGEST_TIMEOUT is the limit per
# run in seconds (default 120): a run that does not finish in time is shown
# as "> T" and not repeated. Exit status 1 if a receiver failed to start or
# podroute did not finish.

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/target/release/examples
TIMEOUT=${INGEST_TIMEOUT:-120}
REPEAT=${INGEST_REPEAT:-3}
AS=64512
GEN_IP=10.79.0.1
RECV_IP=10.79.0.2
GOBGP_API=50051
COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(100000 1000000)

SCRIPT=ingest.sh
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
for tool in ip ss nsenter timeout bird birdc gobgpd gobgp cargo; do
	command -v "$tool" >/dev/null || die "$tool not found (bird2 and gobgpd are Debian packages)"
done
for n in "${COUNTS[@]}"; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$n'"
done
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "INGEST_REPEAT must be a positive integer"

(cd "$ROOT" && cargo build --release --quiet -p podroute-examples --example routegen --example ingest_receiver) ||
	die "build failed"

WORK=$(mktemp -d /tmp/ingest.XXXXXX)
NS_GEN=ingest-gen-$$
NS_RECV=ingest-recv-$$
PIDS=()

NAMESPACES=("$NS_GEN" "$NS_RECV")
trap 'cleanup_run; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM HUP PIPE

# Microseconds since the epoch, without a fork.
now() { NOW=${EPOCHREALTIME/./}; }

# Sleeps $1 microseconds.
usleep() { sleep "$(printf '%d.%06d' $(($1 / 1000000)) $(($1 % 1000000)))"; }

# Prints microseconds as seconds with 3 decimals.
secs() { printf '%d.%03d' $(($1 / 1000000)) $((($1 % 1000000 + 500) / 1000)); }

setup_netns() {
	ip netns add "$NS_GEN"
	ip netns add "$NS_RECV"
	ip link add "ig$$g" type veth peer name "ig$$r"
	ip link set "ig$$g" netns "$NS_GEN"
	ip link set "ig$$r" netns "$NS_RECV"
	ip -n "$NS_GEN" addr add "$GEN_IP/24" dev "ig$$g"
	ip -n "$NS_RECV" addr add "$RECV_IP/24" dev "ig$$r"
	ip -n "$NS_GEN" link set lo up
	ip -n "$NS_RECV" link set lo up
	ip -n "$NS_GEN" link set "ig$$g" up
	ip -n "$NS_RECV" link set "ig$$r" up
}


start_gen() {
	ip netns exec "$NS_GEN" "$BIN/routegen" --connect "$RECV_IP:179" --local-as "$AS" \
		--router-id "$GEN_IP" --next-hop "$GEN_IP" --count "$1" 2>"$WORK/gen.err" &
	GEN_PID=$!
	PIDS+=("$GEN_PID")
}

# The generator's Established time in microseconds (GEN_T0), waiting for it.
gen_t0() {
	local line
	for _ in $(seq 1000); do
		line=$(grep -o 'established at_ns=[0-9]*' "$WORK/gen.err" || true)
		if [ -n "$line" ]; then
			GEN_T0=${line#*=}
			GEN_T0=${GEN_T0:0:-3}
			return 0
		fi
		kill -0 "$GEN_PID" 2>/dev/null || return 1
		sleep 0.01
	done
	return 1
}

vm_hwm_mb() {
	local kb
	kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || true)
	[ -n "$kb" ] && awk -v kb="$kb" 'BEGIN {printf "%.1f", kb / 1024}' || echo "?"
}

# CPU time of every thread of process $1 so far, in microseconds (the first
# field of schedstat is nanoseconds on a CPU).
cpu_us() {
	cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ns += $1} END {printf "%d", ns / 1000}'
}

FAILED=0
# receiver n seconds rss cpu (seconds may be ">T" or "failed")
record() {
	echo "$1 $2 $3 $4 ${5:-?}" >>"$WORK/results"
	if [[ $3 =~ ^[0-9.]+$ ]]; then
		echo "{\"receiver\":\"$1\",\"n\":$2,\"seconds\":$3,\"peak_rss_mb\":$4,\"cpu_seconds\":${5:-null}}"
	else
		echo "{\"receiver\":\"$1\",\"n\":$2,\"seconds\":\"$3\",\"peak_rss_mb\":\"$4\"}"
	fi
}

run_podroute() {
	local n=$1 pid
	setup_netns
	ip netns exec "$NS_RECV" "$BIN/ingest_receiver" --listen "$RECV_IP:179" --peer "$GEN_IP" \
		--local-as "$AS" --router-id "$RECV_IP" --count "$n" >"$WORK/recv.out" 2>"$WORK/recv.err" &
	pid=$!
	PIDS+=("$pid")
	if ! wait_listening "$NS_RECV" "$pid" 500; then
		cat "$WORK/recv.err" >&2
		FAILED=1
		record podroute "$n" failed "?"
		return
	fi
	start_gen "$n"
	now
	local deadline=$((NOW + TIMEOUT * 1000000))
	while kill -0 "$pid" 2>/dev/null && [ "$NOW" -lt "$deadline" ]; do
		sleep 0.02
		now
	done
	local line
	line=$(grep '^{' "$WORK/recv.out" || true)
	if [ -z "$line" ]; then
		kill -0 "$pid" 2>/dev/null && record podroute "$n" ">$TIMEOUT" "$(vm_hwm_mb "$pid")" ||
			record podroute "$n" failed "?"
		cat "$WORK/recv.err" "$WORK/gen.err" >&2
		FAILED=1
		return
	fi
	local s rss cpu
	s=$(sed -E 's/.*"seconds":([0-9.]+).*/\1/' <<<"$line")
	rss=$(sed -E 's/.*"peak_rss_mb":([0-9.]+).*/\1/' <<<"$line")
	cpu=$(sed -E 's/.*"cpu_seconds":([0-9.]+).*/\1/' <<<"$line")
	record podroute "$n" "$s" "$rss" "$cpu"
}

# Polls `$@` (a command printing the route count) until it reaches $N, with
# t0 from the generator; sets RESULT_S to seconds or ">T", and RESULT_CPU to
# the CPU seconds process $2 used since CPU0_US (read before the generator
# started, when the daemon was idle).
POLL_N=0
poll_until() {
	local n=$1 pid=$2
	shift 2
	if ! gen_t0; then
		RESULT_S=failed
		return
	fi
	local t0=$GEN_T0 prev count interval
	RESULT_CPU="?"
	now
	prev=$NOW
	local deadline=$((t0 + TIMEOUT * 1000000))
	POLL_N=0
	while :; do
		count=$("$@" 2>/dev/null || true)
		now
		POLL_N=$((POLL_N + 1))
		if [ "${count:-0}" -ge "$n" ]; then
			RESULT_S=$(secs $(((prev + NOW) / 2 - t0)))
			RESULT_CPU=$(secs $(($(cpu_us "$pid") - CPU0_US)))
			return
		fi
		if [ "$NOW" -ge "$deadline" ] || ! kill -0 "$pid" 2>/dev/null; then
			RESULT_S=">$TIMEOUT"
			kill -0 "$pid" 2>/dev/null || RESULT_S=failed
			return
		fi
		prev=$NOW
		interval=$(((NOW - t0) / 100))
		[ "$interval" -ge 5000 ] || interval=5000
		usleep "$interval"
		now
	done
}

bird_imported() {
	birdc -s "$WORK/bird.ctl" show protocols all generator |
		sed -nE 's/^ *Routes: *([0-9]+) imported.*/\1/p'
}

run_bird() {
	local n=$1 pid
	setup_netns
	# One passive iBGP neighbour on the shared subnet (`direct`, so the next
	# hop resolves through the interface `device` lists, as on a real node),
	# import all, export none; no kernel protocol, so nothing is programmed.
	cat >"$WORK/bird.conf" <<-EOF
		log "$WORK/bird.log" { warning, error, fatal, bug };
		router id $RECV_IP;
		protocol device { }
		protocol bgp generator {
			local $RECV_IP as $AS;
			neighbor $GEN_IP as $AS;
			direct;
			passive on;
			ipv4 { import all; export none; };
		}
	EOF
	rm -f "$WORK/bird.pid"
	if ! ip netns exec "$NS_RECV" bird -c "$WORK/bird.conf" -s "$WORK/bird.ctl" -P "$WORK/bird.pid"; then
		FAILED=1
		record bird "$n" failed "?"
		return
	fi
	pid=$(cat "$WORK/bird.pid")
	PIDS+=("$pid")
	if ! wait_listening "$NS_RECV" "$pid" 500; then
		cat "$WORK/bird.log" >&2 2>/dev/null || true
		FAILED=1
		record bird "$n" failed "?"
		return
	fi
	CPU0_US=$(cpu_us "$pid")
	start_gen "$n"
	poll_until "$n" "$pid" bird_imported
	[ "$RESULT_S" != failed ] || FAILED=1
	record bird "$n" "$RESULT_S" "$(vm_hwm_mb "$pid")" "$RESULT_CPU"
}

gobgp_accepted() {
	# A busy gobgpd can take seconds to answer; do not let one call hang the
	# run (or its cleanup).
	timeout 10 nsenter --net="/run/netns/$NS_RECV" gobgp -p "$GOBGP_API" neighbor |
		awk -v peer="$GEN_IP" '$1 == peer {print $NF}'
}

run_gobgp() {
	local n=$1 pid
	setup_netns
	cat >"$WORK/gobgp.toml" <<-EOF
		[global.config]
		  as = $AS
		  router-id = "$RECV_IP"
		  port = 179
		  local-address-list = ["$RECV_IP"]
		[[neighbors]]
		  [neighbors.config]
		    neighbor-address = "$GEN_IP"
		    peer-as = $AS
		  [neighbors.transport.config]
		    passive-mode = true
		  [[neighbors.afi-safis]]
		    [neighbors.afi-safis.config]
		      afi-safi-name = "ipv4-unicast"
	EOF
	ip netns exec "$NS_RECV" gobgpd -f "$WORK/gobgp.toml" --api-hosts="127.0.0.1:$GOBGP_API" \
		>"$WORK/gobgpd.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	disown "$pid"
	if ! wait_listening "$NS_RECV" "$pid" 500; then
		tail -5 "$WORK/gobgpd.log" >&2
		FAILED=1
		record gobgp "$n" failed "?"
		return
	fi
	CPU0_US=$(cpu_us "$pid")
	start_gen "$n"
	poll_until "$n" "$pid" gobgp_accepted
	[ "$RESULT_S" != failed ] || FAILED=1
	record gobgp "$n" "$RESULT_S" "$(vm_hwm_mb "$pid")" "$RESULT_CPU"
}

# The median of the numbers on stdin, or the first non-number (a failure
# or a timeout marks the whole cell).
median() {
	local -a v
	mapfile -t v
	local x
	for x in "${v[@]}"; do
		[[ $x =~ ^[0-9.]+$ ]] || {
			echo "$x"
			return
		}
	done
	mapfile -t v < <(printf '%s\n' "${v[@]}" | sort -g)
	echo "${v[$((${#v[@]} / 2))]}"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for n in "${COUNTS[@]}"; do
	for rep in $(seq "$REPEAT"); do
		# Receivers alternate within a repetition so a burst of load from
		# elsewhere on the machine does not land on one receiver only.
		for receiver in podroute bird gobgp; do
			# One timeout is enough to know: do not spend it again.
			if grep -q "^$receiver $n >" "$WORK/results" 2>/dev/null; then
				continue
			fi
			echo "# $receiver, N=$n, run $rep/$REPEAT (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
			"run_$receiver" "$n"
			cleanup_run
		done
	done
done

echo
echo "load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores); median of $REPEAT runs"
echo
echo "| receiver | N | seconds | peak RSS MB | CPU s | BIRD s / this s | this RSS / BIRD RSS | runs (s) |"
echo "|---|---:|---:|---:|---:|---:|---:|---|"
for n in "${COUNTS[@]}"; do
	rows=()
	for receiver in podroute bird gobgp; do
		s=$(awk -v r="$receiver" -v n="$n" '$1 == r && $2 == n {print $3}' "$WORK/results" | median)
		m=$(awk -v r="$receiver" -v n="$n" '$1 == r && $2 == n {print $4}' "$WORK/results" | median)
		c=$(awk -v r="$receiver" -v n="$n" '$1 == r && $2 == n {print $5}' "$WORK/results" | median)
		runs=$(awk -v r="$receiver" -v n="$n" '$1 == r && $2 == n {printf "%s%s", sep, $3; sep = ", "}' "$WORK/results")
		rows+=("$receiver $s $m $c $runs")
		if [ "$receiver" = bird ]; then
			bird_s=$s
			bird_m=$m
		fi
	done
	for row in "${rows[@]}"; do
		read -r receiver s m c runs <<<"$row"
		awk -v r="$receiver" -v n="$n" -v s="$s" -v m="$m" -v c="$c" -v bs="$bird_s" -v bm="$bird_m" -v runs="$runs" '
			function num(x) { return x ~ /^[0-9.]+$/ }
			BEGIN {
				sp = (num(s) && num(bs) && s > 0) ? sprintf("%.2f", bs / s) : "-"
				if (s ~ /^>/ && num(bs)) sp = sprintf("< %.3f", bs / substr(s, 2))
				mr = (num(m) && num(bm) && bm > 0) ? sprintf("%.2f", m / bm) : "-"
				sec = s ~ /^>/ ? "> " substr(s, 2) : s
				printf "| %s | %d | %s | %s | %s | %s | %s | %s |\n", r, n, sec, m, c, sp, mr, runs
			}'
	done
done

exit "$FAILED"
