#!/usr/bin/env bash
# scripts/load.sh: load-test imbot against a bare sipgo baseline with sipp.
#
# Usage:
#   scripts/load.sh [page|session|all]        (default: all)
#
# Environment:
#   RATE=500        calls (round trips or sessions) started per second (sipp -r)
#   COUNT=5000      calls per run (sipp -m)
#   LIMIT=200       most calls open at once (sipp -l)
#   TRANSPORT=udp   udp or tcp (sipp -t u1 / t1: one socket or one connection)
#   KEEP=1          keep the work directory (binaries, sipp and server logs)
#
# For each mode it builds and starts, in turn, on free loopback ports:
#   baseline  tools/loadbase, a bare sipgo responder (-mode page|session);
#   imbot     examples/echo, the smallest imbot (sip:echo@...);
# and runs the same sipp scenario (scripts/sipp/load_*.xml) against each:
#   page      MESSAGE -> 200, then the echo MESSAGE (a new out-of-dialog request) -> 200
#   session   INVITE/200/ACK, MESSAGE -> 200, the echo MESSAGE in the dialog -> 200, BYE/200
# Every call uses its own From user, so each is a new conversation for the server.
#
# It prints, per server: calls completed and failed, wall time, round trips per second
# (completed calls / wall time; a session counts as one), the server's CPU time per round
# trip and its peak RSS, then the imbot/baseline ratios. At a rate both servers sustain,
# round trips per second are equal by construction (sipp paces the calls): compare CPU per
# round trip there, and raise RATE (with a larger COUNT and LIMIT) to find where one falls
# behind. (sipp's own latency figures have 1 ms resolution, too coarse on loopback.)
# Near saturation sipp itself (one core) answers late; UDP servers then retransmit after
# T1 = 500 ms, and a retransmission that reaches a call past the step that took the
# original counts as a failed call. Those failures measure sipp, not the server: check
# sipp_errors.log (KEEP=1), or use TRANSPORT=tcp for high rates.
#
# Needs go and sipp (Debian package sip-tester). Binds 127.0.0.1 only, never port 5060.
# Every process it starts is stopped on exit.
set -euo pipefail

MODES=${1:-all}
RATE=${RATE:-500}
COUNT=${COUNT:-5000}
LIMIT=${LIMIT:-200}
TRANSPORT=${TRANSPORT:-udp}
KEEP=${KEEP:-0}

case $MODES in
all) MODES="page session" ;;
page | session) ;;
*)
	echo "usage: $0 [page|session|all]" >&2
	exit 2
	;;
esac
case $TRANSPORT in
udp) SIPP_T=u1 ;;
tcp) SIPP_T=t1 ;;
*)
	echo "TRANSPORT must be udp or tcp, not $TRANSPORT" >&2
	exit 2
	;;
esac
for n in RATE COUNT LIMIT; do
	[[ ${!n} =~ ^[1-9][0-9]*$ ]] || {
		echo "$n must be a positive integer, not '${!n}'" >&2
		exit 2
	}
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCEN=$ROOT/scripts/sipp
export PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || {
	echo "go not found" >&2
	exit 1
}
command -v sipp >/dev/null || {
	echo "sipp not found: apt-get install -y sip-tester" >&2
	exit 1
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/imbot-load.XXXXXX")
PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		if kill -0 "$pid" 2>/dev/null; then
			kill "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
		fi
	done
	if [[ $KEEP == 1 ]]; then
		echo "work directory kept: $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building tools/loadbase and examples/echo ..." >&2
(cd "$ROOT" && go build -o "$WORK/loadbase" ./tools/loadbase && go build -o "$WORK/echo" ./examples/echo)

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

# start_server KIND MODE LOG: starts the server on a free port; sets SERVER_PID and
# SERVER_PORT. KIND is baseline or imbot.
start_server() {
	local kind=$1 mode=$2 log=$3 port pid
	for _ in 1 2 3 4 5; do
		port=$(free_port)
		case $kind in
		baseline) "$WORK/loadbase" -listen "127.0.0.1:$port" -mode "$mode" >"$log" 2>&1 & ;;
		imbot) "$WORK/echo" -listen "127.0.0.1:$port" >"$log" 2>&1 & ;;
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

# cpu_ticks PID: user+system CPU time of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# stat_field FILE LABEL: the cumulative column of a line of sipp's final statistics screen.
stat_field() {
	awk -F'|' -v label="$2" 'index($1, label) { v = $3 } END { gsub(/^ +| +$/, "", v); print v }' "$1"
}

TICKS=$(getconf CLK_TCK)
declare -A RESULT

# run_one KIND MODE: one sipp run against one server; fills RESULT[KIND,MODE,*].
run_one() {
	local kind=$1 mode=$2 dir=$WORK/$2-$1 sport t0 t1 c0 c1 rc=0 args
	mkdir -p "$dir"
	start_server "$kind" "$mode" "$dir/server.log"
	args=(-sf "$SCEN/load_$mode.xml" -s echo -i 127.0.0.1 -t "$SIPP_T"
		-r "$RATE" -m "$COUNT" -l "$LIMIT" -nostdin
		-timeout "$((COUNT / RATE * 4 + 60))s" -timeout_error
		-trace_err -error_file "$dir/sipp_errors.log"
		-trace_logs -log_file "$dir/sipp_logs.log"
		-trace_screen -screen_file "$dir/sipp_screen.log")
	if [[ $mode == page ]]; then
		args+=(-oocsf "$SCEN/load_page_echo.xml")
	fi
	echo "== $mode / $kind: $COUNT calls at $RATE/s over $TRANSPORT to 127.0.0.1:$SERVER_PORT" >&2
	for _ in 1 2 3; do
		sport=$(free_port)
		c0=$(cpu_ticks "$SERVER_PID")
		t0=$(date +%s%N)
		rc=0
		(cd "$dir" && sipp "${args[@]}" -p "$sport" "127.0.0.1:$SERVER_PORT") >"$dir/sipp.out" 2>&1 || rc=$?
		t1=$(date +%s%N)
		c1=$(cpu_ticks "$SERVER_PID")
		grep -q 'Address already in use' "$dir/sipp.out" || break
		echo "sipp lost port $sport; retrying" >&2
	done
	local ok failed wall
	ok=$(stat_field "$dir/sipp.out" "Successful call")
	failed=$(stat_field "$dir/sipp.out" "Failed call")
	wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
	RESULT[$kind,$mode,ok]=${ok:-0}
	RESULT[$kind,$mode,failed]=${failed:-?}
	RESULT[$kind,$mode,wall]=$wall
	RESULT[$kind,$mode,rps]=$(awk -v n="${ok:-0}" -v w="$wall" 'BEGIN { printf "%.1f", (w > 0 ? n / w : 0) }')
	RESULT[$kind,$mode,cpu]=$(awk -v d="$((c1 - c0))" -v hz="$TICKS" -v n="${ok:-0}" \
		'BEGIN { printf "%.1f", (n > 0 ? d / hz / n * 1e6 : 0) }')
	RESULT[$kind,$mode,rss]=$(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$SERVER_PID/status")
	RESULT[$kind,$mode,rc]=$rc
	if [[ $mode == page ]]; then
		RESULT[$kind,$mode,echoes]=$(grep -c '^echo ' "$dir/sipp_logs.log" 2>/dev/null || echo "?")
	fi
	if ((rc != 0)); then
		echo "sipp exited with $rc; last lines:" >&2
		tail -5 "$dir/sipp.out" >&2
		tail -5 "$dir/sipp_errors.log" >&2 2>/dev/null || true
	fi
	kill "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

for mode in $MODES; do
	run_one baseline "$mode"
	run_one imbot "$mode"
done

echo
echo "imbot load test: RATE=$RATE COUNT=$COUNT LIMIT=$LIMIT TRANSPORT=$TRANSPORT ($(nproc) CPUs, sipp on the same host)"
for mode in $MODES; do
	echo
	echo "mode $mode:"
	printf '  %-9s %9s %7s %9s %10s %14s %9s\n' server completed failed wall_s rt_per_s cpu_us_per_rt rss_MiB
	for kind in baseline imbot; do
		printf '  %-9s %9s %7s %9s %10s %14s %9s\n' "$kind" \
			"${RESULT[$kind,$mode,ok]}" "${RESULT[$kind,$mode,failed]}" "${RESULT[$kind,$mode,wall]}" \
			"${RESULT[$kind,$mode,rps]}" "${RESULT[$kind,$mode,cpu]}" \
			"${RESULT[$kind,$mode,rss]}"
	done
	printf '  imbot/baseline: rt_per_s %s, cpu_us_per_rt %s, rss %s\n' \
		"$(ratio "${RESULT[imbot,$mode,rps]}" "${RESULT[baseline,$mode,rps]}")" \
		"$(ratio "${RESULT[imbot,$mode,cpu]}" "${RESULT[baseline,$mode,cpu]}")" \
		"$(ratio "${RESULT[imbot,$mode,rss]}" "${RESULT[baseline,$mode,rss]}")"
	if [[ $mode == page ]]; then
		printf '  echoes received: baseline %s, imbot %s\n' "${RESULT[baseline,page,echoes]}" "${RESULT[imbot,page,echoes]}"
	fi
done
