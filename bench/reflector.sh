#!/usr/bin/env bash
# Route-reflector benchmark: C iBGP clients each announce B /26 blocks at
# once through one reflector — our speaker, BIRD 2 and GoBGP, each in fresh
# network namespaces, in one run — timed until every client holds all C × B
# routes, then until one client's withdrawal has reached all the others.
#
#   bash bench/reflector.sh [C ...]     (default: 100 1000 2000; needs root)
#
# For every C and every reflector: namespace rr holds the reflector on
# 10.81.0.1, namespace clients holds C addresses 10.82.0.1, 10.82.0.2, …
# (one /32 each on its end of one veth, 10.81.0.2), with a route
# 10.82.0.0/16 via 10.81.0.2 in rr — so each namespace has one neighbour
# entry, however many clients (2,000 on-link addresses would overflow the
# kernel's shared ARP table, gc_thresh3 = 1024). examples/rrclients runs
# all C clients in one process in clients (see its docs for the phases):
# - setup s: first connect to last Established, with REFLECTOR_PARALLEL
#   (8) handshakes in flight — BIRD listens with a backlog of 8, and more
#   at once makes its setup time a matter of SYN retransmission timers.
# - converge s: t1 − t0; t0 = the first client's UPDATE handed to the
#   kernel (every client sends its one UPDATE when one barrier opens), t1 =
#   the moment the last client holds all C × B routes (its own B plus the
#   others', each with its owner's NEXT_HOP).
# - withdraw s: client 0 withdraws its B blocks at tw; t2 = the moment every
#   other client has removed them.
# - peak RSS MB: VmHWM of the reflector, read after t2 (before the clients
#   close their sessions).
# - CPU s: CPU time of all the reflector's threads from just before t0 to
#   t1 (/proc/PID/task/*/schedstat, read by rrclients at both moments).
# Before t0 and before tw the clients wait until the reflector is idle
# (under 5% of a CPU for 250 ms), so each phase starts from a quiet
# reflector. Nothing is installed into any kernel routing table.
#
# Reflectors, all with cluster ID 10.81.0.1, hold time 240 s, IPv4 unicast:
# - podroute: examples/speaker with a JSON config from our_config (every
#   client a passive route-reflector client); stdout to /dev/null.
# - bird: BIRD 2, a template with `rr client; passive on; import all;
#   export all`, no kernel protocol.
# - gobgp: gobgpd with a passive route-reflector-client peer group.
# REFLECTOR_PEERS=list (default) configures every client by address in all
# three; REFLECTOR_PEERS=range gives BIRD (`neighbor range`) and GoBGP
# (dynamic-neighbors) the client prefix instead, and is passed to our_config.
#
# Every reflector runs REFLECTOR_REPEAT times per C (default 3, interleaved);
# the table shows medians (of the runs that finished; a failed run is in
# the runs column and a note) and every run. REFLECTOR_TIMEOUT limits each
# phase in seconds (default 300): a run that does not finish in time is
# shown as "> T" and not repeated, and neither is one that took longer than
# REFLECTOR_ONCE_AFTER seconds to converge (default 60: one run of that
# length is enough to know). A reflector whose RSS passes
# REFLECTOR_MAX_RSS_MB (default 8192) is stopped ("stopped"). REFLECTOR_BLOCKS
# is B (default 10), REFLECTORS the reflectors to run (default "podroute bird
# gobgp"), REFLECTOR_LOGS=DIR keeps every run's rrclients output and
# reflector log there. A missing binary is reported as "not installed".
# Exit status 1 if any run failed, timed out or was stopped.

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/target/release/examples
TIMEOUT=${REFLECTOR_TIMEOUT:-300}
REPEAT=${REFLECTOR_REPEAT:-3}
ONCE_AFTER=${REFLECTOR_ONCE_AFTER:-60}
BLOCKS=${REFLECTOR_BLOCKS:-10}
MAX_RSS_MB=${REFLECTOR_MAX_RSS_MB:-8192}
PARALLEL=${REFLECTOR_PARALLEL:-8}
PEERS=${REFLECTOR_PEERS:-list}
KEEP=${REFLECTOR_LOGS:-}
RUN_N=0
read -r -a REFLECTORS <<<"${REFLECTORS:-podroute bird gobgp}"
AS=64512
RR_IP=10.81.0.1
GW_IP=10.81.0.2
CLIENT_NET=10.82.0.0/16
FIRST_CLIENT=10.82.0.1
GOBGP_API=50052
COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(100 1000 2000)

SCRIPT=reflector.sh
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
for tool in ip ss cargo awk; do
	command -v "$tool" >/dev/null || die "$tool not found"
done
for c in "${COUNTS[@]}"; do
	[[ $c =~ ^[1-9][0-9]*$ && $c -ge 2 && $c -le 60000 ]] || die "C must be an integer from 2 to 60000, got '$c'"
done
for v in REPEAT TIMEOUT ONCE_AFTER BLOCKS MAX_RSS_MB PARALLEL; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "REFLECTOR_$v must be a positive integer"
done
[[ $PEERS == list || $PEERS == range ]] || die "REFLECTOR_PEERS must be list or range"
# One UPDATE per client; the blocks count up from 10.200.0.0 (rrclients).
[ "$BLOCKS" -le 1000 ] || die "REFLECTOR_BLOCKS must be at most 1000 (one UPDATE per client)"
for c in "${COUNTS[@]}"; do
	[ $((c * BLOCKS)) -le 57344 ] || die "C × B = $((c * BLOCKS)) /26 blocks do not fit in 10.200.0.0-10.255.255.255"
done
[ -z "$KEEP" ] || mkdir -p "$KEEP" || die "cannot create REFLECTOR_LOGS=$KEEP"
for r in "${REFLECTORS[@]}"; do
	[[ $r == podroute || $r == bird || $r == gobgp ]] || die "unknown reflector '$r' in REFLECTORS"
done

# Every client is a socket in one process, and the reflector holds as many.
max_c=0
for c in "${COUNTS[@]}"; do [ "$c" -le "$max_c" ] || max_c=$c; done
want_files=$((2 * max_c + 1024))
[ "$want_files" -ge 4096 ] || want_files=4096
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want_files" ]; then
	ulimit -Hn "$want_files" || die "cannot raise the hard open-file limit to $want_files"
fi
ulimit -n "$want_files" || die "cannot raise the open-file limit to $want_files (ulimit -n)"

(cd "$ROOT" && cargo build --release --quiet -p podroute-examples --example rrclients --example speaker) ||
	die "build failed"

# Which reflectors can run; the others are reported, never measured.
declare -A MISSING=()
command -v bird >/dev/null && command -v birdc >/dev/null || MISSING[bird]="not installed"
command -v gobgpd >/dev/null || MISSING[gobgp]="not installed"

WORK=$(mktemp -d /tmp/reflector.XXXXXX)
NS_RR=rr-$$
NS_CLIENTS=clients-$$
PIDS=()

NAMESPACES=("$NS_RR" "$NS_CLIENTS")
trap 'cleanup_run; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM HUP PIPE

# The addresses of $1 clients, one a line: 10.82.0.1, 10.82.0.2, …
# (client i has FIRST_CLIENT + i, as rrclients computes it).
client_ips() {
	awk -v c="$1" 'BEGIN {
		for (i = 0; i < c; i++) {
			n = 10 * 2^24 + 82 * 2^16 + 1 + i
			printf "%d.%d.%d.%d\n", int(n / 2^24), int(n / 2^16) % 256, int(n / 2^8) % 256, n % 256
		}
	}'
}

setup_netns() {
	local c=$1
	ip netns add "$NS_RR"
	ip netns add "$NS_CLIENTS"
	ip link add "rb$$r" type veth peer name "rb$$c"
	ip link set "rb$$r" netns "$NS_RR"
	ip link set "rb$$c" netns "$NS_CLIENTS"
	ip -n "$NS_RR" addr add "$RR_IP/24" dev "rb$$r"
	ip -n "$NS_CLIENTS" addr add "$GW_IP/24" dev "rb$$c"
	client_ips "$c" | awk -v dev="rb$$c" '{print "addr add " $1 "/32 dev " dev}' |
		ip -n "$NS_CLIENTS" -batch -
	ip -n "$NS_RR" link set lo up
	ip -n "$NS_CLIENTS" link set lo up
	ip -n "$NS_RR" link set "rb$$r" up
	ip -n "$NS_CLIENTS" link set "rb$$c" up
	ip -n "$NS_RR" route add "$CLIENT_NET" via "$GW_IP"
}


# Our reflector's config for C clients (JSON, bgp_core::speaker::
# SpeakerConfig): with REFLECTOR_PEERS=range ($2) one dynamic-neighbour
# range (limit C) instead of C configured peers.
our_config() {
	local c=$1 peers=${2:-list}
	printf '{"local-as": %d, "router-id": "%s", "cluster-id": "%s", "hold-time": 240,\n' "$AS" "$RR_IP" "$RR_IP"
	printf ' "listen": {"address": "%s", "port": 179},\n' "$RR_IP"
	if [ "$peers" = range ]; then
		printf ' "dynamic-neighbors": [{"prefix": "%s", "asn": %d, "limit": %d, "route-reflector-client": true, "ipv6": false}]}\n' \
			"$CLIENT_NET" "$AS" "$c"
		return
	fi
	printf ' "peers": [\n'
	client_ips "$c" | awk -v as="$AS" '{
		printf "%s  {\"address\": \"%s\", \"asn\": %d, \"passive\": true, \"route-reflector-client\": true, \"ipv6\": false}",
			(NR > 1 ? ",\n" : ""), $1, as
	}'
	printf '\n]}\n'
}

bird_config() {
	local c=$1
	# No kernel protocol: nothing is programmed. The client prefix is a
	# static route in its own table, used only to resolve the clients' next
	# hops (BIRD's iBGP default is `gateway recursive`); master4 holds only
	# BGP routes, so `export all` sends the clients nothing else.
	cat <<-EOF
		log "$WORK/bird.log" { warning, error, fatal, bug };
		router id $RR_IP;
		ipv4 table igp4;
		protocol device { }
		protocol static clientnet { ipv4 { table igp4; }; route $CLIENT_NET via $GW_IP; }
		template bgp rrclient {
			local $RR_IP as $AS;
			rr client;
			rr cluster id $RR_IP;
			passive on;
			hold time 240;
			ipv4 { igp table igp4; import all; export all; };
		}
	EOF
	if [ "$PEERS" = range ]; then
		printf 'protocol bgp clients from rrclient {\n\tneighbor range %s as %d;\n\tdynamic name "client";\n}\n' \
			"$CLIENT_NET" "$AS"
	else
		client_ips "$c" | awk -v as="$AS" '{printf "protocol bgp client%d from rrclient { neighbor %s as %d; }\n", NR - 1, $1, as}'
	fi
}

gobgp_config() {
	local c=$1
	cat <<-EOF
		[global.config]
		  as = $AS
		  router-id = "$RR_IP"
		  port = 179
		  local-address-list = ["$RR_IP"]
		[[peer-groups]]
		  [peer-groups.config]
		    peer-group-name = "clients"
		    peer-as = $AS
		  [peer-groups.timers.config]
		    hold-time = 240
		    keepalive-interval = 80
		  [peer-groups.transport.config]
		    passive-mode = true
		  [peer-groups.route-reflector.config]
		    route-reflector-client = true
		    route-reflector-cluster-id = "$RR_IP"
		  [[peer-groups.afi-safis]]
		    [peer-groups.afi-safis.config]
		      afi-safi-name = "ipv4-unicast"
	EOF
	if [ "$PEERS" = range ]; then
		printf '[[dynamic-neighbors]]\n  [dynamic-neighbors.config]\n    prefix = "%s"\n    peer-group = "clients"\n' "$CLIENT_NET"
	else
		client_ips "$c" | awk '{printf "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"%s\"\n    peer-group = \"clients\"\n", $1}'
	fi
}

# Starts reflector $1 for $2 clients in rr; sets RR_PID, or returns 1.
start_reflector() {
	local r=$1 c=$2
	case $r in
	podroute)
		our_config "$c" "$PEERS" >"$WORK/speaker.json"
		ip netns exec "$NS_RR" "$BIN/speaker" "$WORK/speaker.json" </dev/null >/dev/null 2>"$WORK/reflector.log" &
		RR_PID=$!
		PIDS+=("$RR_PID")
		;;
	bird)
		bird_config "$c" >"$WORK/bird.conf"
		# In the foreground (-f), so its pid is known from the start and it
		# cannot outlive the run.
		ip netns exec "$NS_RR" bird -f -c "$WORK/bird.conf" -s "$WORK/bird.ctl" -P "$WORK/bird.pid" \
			>"$WORK/reflector.log" 2>&1 &
		RR_PID=$!
		PIDS+=("$RR_PID")
		;;
	gobgp)
		gobgp_config "$c" >"$WORK/gobgp.toml"
		ip netns exec "$NS_RR" gobgpd -f "$WORK/gobgp.toml" --api-hosts="127.0.0.1:$GOBGP_API" \
			>"$WORK/reflector.log" 2>&1 &
		RR_PID=$!
		PIDS+=("$RR_PID")
		disown "$RR_PID"
		# gobgpd listens before it has read its neighbours, and closes
		# connections from addresses it does not know yet: wait for them.
		wait_logged "$RR_PID" "$c" || return 1
		;;
	esac
	wait_listening "$NS_RR" "$RR_PID"
}

# Waits until gobgpd ($1) has logged every neighbour of $2 (or the peer
# group, for ranges) as configured.
wait_logged() {
	local pid=$1 want=$2 what='"Add a peer configuration"'
	if [ "$PEERS" = range ]; then
		what='"Add Dynamic Neighbor to PeerGroup"'
		want=1
	fi
	for _ in $(seq 3000); do
		[ "$(grep -c "$what" "$WORK/reflector.log")" -lt "$want" ] || return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.02
	done
	return 1
}

# Prints the value of key $1 in the summary line of rrclients, or "-".
field() {
	sed -nE "s/^rrclients: summary.* $1=([^ ]+).*/\\1/p" "$WORK/clients.err" | tail -1 | grep . || echo -
}

FAILED=0
NOTES=()
# reflector c setup converge withdraw rss cpu client-cpu (times may be ">T",
# "stopped" or "failed")
record() {
	echo "$*" >>"$WORK/results"
	printf '{"reflector":"%s","clients":%d,"blocks":%d,"setup_s":"%s","converge_s":"%s","withdraw_s":"%s","peak_rss_mb":"%s","cpu_s":"%s","client_cpu_s":"%s"}\n' \
		"$1" "$2" "$BLOCKS" "$3" "$4" "$5" "$6" "$7" "$8"
}

run_one() {
	local r=$1 c=$2 cpid stopped= n=0 kb
	setup_netns "$c"
	if ! start_reflector "$r" "$c"; then
		tail -5 "$WORK/reflector.log" >&2 || true
		FAILED=1
		record "$r" "$c" failed failed failed - - -
		return
	fi
	ip netns exec "$NS_CLIENTS" "$BIN/rrclients" --reflector "$RR_IP:179" --first-address "$FIRST_CLIENT" \
		--clients "$c" --blocks "$BLOCKS" --local-as "$AS" --timeout "$TIMEOUT" --watch-pid "$RR_PID" \
		--parallel "$PARALLEL" \
		</dev/null 2>"$WORK/clients.err" &
	cpid=$!
	PIDS+=("$cpid")
	# rrclients limits each of its three phases (and settling) itself; this
	# is the backstop should it hang. Once a second the reflector's memory
	# is checked against REFLECTOR_MAX_RSS_MB (the machine is shared).
	local limit=$((SECONDS + 4 * TIMEOUT + 120))
	while kill -0 "$cpid" 2>/dev/null && [ "$SECONDS" -lt "$limit" ]; do
		sleep 0.1
		n=$((n + 1))
		if [ -z "$stopped" ] && [ $((n % 10)) -eq 0 ]; then
			kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$RR_PID/status" 2>/dev/null || echo 0)
			if [ "${kb:-0}" -gt $((MAX_RSS_MB * 1024)) ]; then
				stopped=1
				NOTES+=("$r at C=$c: stopped when its RSS passed $MAX_RSS_MB MB (REFLECTOR_MAX_RSS_MB)")
				kill -TERM "$cpid" 2>/dev/null || true
			fi
		fi
	done
	grep -E '^rrclients: (established|settled|converged|withdrawn|.* in phase )' "$WORK/clients.err" >&2 || true
	local result phase setup converge withdraw rss cpu ccpu
	result=$(field result)
	phase=$(field phase)
	setup=$(field setup_s)
	converge=$(field converge_s)
	withdraw=$(field withdraw_s)
	rss=$(field reflector_peak_rss_mb)
	cpu=$(field reflector_cpu_converge_s)
	ccpu=$(field client_cpu_s)
	if ! kill -0 "$RR_PID" 2>/dev/null; then
		echo "reflector.sh: $r exited during the run" >&2
		tail -5 "$WORK/reflector.log" >&2 || true
		result=failed
	fi
	[ -z "$stopped" ] || result=stopped
	case $result in
	ok) ;;
	timeout | stopped)
		FAILED=1
		local mark=">$TIMEOUT"
		[ "$result" = timeout ] || mark=stopped
		# Phases after the one that ran out were never measured; usage
		# until then is a lower bound, marked as one.
		case $phase in
		setup) setup=$mark converge=- withdraw=- cpu=- ;;
		converge)
			converge=$mark withdraw=-
			[ "$cpu" = - ] || cpu=">$cpu"
			[ "$rss" = - ] || rss=">$rss"
			;;
		withdraw) withdraw=$mark ;;
		esac
		;;
	*)
		FAILED=1
		grep -E '^rrclients: ' "$WORK/clients.err" | grep -v ' progress ' | tail -3 >&2 || true
		local why
		why=$(grep -E '^rrclients: .* in phase ' "$WORK/clients.err" | head -1 | sed 's/^rrclients: //' || true)
		NOTES+=("$r at C=$c failed: ${why:-see its rrclients output (REFLECTOR_LOGS)}")
		setup=failed converge=failed withdraw=failed rss=- cpu=- ccpu=-
		;;
	esac
	record "$r" "$c" "$setup" "$converge" "$withdraw" "$rss" "$cpu" "$ccpu"
	if [ -n "$KEEP" ]; then
		RUN_N=$((RUN_N + 1))
		cp "$WORK/clients.err" "$KEEP/$RUN_N-$r-$c.clients.log"
		cp "$WORK/reflector.log" "$KEEP/$RUN_N-$r-$c.reflector.log" 2>/dev/null || true
	fi
}

# The median of the values on stdin. A bound (">T", "stopped") in any run
# marks the whole cell with it; failed runs ("failed", "-") are left out
# when others finished (the runs column and a note show them), and mark
# the cell when none did.
median() {
	local -a v all
	mapfile -t all
	local x
	v=()
	for x in "${all[@]}"; do
		case $x in
		">"* | stopped)
			echo "$x"
			return
			;;
		failed | -) ;;
		*) v+=("$x") ;;
		esac
	done
	[ ${#v[@]} -gt 0 ] || {
		echo "${all[0]:--}"
		return
	}
	[ ${#v[@]} -gt 0 ] || {
		echo -
		return
	}
	mapfile -t v < <(printf '%s\n' "${v[@]}" | sort -g)
	echo "${v[$((${#v[@]} / 2))]}"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for c in "${COUNTS[@]}"; do
	for rep in $(seq "$REPEAT"); do
		# Reflectors alternate within a repetition so a burst of load from
		# elsewhere on the machine does not land on one reflector only.
		for r in "${REFLECTORS[@]}"; do
			[ -z "${MISSING[$r]:-}" ] || continue
			# A timeout, a stop, or one run this slow is enough to know.
			if awk -v r="$r" -v c="$c" -v once="$ONCE_AFTER" '
				$1 == r && $2 == c && ($4 ~ /^>|stopped/ || ($4 ~ /^[0-9.]+$/ && $4 + 0 > once)) {found = 1}
				END {exit !found}' "$WORK/results" 2>/dev/null; then
				continue
			fi
			echo "# $r, C=$c, B=$BLOCKS, run $rep/$REPEAT (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
			run_one "$r" "$c"
			cleanup_run
		done
	done
done

echo
echo "B = $BLOCKS blocks per client, peers configured as: $PEERS; per-phase limit $TIMEOUT s"
echo "load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores); median of up to $REPEAT runs"
echo
echo "| clients | reflector | setup s | converge s | withdraw s | peak RSS MB | CPU s | converge ÷ ours | CPU ÷ ours | runs: converge s | clients' CPU s |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"
# Column $3 of the results of reflector $1 at C = $2, as the median.
col() { awk -v r="$1" -v c="$2" -v k="$3" '$1 == r && $2 == c {print $k}' "$WORK/results" 2>/dev/null | median; }
have_ours=0
[[ " ${REFLECTORS[*]} " != *" podroute "* ]] || have_ours=1
for c in "${COUNTS[@]}"; do
	ours_s=$(col podroute "$c" 4)
	ours_c=$(col podroute "$c" 7)
	for r in "${REFLECTORS[@]}"; do
		if [ -n "${MISSING[$r]:-}" ]; then
			echo "| $c | $r | ${MISSING[$r]} | | | | | | | | |"
			continue
		fi
		setup=$(col "$r" "$c" 3) conv=$(col "$r" "$c" 4) wd=$(col "$r" "$c" 5)
		rss=$(col "$r" "$c" 6) cpu=$(col "$r" "$c" 7) ccpu=$(col "$r" "$c" 8)
		runs=$(awk -v r="$r" -v c="$c" '$1 == r && $2 == c {printf "%s%s", sep, $4; sep = ", "}' "$WORK/results" 2>/dev/null)
		awk -v c="$c" -v r="$r" -v setup="$setup" -v conv="$conv" -v wd="$wd" -v rss="$rss" -v cpu="$cpu" \
			-v os="$ours_s" -v oc="$ours_c" -v runs="$runs" -v ccpu="$ccpu" -v have_ours="$have_ours" '
			function num(x) { return x ~ /^[0-9.]+$/ }
			function show(x) { return x ~ /^>/ ? "> " substr(x, 2) : x }
			# this ÷ ours: > 1 means ours is faster. Ours over the limit
			# gives an upper bound; this over the limit a lower one.
			function ratio(x, o) {
				if (!have_ours || r == "podroute") return r == "podroute" && num(x) ? "1.00" : "-"
				if (num(x) && num(o)) return o > 0 ? sprintf("%.2f", x / o) : "-"
				if (num(x) && o ~ /^>/) return sprintf("< %.3f", x / substr(o, 2))
				if (x ~ /^>/ && num(o) && o > 0) return sprintf("> %.2f", substr(x, 2) / o)
				return "-"
			}
			BEGIN {
				if (runs == "") { printf "| %d | %s | not run | | | | | | | | |\n", c, r; exit }
				printf "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c, r, show(setup), show(conv),
					show(wd), show(rss), show(cpu), ratio(conv, os), ratio(cpu, oc), runs, ccpu
			}'
	done
done

for note in "${NOTES[@]}"; do
	echo
	echo "Note: $note"
done

exit "$FAILED"
