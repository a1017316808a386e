# Helpers shared by the benchmark scripts in bench/ (sourced, not run).
# The script sets SCRIPT (its name, for messages), PIDS=() (the processes a
# run starts) and NAMESPACES=() (the namespaces it creates).

# Prints the message and exits 1.
die() {
	echo "$SCRIPT: $*" >&2
	exit 1
}

# Stops what this run started (by pid: SIGTERM, up to 5 s, then SIGKILL)
# and deletes its namespaces.
cleanup_run() {
	local pid ns
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		kill -9 "$pid" 2>/dev/null || true
	done
	PIDS=()
	for ns in "${NAMESPACES[@]}"; do
		ip netns del "$ns" 2>/dev/null || true
	done
}

# Waits until something listens on TCP port 179 in namespace $1; fails if
# process $2 dies first or after $3 polls of 20 ms (default 1,500: 30 s).
wait_listening() {
	local ns=$1 pid=$2 polls=${3:-1500}
	for _ in $(seq "$polls"); do
		if [ -n "$(ip netns exec "$ns" ss -Hltn 'sport = :179')" ]; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.02
	done
	return 1
}
