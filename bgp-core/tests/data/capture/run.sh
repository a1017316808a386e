#!/bin/sh
# Re-create the BGP golden vectors in ../ from real BIRD 2 and GoBGP daemons.
# Usage (as root):  bgp-core/tests/data/capture/run.sh [--only SCENARIO[,SCENARIO...]] [--workdir DIR]
# Needs: bird (2.x) + birdc, gobgpd + gobgp, tcpdump, tshark (optional, for README decodes),
#        iproute2 with netns support, unshare (util-linux), python3 (stdlib only).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" != 0 ]; then
    echo "run.sh: must run as root (creates network namespaces)" >&2
    exit 1
fi
for tool in bird birdc gobgpd gobgp tcpdump ip unshare python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "run.sh: missing $tool" >&2; exit 1; }
done
SUFFIX=$$

cleanup() {
    # capture.py cleans up after itself; this is the safety net for hard kills.
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^bgpc${SUFFIX}[0-9]*[pc]\$" || true); do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
}
trap cleanup EXIT

python3 "$HERE/capture.py" all --suffix "$SUFFIX" --out "$HERE/.." "$@" &
CHILD=$!
trap 'kill -TERM "$CHILD" 2>/dev/null || true; wait "$CHILD" || true; exit 130' INT TERM
rc=0
wait "$CHILD" || rc=$?
exit "$rc"
