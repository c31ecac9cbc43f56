# scripts/lib.sh: shell functions shared by scripts/load.sh and scripts/soak.sh (sourced,
# not run). They expect TICKS (getconf CLK_TCK), QUIET_WAIT, WORK and PIDS from the caller.

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

# start_server KIND MODE LOG [ARGS...]: starts the server on a free port; sets SERVER_PID and
# SERVER_PORT. KIND is baseline or imbot; ARGS go to the baseline. SRV_PREFIX (optional)
# runs before the server (taskset). Needs WORK and PIDS.
start_server() {
	local kind=$1 mode=$2 log=$3 port pid
	shift 3
	for _ in 1 2 3 4 5; do
		port=$(free_port)
		case $kind in
		baseline) "${SRV_PREFIX[@]+"${SRV_PREFIX[@]}"}" "$WORK/loadbase" -listen "127.0.0.1:$port" -mode "$mode" "$@" >"$log" 2>&1 & ;;
		imbot) "${SRV_PREFIX[@]+"${SRV_PREFIX[@]}"}" "$WORK/echo" -listen "127.0.0.1:$port" >"$log" 2>&1 & ;;
		esac
		pid=$!
		PIDS+=("$pid")
		# Ready once it says it listens (both print a line after binding), or dead.
		for _ in $(seq 200); do
			if grep -qs -e 'loadbase: .* mode on' -e 'imbot listening' "$log"; then
				SERVER_PID=$pid
				SERVER_PORT=$port
				return 0
			fi
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		echo "$kind did not start on port $port (retrying):" >&2
		tail -3 "$log" >&2
	done
	echo "$kind would not start" >&2
	return 1
}

# stop_pids PID...: kills each process still running and waits for it (the caller's
# children).
stop_pids() {
	local pid
	for pid in "$@"; do
		if kill -0 "$pid" 2>/dev/null; then
			kill "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
		fi
	done
}
