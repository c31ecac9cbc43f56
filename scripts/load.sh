#!/usr/bin/env bash
# scripts/load.sh: load-test imbot against a bare sipgo baseline.
#
# Usage:
#   scripts/load.sh [page|session|all]        (default: all; sipp, see below)
#   scripts/load.sh capacity                  highest rate with >= 99 % of replies within 1 s
#   scripts/load.sh latency                   session-mode ping->reply latency with CSeq gaps
#
# Modes page, session, all (sipp). Environment:
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
# Mode capacity finds, for the baseline and for imbot in the same run, the highest rate at
# which at least PASS_PCT % of pings get their reply within DEADLINE: page mode over UDP,
# typing on for both (the client sends "Accept: text/plain, application/im-iscomposing+xml";
# imbot then sends an RFC 3994 isComposing MESSAGE before each reply, and so does
# tools/loadbase with -typing). It steps through RATES; each step starts a fresh server
# (clean conversation table and transaction layer), sends rate*STEP_SECS pings, each from a
# new From user (a new conversation; USERS=N reuses N users instead), waits at most DRAIN
# for what is outstanding, and stops the server. The two servers take turns at each rate, so
# that whatever else runs on the machine disturbs both alike; a server stops stepping after
# STOP_AFTER failing steps in a row. Per step it counts: pings answered 2xx, 503 or other,
# or not at all; replies within DEADLINE, later ("late", within DRAIN) or never; pings
# answered 2xx that got no reply (past capacity a server should answer 503 instead); the
# ping->reply latency percentiles (over all pings: a percentile that falls on a ping without
# a reply is "inf"). It prints a table per server, the highest passing rate of each and
# their ratio imbot/baseline.
#
# Mode latency opens LAT_COUNT IM sessions at LAT_RATE per second against each server (with
# typing as above, announced in the SDP accept-types): INVITE CSeq 1 / 200 / ACK, one MESSAGE
# with CSeq 1+CSEQ_GAP (a gap, as RFC 3261 allows), the reply in the dialog, BYE. It prints
# the session setup (INVITE->200) and ping->reply (MESSAGE sent -> reply received) latency
# p50/p99 of each server and the ratios imbot/baseline.
#
# Modes capacity and latency use tools/loadgen, a small Go client, not sipp: the page-mode
# reply is a new request with its own Call-ID, which sipp hands to an out-of-call scenario
# that cannot tell which ping it answers, so sipp cannot time ping->reply nor tell a ping
# answered 2xx whose reply never came from one answered 503; its per-call model also takes
# a lot of sipp's one core at 10,000 calls/s. loadgen matches each reply to its ping by a
# token in the body, times it with the monotonic clock (microseconds, not sipp's 1 ms), and
# retransmits like an RFC 3261 UDP client (T1 500 ms doubling, T2 4 s), so a datagram dropped
# by a full socket buffer costs a ping 500 ms rather than its reply.
# Environment (capacity, latency):
#   RATES="1000 2000 3000 4000 5000 6000 7500 9000 10000"   capacity steps, pings per second
#   STEP_SECS=5     pings per step = rate * STEP_SECS
#   STOP_AFTER=1    stop a server's stepping after this many failing steps in a row (0: never)
#   PASS_PCT=99     a step passes when this % of its pings got their reply within DEADLINE
#   DEADLINE=1s     reply deadline (a Go duration)
#   DRAIN=5s        after the last ping, wait at most this long for outstanding replies
#   USERS=0         0: a new From user (conversation) per ping; N: a pool of N users
#   LAT_RATE=1000   latency mode: sessions per second
#   LAT_COUNT=10000 latency mode: sessions per server
#   CSEQ_GAP=4      latency mode: the MESSAGE's CSeq is 1 + CSEQ_GAP (1: no gap)
#   TYPING=1        0: the client does not accept isComposing, so no server sends typing
#   SOCKETS=4       client UDP sockets
#   PIN=0           1: pin the server to CPU 1 and the client to CPU 0 (taskset), so that the
#                   server has one core of its own and the client never takes it: a per-core
#                   figure; 0: both share every CPU (the host's figure)
#   QUIET_WAIT=60   before each step, wait up to this many seconds for the host to be quiet
#                   (under a quarter of a core busy over one second); 0: do not wait
#   KEEP=1          keep the work directory (binaries, loadgen output, server logs)
# The client runs on the same machine as the server and takes CPU from it: about a quarter
# of a core at 4,000 pings/s with typing (most of it the kernel's loopback delivery); on a
# 2-CPU host, from about 7,500 pings/s the server (1.3 to 1.6 cores) and the client (0.4)
# keep the whole machine busy, and the top steps measure the host as much as the server. Each
# step reports the client's CPU, the server's and the rest of the host's ("other": anything
# else that ran, such as a build), how busy the host was (host%: near 100 the step measures
# the machine more than the server), and the datagrams the server's and the client's
# sockets dropped (full receive buffers; each costs its ping a 500 ms retransmission). A
# step with much "other" CPU is suspect: rerun it. Replies are counted once (the server's
# retransmissions are answered but not counted again).
#
# Needs go, and sipp (Debian package sip-tester) for page, session and all. Binds 127.0.0.1
# only, never port 5060. Every process it starts is stopped on exit.
set -euo pipefail

MODES=${1:-all}
RATE=${RATE:-500}
COUNT=${COUNT:-5000}
LIMIT=${LIMIT:-200}
TRANSPORT=${TRANSPORT:-udp}
KEEP=${KEEP:-0}

RATES=${RATES:-1000 2000 3000 4000 5000 6000 7500 9000 10000}
STEP_SECS=${STEP_SECS:-5}
STOP_AFTER=${STOP_AFTER:-1}
PASS_PCT=${PASS_PCT:-99}
DEADLINE=${DEADLINE:-1s}
DRAIN=${DRAIN:-5s}
USERS=${USERS:-0}
LAT_RATE=${LAT_RATE:-1000}
LAT_COUNT=${LAT_COUNT:-10000}
CSEQ_GAP=${CSEQ_GAP:-4}
TYPING=${TYPING:-1}
SOCKETS=${SOCKETS:-4}
PIN=${PIN:-0}
QUIET_WAIT=${QUIET_WAIT:-60}
SRV_PREFIX=()
CLI_PREFIX=()

case $MODES in
all) MODES="page session" ;;
page | session | capacity | latency) ;;
*)
	echo "usage: $0 [page|session|all|capacity|latency]" >&2
	exit 2
	;;
esac
LOADGEN=0
if [[ $MODES == capacity || $MODES == latency ]]; then
	LOADGEN=1
	[[ $TRANSPORT == udp ]] || {
		echo "mode $MODES is UDP only (TRANSPORT=$TRANSPORT)" >&2
		exit 2
	}
	for r in $RATES; do
		[[ $r =~ ^[1-9][0-9]*$ ]] || {
			echo "RATES must be positive integers, not '$r'" >&2
			exit 2
		}
	done
	for n in STEP_SECS LAT_RATE LAT_COUNT CSEQ_GAP SOCKETS PASS_PCT; do
		[[ ${!n} =~ ^[1-9][0-9]*$ ]] || {
			echo "$n must be a positive integer, not '${!n}'" >&2
			exit 2
		}
	done
	top=0
	for r in $RATES; do ((r > top)) && top=$r; done
	if [[ $MODES == capacity && $USERS == 0 ]] && ((top * STEP_SECS >= 100000)); then
		echo "RATES up to $top with STEP_SECS=$STEP_SECS open $((top * STEP_SECS)) conversations in one step;" \
			"examples/echo refuses more than 100000 (MaxSessions): lower STEP_SECS or set USERS" >&2
		exit 2
	fi
	[[ $USERS =~ ^[0-9]+$ && $STOP_AFTER =~ ^[0-9]+$ && $QUIET_WAIT =~ ^[0-9]+$ && $TYPING =~ ^[01]$ && $PIN =~ ^[01]$ ]] || {
		echo "USERS, STOP_AFTER and QUIET_WAIT must be integers >= 0, TYPING and PIN 0 or 1" >&2
		exit 2
	}
	if ((PIN)); then
		command -v taskset >/dev/null && (($(nproc) >= 2)) || {
			echo "PIN=1 needs taskset and two CPUs" >&2
			exit 2
		}
		SRV_PREFIX=(taskset -c 1)
		CLI_PREFIX=(taskset -c 0)
	fi
fi
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
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
SCEN=$ROOT/scripts/sipp
export PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || {
	echo "go not found" >&2
	exit 1
}
if ((!LOADGEN)); then
	command -v sipp >/dev/null || {
		echo "sipp not found: apt-get install -y sip-tester" >&2
		exit 1
	}
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/imbot-load.XXXXXX")
PIDS=()
cleanup() {
	stop_pids "${PIDS[@]}"
	if [[ $KEEP == 1 ]]; then
		echo "work directory kept: $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building tools/loadbase, tools/loadgen and examples/echo ..." >&2
(cd "$ROOT" && go build -o "$WORK/loadbase" ./tools/loadbase && go build -o "$WORK/loadgen" ./tools/loadgen &&
	go build -o "$WORK/echo" ./examples/echo)



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

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# --- modes capacity and latency (tools/loadgen) ---




declare -A LG # LG[KIND,STEP,key]: loadgen's RESULT fields and the server's figures

# loadgen_step KIND STEP MODE RATE COUNT [LOADGEN ARGS...]: starts a fresh server, runs one
# loadgen against it and stops it; fills LG[KIND,STEP,*].
loadgen_step() {
	local kind=$1 step=$2 mode=$3 rate=$4 count=$5 dir c0 c1 h0 h1 w0 w1 line kv rc=0 bargs=()
	shift 5
	dir=$WORK/$mode-$kind-$step
	mkdir -p "$dir"
	if ((TYPING)); then bargs=(-typing); fi
	wait_quiet
	start_server "$kind" "$mode" "$dir/server.log" "${bargs[@]}"
	echo "== $mode / $kind: $count at $rate/s over udp to 127.0.0.1:$SERVER_PORT" >&2
	c0=$(cpu_ticks "$SERVER_PID")
	h0=$(busy_ticks)
	w0=$(date +%s%N)
	"${CLI_PREFIX[@]}" "$WORK/loadgen" -mode "$mode" -target "127.0.0.1:$SERVER_PORT" -rate "$rate" -count "$count" \
		-typing="$( ((TYPING)) && echo true || echo false)" -sockets "$SOCKETS" \
		-deadline "$DEADLINE" -drain "$DRAIN" "$@" >"$dir/loadgen.out" 2>"$dir/loadgen.err" || rc=$?
	h1=$(busy_ticks)
	w1=$(date +%s%N)
	c1=$(cpu_ticks "$SERVER_PID" 2>/dev/null || echo "$c0")
	line=$(grep '^RESULT ' "$dir/loadgen.out" || true)
	if ((rc != 0)) || [[ -z $line ]]; then
		echo "loadgen exited with $rc; last lines:" >&2
		tail -5 "$dir/loadgen.err" >&2
	fi
	for kv in ${line#RESULT }; do
		LG[$kind,$step,${kv%%=*}]=${kv#*=}
	done
	LG[$kind,$step,srv_cpu]=$(awk -v d="$((c1 - c0))" -v hz="$TICKS" 'BEGIN { printf "%.2f", d / hz }')
	LG[$kind,$step,oth_cpu]=$(awk -v d="$((h1 - h0))" -v hz="$TICKS" -v s="${LG[$kind,$step,srv_cpu]}" \
		-v c="${LG[$kind,$step,client_cpu_s]:-0}" 'BEGIN { o = d / hz - s - c; printf "%.2f", (o > 0 ? o : 0) }')
	LG[$kind,$step,host]=$(awk -v d="$((h1 - h0))" -v hz="$TICKS" -v w="$(((w1 - w0) / 1000000))" -v n="$(nproc)" \
		'BEGIN { printf "%.0f", (w > 0 ? d / hz / (w / 1000 * n) * 100 : 0) }')
	LG[$kind,$step,rss]=$(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$SERVER_PID/status" 2>/dev/null || echo "?")
	stop_server
}

# lg KIND STEP KEY: one figure, "-" when missing.
lg() { echo "${LG[$1,$2,$3]:--}"; }

run_capacity() {
	local rate kind count
	declare -A best fails stopped ran firstfail
	for rate in $RATES; do
		for kind in baseline imbot; do
			[[ ${stopped[$kind]:-0} == 1 ]] && continue
			count=$((rate * STEP_SECS))
			loadgen_step "$kind" "$rate" page "$rate" "$count" -users "$USERS"
			ran[$kind]+=" $rate"
			if [[ $(lg "$kind" "$rate" within) =~ ^[0-9]+$ ]] &&
				(($(lg "$kind" "$rate" within) * 100 >= PASS_PCT * count)); then
				LG[$kind,$rate,verdict]=pass
				if ((rate > ${best[$kind]:-0})); then best[$kind]=$rate; fi
				fails[$kind]=0
			else
				LG[$kind,$rate,verdict]=FAIL
				[[ -n ${firstfail[$kind]:-} ]] || firstfail[$kind]=$rate
				fails[$kind]=$((${fails[$kind]:-0} + 1))
				if ((STOP_AFTER > 0 && fails[$kind] >= STOP_AFTER)); then stopped[$kind]=1; fi
			fi
		done
	done

	echo
	echo "imbot capacity: page mode over UDP, typing $( ((TYPING)) && echo on || echo off), pass = ${PASS_PCT} % of replies within $DEADLINE;" \
		"steps of rate*${STEP_SECS} pings, a fresh server each ($(nproc) CPUs, client on the same host$( ((PIN)) && echo ", server pinned to CPU 1, client to CPU 0"))"
	for kind in baseline imbot; do
		echo
		echo "$kind:"
		printf '  %6s %6s %6s %6s %5s %5s %6s %6s %6s %7s %8s %8s %6s %7s %7s %7s %5s %6s %6s %4s %s\n' \
			rate pings 2xx 503 other noans in_1s late never 2xx_norep p50_ms p99_ms lag_ms srv_cpu cli_cpu oth_cpu host% s_drop c_drop rss result
		for rate in ${ran[$kind]:-}; do
			printf '  %6s %6s %6s %6s %5s %5s %6s %6s %6s %7s %8s %8s %6s %7s %7s %7s %5s %6s %6s %4s %s\n' "$rate" \
				"$(lg "$kind" "$rate" pings)" "$(lg "$kind" "$rate" ok2xx)" "$(lg "$kind" "$rate" r503)" \
				"$(lg "$kind" "$rate" rother)" "$(lg "$kind" "$rate" rnone)" "$(lg "$kind" "$rate" within)" \
				"$(lg "$kind" "$rate" late)" "$(lg "$kind" "$rate" never)" "$(lg "$kind" "$rate" ok_noreply)" \
				"$(lg "$kind" "$rate" p50_ms)" "$(lg "$kind" "$rate" p99_ms)" "$(lg "$kind" "$rate" lag_ms)" \
				"$(lg "$kind" "$rate" srv_cpu)" "$(lg "$kind" "$rate" client_cpu_s)" "$(lg "$kind" "$rate" oth_cpu)" \
				"$(lg "$kind" "$rate" host)" "$(lg "$kind" "$rate" srv_drops)" "$(lg "$kind" "$rate" cli_drops)" \
				"$(lg "$kind" "$rate" rss)" "$(lg "$kind" "$rate" verdict)"
		done
	done
	echo
	echo "  columns: 2xx/503/other/noans: how pings were answered (noans: no final response at all);"
	echo "  in_1s/late/never: replies within $DEADLINE, later, not within $DRAIN after the last ping;"
	echo "  2xx_norep: answered 2xx but no reply; lag_ms: worst client send delay behind schedule;"
	echo "  *_cpu: CPU seconds of the server, the client, the rest of the host; host%: how busy all"
	echo "  CPUs were; s_drop/c_drop: datagrams dropped by the server's and the client's sockets"
	echo "  (full receive buffer); rss: server VmHWM MiB"
	echo
	local top
	for kind in baseline imbot; do
		top=${best[$kind]:-0}
		if [[ $top == 0 ]]; then
			printf '  %-8s highest passing rate: none (lowest step %s/s failed)\n' "$kind" "${RATES%% *}"
		elif [[ -z ${firstfail[$kind]:-} ]]; then
			printf '  %-8s highest passing rate: %s/s (every step passed: capacity is at least that; raise RATES)\n' "$kind" "$top"
		else
			printf '  %-8s highest passing rate: %s/s\n' "$kind" "$top"
		fi
	done
	printf '  imbot/baseline highest passing rate: %s\n' "$(ratio "${best[imbot]:-0}" "${best[baseline]:-0}")"
	for kind in baseline imbot; do
		rate=${firstfail[$kind]:-}
		if [[ -n $rate ]]; then
			printf '  %-8s past capacity (%s/s): %s pings answered 2xx without a reply, %s answered 503, %s unanswered\n' \
				"$kind" "$rate" "$(lg "$kind" "$rate" ok_noreply)" "$(lg "$kind" "$rate" r503)" "$(lg "$kind" "$rate" rnone)"
		else
			printf '  %-8s past capacity: not reached\n' "$kind"
		fi
	done
}

run_latency() {
	local kind
	for kind in baseline imbot; do
		loadgen_step "$kind" lat session "$LAT_RATE" "$LAT_COUNT" -cseq-gap "$CSEQ_GAP"
	done
	echo
	echo "imbot session latency: $LAT_COUNT IM sessions at $LAT_RATE/s over UDP, MESSAGE CSeq 1+$CSEQ_GAP after INVITE CSeq 1," \
		"typing $( ((TYPING)) && echo on || echo off) ($(nproc) CPUs, client on the same host$( ((PIN)) && echo ", server pinned to CPU 1, client to CPU 0"))"
	printf '  %-8s %8s %6s %6s %6s %6s %6s %6s %9s %9s %9s %9s %9s %7s %7s %6s %6s\n' server sessions inv2xx msg2xx in_1s \
		late never bye_ok setup_p50 setup_p99 reply_p50 reply_p99 reply_max srv_cpu oth_cpu s_drop c_drop
	for kind in baseline imbot; do
		printf '  %-8s %8s %6s %6s %6s %6s %6s %6s %9s %9s %9s %9s %9s %7s %7s %6s %6s\n' "$kind" \
			"$(lg "$kind" lat sessions)" "$(lg "$kind" lat inv2xx)" "$(lg "$kind" lat ok2xx)" \
			"$(lg "$kind" lat within)" "$(lg "$kind" lat late)" "$(lg "$kind" lat never)" "$(lg "$kind" lat bye_ok)" \
			"$(lg "$kind" lat setup_p50_ms)" "$(lg "$kind" lat setup_p99_ms)" "$(lg "$kind" lat p50_ms)" \
			"$(lg "$kind" lat p99_ms)" "$(lg "$kind" lat max_ms)" "$(lg "$kind" lat srv_cpu)" \
			"$(lg "$kind" lat oth_cpu)" "$(lg "$kind" lat srv_drops)" "$(lg "$kind" lat cli_drops)"
	done
	echo "  (latencies in ms: setup INVITE->200, reply MESSAGE sent -> reply received; percentiles over"
	echo "  all sessions, \"inf\" when they fall on sessions without one)"
	printf '  imbot/baseline: reply p50 %s, reply p99 %s, setup p50 %s, setup p99 %s, server CPU %s\n' \
		"$(ratio "$(lg imbot lat p50_ms)" "$(lg baseline lat p50_ms)")" \
		"$(ratio "$(lg imbot lat p99_ms)" "$(lg baseline lat p99_ms)")" \
		"$(ratio "$(lg imbot lat setup_p50_ms)" "$(lg baseline lat setup_p50_ms)")" \
		"$(ratio "$(lg imbot lat setup_p99_ms)" "$(lg baseline lat setup_p99_ms)")" \
		"$(ratio "$(lg imbot lat srv_cpu)" "$(lg baseline lat srv_cpu)")"
}

if ((LOADGEN)); then
	case $MODES in
	capacity) run_capacity ;;
	latency) run_latency ;;
	esac
	exit 0
fi

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
