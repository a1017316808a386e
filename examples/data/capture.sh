#!/usr/bin/env bash
# Makes bgp-session.pcap, the sample capture of examples/pcap_decode: our
# route reflector (examples/reflector.rs) with two clients from its range,
# BIRD 2 and our speaker (examples/speaker.rs), captured with tcpdump.
# README.md beside this script says what is in it.
#
# Root needed: everything runs in a throwaway network namespace (loopback
# only, with 10.0.0.1-3 on it), removed on every exit path. Needs bird
# (BIRD 2) and tcpdump.
#
#   sudo examples/data/capture.sh [OUT.pcap]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-examples/data/bgp-session.pcap}

for tool in bird tcpdump ip; do
    command -v "$tool" >/dev/null || { echo "capture.sh needs $tool" >&2; exit 1; }
done
cargo build -q -p podroute-examples --example reflector --example speaker
bin=${CARGO_TARGET_DIR:-target}/debug/examples

ns=bgpcap$$
work=$(mktemp -d)
pids=()
cleanup() {
    exec 3>&- 2>/dev/null || true
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
# Background processes run as `ip netns exec` itself (it execs the
# command), so that $! is the process to signal.
nsx() { ip netns exec "$ns" "$@"; }

# wait_for FILE PATTERN: until FILE has a line matching PATTERN (20 s).
wait_for() {
    for _ in $(seq 200); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "timed out waiting for '$2' in $1; the logs:" >&2
    tail -n 20 "$work"/*.log >&2
    exit 1
}

ip netns add "$ns"
nsx ip link set lo up
for a in 10.0.0.1 10.0.0.2 10.0.0.3; do nsx ip addr add "$a/32" dev lo; done

# -Z root: keep writing into our private scratch directory. Immediate
# mode: without it packets wait in the capture ring for up to a second and
# the last ones are lost when tcpdump stops.
ip netns exec "$ns" tcpdump -i lo -U --immediate-mode -Z root -w "$work/cap.pcap" 'tcp port 179' 2>"$work/tcpdump.log" &
pids+=($!)
wait_for "$work/tcpdump.log" "listening on lo"

# The reflector: AS 64512, router ID and cluster ID 10.0.0.1, clients from
# 10.0.0.0/24.
ip netns exec "$ns" "$bin/reflector" 64512 10.0.0.1 10.0.0.0/24 10.0.0.1 10.0.0.1:179 >"$work/reflector.log" 2>&1 &
reflector=$!
pids+=("$reflector")
wait_for "$work/reflector.log" "reflecting"

# First client: BIRD 2 on 10.0.0.3, announcing 10.244.3.0/26.
cat >"$work/bird.conf" <<'BIRD'
log stderr all;
router id 10.0.0.3;
protocol device {}
protocol static blocks {
    ipv4;
    route 10.244.3.0/26 blackhole;
}
protocol bgp reflector {
    local 10.0.0.3 as 64512;
    neighbor 10.0.0.1 as 64512;
    # Listen on 10.0.0.3 only: the reflector has 10.0.0.1:179.
    strict bind yes;
    ipv4 { import all; export where source = RTS_STATIC; next hop self; };
}
BIRD
ip netns exec "$ns" bird -f -c "$work/bird.conf" -s "$work/bird.ctl" >"$work/bird.log" 2>&1 &
pids+=($!)
wait_for "$work/reflector.log" "up   10.0.0.3"

# Second client: our speaker on 10.0.0.2, announcing 10.244.2.0/26; it
# hears BIRD's block through the reflector, withdraws its own, and shuts
# its session down with a shutdown communication.
cat >"$work/speaker.json" <<'JSON'
{"local-as": 64512, "router-id": "10.0.0.2",
 "peers": [{"address": "10.0.0.1", "asn": 64512, "local-address": "10.0.0.2"}]}
JSON
mkfifo "$work/commands"
ip netns exec "$ns" "$bin/speaker" "$work/speaker.json" 10.244.2.0/26 <"$work/commands" >"$work/speaker.log" 2>&1 &
speaker=$!
pids+=("$speaker")
exec 3>"$work/commands"
wait_for "$work/speaker.log" '"prefix":"10.244.3.0/26"'
sleep 0.5
echo "withdraw 10.244.2.0/26" >&3
sleep 0.5
echo "shutdown client maintenance" >&3
wait "$speaker" || true
wait_for "$work/reflector.log" "down 10.0.0.2"

# The reflector stops: Cease to BIRD.
kill -TERM "$reflector"
wait "$reflector" || true
sleep 0.5
kill -INT "${pids[0]}"
wait "${pids[0]}" || true

cp "$work/cap.pcap" "$out"
echo "== reflector"
cat "$work/reflector.log"
echo "== wrote $out ($(stat -c %s "$out") bytes)"
