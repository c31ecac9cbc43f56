# scripts/lib.sh: shell functions shared by scripts/load.sh and scripts/soak.sh (sourced,
# not run). They expect TICKS (getconf CLK_TCK), QUIET_WAIT and SERVER_PID from the caller.

# port_free PORT: true when nothing listens on 127.0.0.1:PORT over UDP or TCP.
port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null || return 1
	if command -v ss >/dev/null; then
		[[ -z $(ss -Hlnu "sport = :$1" 2>/dev/null) && -z $(ss -Hlnt "sport = :$1" 2>/dev/null) ]]
	fi
}

# free_port: a random high port that looks free (the caller retries if it loses a race).
free_port() {
	local p
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 40000))
		if port_free "$p"; then
			echo "$p"
			return 0
		fi
	done
	echo "no free port found" >&2
	return 1
}

# stop_server: stops the server started last: TERM, then KILL after 2 s.
stop_server() {
	local pid=$SERVER_PID
	kill "$pid" 2>/dev/null || true
	for _ in $(seq 40); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# busy_ticks: CPU time the whole host spent busy (user, nice, system, irq, softirq, steal).
busy_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }

# wait_quiet: waits up to QUIET_WAIT seconds, one-second samples, for the host to spend less
# than a quarter of a core busy (other work on a shared machine skews every figure).
wait_quiet() {
	local t0 t1 waited=0
	((QUIET_WAIT > 0)) || return 0
	while :; do
		t0=$(busy_ticks)
		sleep 1
		t1=$(busy_ticks)
		if (((t1 - t0) * 4 < TICKS)); then
			((waited == 0)) || echo "host quiet after ${waited}s" >&2
			return 0
		fi
		waited=$((waited + 1))
		if ((waited >= QUIET_WAIT)); then
			echo "warning: the host is still busy after ${QUIET_WAIT}s (other work running); measuring anyway" >&2
			return 0
		fi
		((waited > 1)) || echo "host busy ($(((t1 - t0) * 100 / TICKS)) % of a core); waiting up to ${QUIET_WAIT}s" >&2
	done
}
