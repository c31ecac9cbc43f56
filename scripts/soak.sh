#!/usr/bin/env bash
# scripts/soak.sh: open and hold many IM sessions against imbot (and the bare sipgo baseline)
# and read the server's memory on the way.
#
# Usage:
#   scripts/soak.sh [imbot|baseline|both]      (default: both, baseline first)
#
# Environment:
#   SESSIONS=100000  sessions to open and hold; at most 100000, examples/echo's limit
#                    (bot.Config.MaxSessions default; past it new sessions get 503)
#   RATE=1500        sessions opened per second, and BYEs per second at the end
#   SETTLE=35        seconds the sessions are held once open, and waited after the BYEs, before
#                    the settled readings (sipgo keeps each INVITE transaction about 32 s after
#                    it ends: readings taken while opening include those of the last 32 s)
#   DRAIN=10s        after the last INVITE (BYE), wait at most this long for what is outstanding
#   CSEQ_GAP=1       the MESSAGE's CSeq is 1 + CSEQ_GAP (see scripts/load.sh latency)
#   TYPING=1         the offer accepts isComposing, so the server sends typing before its reply
#   SOCKETS=4        client UDP sockets
#   QUIET_WAIT=60    wait up to this many seconds for the host to be quiet before each server
#   KEEP=1           keep the work directory (binaries, loadgen output, server logs)
#
# For each server it builds and starts, on a free loopback port, examples/echo (imbot with its
# defaults: MaxSessions 100000, IdleTimeout 10 min) or tools/loadbase -mode session, then runs
# tools/loadgen -mode soak against it over UDP: every session is INVITE (m=message SDP) / 200 /
# ACK, one MESSAGE and the server's reply (after its typing MESSAGE), and then stays open.
# The client reads the server's /proc/PID/status (VmRSS, VmHWM) before the load, when the
# established sessions (reply received) reach 10k, 25k, 50k and 100k (those up to SESSIONS,
# and SESSIONS), once all are open, after SETTLE seconds of holding them, after every session
# got its BYE answered, and SETTLE seconds later. It prints per server a table of the readings
# with KB per session ((VmRSS - VmRSS before the load) / sessions), KB per session added since
# the previous milestone (KB/added: past the first 32 s of opening, as many INVITE
# transactions expire as are created, so this is the cost of one more held session; the
# earlier figures include every session's transactions), whether the peak (VmHWM)
# stayed within 1 GiB, the projection to 100,000 sessions when fewer were opened, and the
# sessions the server ended by itself while they were held (should be 0: the soak must end
# within the idle timeout; the script refuses settings that would not).
#
# RSS is what the process holds, not what it uses: Go returns freed memory to the system
# lazily and its collector lets the heap grow to about twice what is live (GOGC=100), so RSS
# does not fall while the sessions are held even once their transactions expire, nor after
# the BYEs. The projection to 100,000 sessions from a shorter run is an upper bound when the
# whole run opened within 32 s (every session's transactions were still in memory). The
# client (holding the sessions too) runs on the same machine.
#
# Needs go. Binds 127.0.0.1 only, never port 5060. Every process it starts is stopped on exit.
set -euo pipefail

WHICH=${1:-both}
SESSIONS=${SESSIONS:-100000}
RATE=${RATE:-1500}
SETTLE=${SETTLE:-35}
DRAIN=${DRAIN:-10s}
CSEQ_GAP=${CSEQ_GAP:-1}
TYPING=${TYPING:-1}
SOCKETS=${SOCKETS:-4}
QUIET_WAIT=${QUIET_WAIT:-60}
KEEP=${KEEP:-0}

case $WHICH in
both) KINDS="baseline imbot" ;;
imbot | baseline) KINDS=$WHICH ;;
*)
	echo "usage: $0 [imbot|baseline|both]" >&2
	exit 2
	;;
esac
for n in SESSIONS RATE SETTLE CSEQ_GAP SOCKETS; do
	[[ ${!n} =~ ^[1-9][0-9]*$ ]] || {
		echo "$n must be a positive integer, not '${!n}'" >&2
		exit 2
	}
done
[[ $TYPING =~ ^[01]$ && $QUIET_WAIT =~ ^[0-9]+$ ]] || {
	echo "TYPING must be 0 or 1, QUIET_WAIT an integer >= 0" >&2
	exit 2
}
if ((SESSIONS > 100000)); then
	echo "SESSIONS=$SESSIONS: examples/echo accepts at most 100000 open sessions (bot.Config.MaxSessions default)" >&2
	exit 2
fi
DRAIN_S=$(awk -v d="$DRAIN" 'BEGIN { v = d + 0; if (d ~ /ms$/) v /= 1000; else if (d ~ /m$/) v *= 60; print int(v + 0.999) }')
# The first session is idle from its reply until its BYE: opening, drain, hold.
HOLD=$((SESSIONS / RATE + DRAIN_S + SETTLE + 5))
if ((HOLD > 540)); then
	echo "the first session would be idle about ${HOLD}s before its BYE: more than imbot's idle timeout" \
		"(10 min) allows with a margin; raise RATE or lower SESSIONS or SETTLE" >&2
	exit 2
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
export PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || {
	echo "go not found" >&2
	exit 1
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/imbot-soak.XXXXXX")
PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		if kill -0 "$pid" 2>/dev/null; then
			kill -9 "$pid" 2>/dev/null || true
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

echo "building tools/loadbase, tools/loadgen and examples/echo ..." >&2
(cd "$ROOT" && go build -o "$WORK/loadbase" ./tools/loadbase && go build -o "$WORK/loadgen" ./tools/loadgen &&
	go build -o "$WORK/echo" ./examples/echo)

TICKS=$(getconf CLK_TCK)







MILESTONES=""
for m in 10000 25000 50000 100000; do
	((m < SESSIONS)) && MILESTONES+="$m,"
done
MILESTONES+=$SESSIONS

declare -A RES

# soak KIND: one soak run; fills RES[KIND,*] and keeps the RSS lines in $WORK/KIND/loadgen.out.
soak() {
	local kind=$1 dir=$WORK/$1 rc=0 line kv
	mkdir -p "$dir"
	wait_quiet
	local bargs=()
	if ((TYPING)); then bargs=(-typing); fi
	start_server "$kind" session "$dir/server.log" "${bargs[@]}"
	echo "== soak / $kind: $SESSIONS sessions at $RATE/s over udp to 127.0.0.1:$SERVER_PORT (pid $SERVER_PID)" >&2
	"$WORK/loadgen" -mode soak -target "127.0.0.1:$SERVER_PORT" -rate "$RATE" -count "$SESSIONS" \
		-typing="$( ((TYPING)) && echo true || echo false)" -sockets "$SOCKETS" -cseq-gap "$CSEQ_GAP" \
		-drain "$DRAIN" -settle "${SETTLE}s" -pid "$SERVER_PID" -milestones "$MILESTONES" \
		>"$dir/loadgen.out" 2> >(tee "$dir/loadgen.err" | grep --line-buffered -e 'sessions open' -e 'BYEs sent' >&2) || rc=$?
	line=$(grep '^RESULT ' "$dir/loadgen.out" || true)
	if ((rc != 0)) || [[ -z $line ]]; then
		echo "loadgen exited with $rc; last lines:" >&2
		tail -5 "$dir/loadgen.err" >&2
	fi
	for kv in ${line#RESULT }; do
		RES[$kind,${kv%%=*}]=${kv#*=}
	done
	stop_server
}

for kind in $KINDS; do
	soak "$kind"
done

res() { echo "${RES[$1,$2]:--}"; }

echo
echo "imbot soak: $SESSIONS IM sessions opened at $RATE/s over UDP and held, typing $( ((TYPING)) && echo on || echo off)," \
	"MESSAGE CSeq 1+$CSEQ_GAP ($(nproc) CPUs, client on the same host)"
declare -A KBS
for kind in $KINDS; do
	out=$WORK/$kind/loadgen.out
	echo
	echo "$kind: $(res "$kind" established) of $(res "$kind" count) sessions established in $(res "$kind" open_s) s" \
		"(INVITE 2xx $(res "$kind" inv2xx), 503 $(res "$kind" inv503), other $(res "$kind" invother), unanswered $(res "$kind" invnone);" \
		"replies $(res "$kind" within) within 1 s, $(res "$kind" late) later, $(res "$kind" never) never;" \
		"setup p50/p99 $(res "$kind" setup_p50_ms)/$(res "$kind" setup_p99_ms) ms)"
	echo "  ended by the server while held: $(res "$kind" server_bye); BYEs answered 2xx: $(res "$kind" bye_ok), other: $(res "$kind" bye_other);" \
		"client retransmissions $(res "$kind" retrans), datagrams dropped by the server socket $(res "$kind" srv_drops), by the client $(res "$kind" cli_drops)"
	awk -v kind="$kind" -v settle="$SETTLE" '
		/^RSS / {
			for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
			if (f["stage"] == "idle") idle = f["vmrss_kb"]
			label = f["stage"]
			if (label == "held") label = "held +" settle "s"
			if (label == "after") label = "after +" settle "s"
			kb = (f["sessions"] > 0) ? sprintf("%.2f", (f["vmrss_kb"] - idle) / f["sessions"]) : "-"
			step = "-"
			if (f["stage"] == "idle") { prevn = 0; prevkb = f["vmrss_kb"] }
			else if (f["stage"] == "milestone" && f["sessions"] > prevn) {
				step = sprintf("%.2f", (f["vmrss_kb"] - prevkb) / (f["sessions"] - prevn))
				prevn = f["sessions"]; prevkb = f["vmrss_kb"]
			}
			if (!hdr++) printf "  %-14s %9s %10s %10s %11s %10s %8s %7s\n", "stage", "sessions", "VmRSS_MiB", "VmHWM_MiB", "KB/session", "KB/added", "threads", "t_s"
			printf "  %-14s %9s %10.1f %10.1f %11s %10s %8s %7s\n", label, f["sessions"], f["vmrss_kb"] / 1024, f["vmhwm_kb"] / 1024, kb, step, f["threads"], f["t_s"]
			if (f["vmhwm_kb"] > peak) peak = f["vmhwm_kb"]
			if (f["stage"] == "held") { heldkb = kb; held = f["sessions"] }
		}
		END {
			if (!hdr) { print "  no RSS readings"; exit }
			printf "  peak VmHWM %.1f MiB: %s 1 GiB\n", peak / 1024, (peak <= 1048576 ? "within" : "OVER")
			if (heldkb != "-" && held > 0 && held < 100000)
				printf "  projected at 100,000 sessions (idle + 100,000 x %s KB, held): %.0f MiB\n", heldkb, (idle + heldkb * 100000) / 1024
		}' "$out"
	KBS[$kind]=$(awk '/^RSS / {
			for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
			if (f["stage"] == "idle") idle = f["vmrss_kb"]
			if (f["stage"] == "held" && f["sessions"] > 0) v = sprintf("%.2f", (f["vmrss_kb"] - idle) / f["sessions"])
		} END { print (v == "" ? "-" : v) }' "$out")
done
if [[ $KINDS == "baseline imbot" ]]; then
	echo
	printf '  imbot/baseline KB per held session: %s (imbot %s, baseline %s)\n' \
		"$(awk -v a="${KBS[imbot]}" -v b="${KBS[baseline]}" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else print "n/a" }')" \
		"${KBS[imbot]}" "${KBS[baseline]}"
fi
