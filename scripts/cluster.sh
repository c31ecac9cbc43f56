#!/usr/bin/env bash
# scripts/cluster.sh: page-mode rate through Kamailio's dispatcher with one and with two imbot
# instances sharing PostgreSQL, against one imbot on SQLite without Kamailio (issue 12's
# figures).
#
# Usage:
#   scripts/cluster.sh
#
# It builds ./cmd/imbot, starts a throwaway PostgreSQL (initdb and postgres from
# IMBOT_POSTGRES_BIN or the newest /usr/lib/postgresql/*/bin, in the work directory, on a free
# port of 127.0.0.1, as store/postgres/pgtest does: fsync, synchronous_commit and
# full_page_writes off; run as root, the server runs as the user postgres), and measures three
# setups in turn at each rate of RATES:
#   sqlite  one imbot, store driver sqlite, sipp writing to it directly (the baseline);
#   pg-1    Kamailio (interop/testdata/kamailio.cfg with its dispatcher, -A DSLIST) in front
#           of one imbot on PostgreSQL;
#   pg-2    the same with two imbot instances: the dispatcher spreads the users over them by
#           a hash of the From URI.
# Each step starts everything but PostgreSQL afresh (a new database, new imbot processes and
# a new Kamailio, which must hold every instance active before the step starts) and runs sipp's
# page-mode load (scripts/sipp/load_page.xml): rate*STEP_SECS calls, each from a new user, each
# a MESSAGE "load N" answered 200 and the bot's reply (its rule "load") answered 200 by
# load_page_echo.xml. The reply goes through Kamailio (outbound_proxy) in pg-1 and pg-2. A step
# passes when every call completed, the instances handled exactly one message per call
# (imbot_messages_in_total of their /metrics: none lost, none handled twice, as a failover of
# the dispatcher after its 2 s timer would do), and the calls completed at KEEP_PCT % of the
# rate or more (completed calls / wall time: past capacity the calls still complete, late, and
# the step takes longer than STEP_SECS). A setup stops stepping after STOP_AFTER failing steps
# in a row.
#
# It prints a table per setup: calls, completed and failed calls, messages handled by each
# instance, wall time, completed calls per second, and the CPU seconds each process took
# during the step (each imbot instance, Kamailio with all its children, PostgreSQL with all its
# backends, sipp, and the rest of the host), then the highest passing rate of each setup.
# sipp, Kamailio, PostgreSQL and the instances all share the host's CPUs: on a small shared
# machine the figures are indicative, and the CPU columns show where the cores went.
#
# Environment:
#   RATES="200 400 600 800 1000 1200 1400 1700 2000 2500 3000"   calls per second, one step each
#   STEP_SECS=5     calls per step = rate * STEP_SECS
#   LIMIT=500       most calls open at once (sipp -l)
#   KEEP_PCT=95     a step passes only when completed calls per second reach this % of the rate
#   STOP_AFTER=1    stop a setup's stepping after this many failing steps in a row (0: never)
#   SETUPS="sqlite pg-1 pg-2"   which setups to measure
#   LOG_LEVEL=info  imbot's log level (info logs a line per message, as deployed)
#   HELPDESK=0      1: every instance has a handoff agent (no one writes as it), so that with
#                   PostgreSQL one instance leads the helpdesk and the other looks up, for each
#                   message, whether it belongs to the leader (handlers.Leader)
#   KAM_SHM=512     Kamailio's shared memory, MiB (-m): the tests' 64 runs out from about 600
#                   calls/s (each transaction lingers a few seconds in tm's wait timer; past
#                   that Kamailio answers 500 "server error occurred")
#   QUIET_WAIT=60   before each step, wait up to this many seconds for the host to be quiet
#                   (under a quarter of a core busy over one second); 0: do not wait
#   KEEP=1          keep the work directory (binaries, configs, logs of every process)
#
# Needs go, sipp (Debian package sip-tester), kamailio and kamcmd (kamailio), curl, and the
# PostgreSQL server binaries (postgresql). Binds 127.0.0.1 only, never port 5060. Every
# process it starts is stopped on exit.
set -euo pipefail

RATES=${RATES:-200 400 600 800 1000 1200 1400 1700 2000 2500 3000}
STEP_SECS=${STEP_SECS:-5}
LIMIT=${LIMIT:-500}
HELPDESK=${HELPDESK:-0}
KEEP_PCT=${KEEP_PCT:-95}
STOP_AFTER=${STOP_AFTER:-1}
SETUPS=${SETUPS:-sqlite pg-1 pg-2}
LOG_LEVEL=${LOG_LEVEL:-info}
QUIET_WAIT=${QUIET_WAIT:-60}
KAM_SHM=${KAM_SHM:-512}
KEEP=${KEEP:-0}

for r in $RATES; do
	[[ $r =~ ^[1-9][0-9]*$ ]] || {
		echo "RATES must be positive integers, not '$r'" >&2
		exit 2
	}
done
for n in STEP_SECS LIMIT KAM_SHM KEEP_PCT; do
	[[ ${!n} =~ ^[1-9][0-9]*$ ]] || {
		echo "$n must be a positive integer, not '${!n}'" >&2
		exit 2
	}
done
[[ $STOP_AFTER =~ ^[0-9]+$ && $QUIET_WAIT =~ ^[0-9]+$ ]] || {
	echo "STOP_AFTER and QUIET_WAIT must be integers >= 0" >&2
	exit 2
}
for s in $SETUPS; do
	case $s in
	sqlite | pg-1 | pg-2) ;;
	*)
		echo "SETUPS: unknown setup '$s' (sqlite, pg-1, pg-2)" >&2
		exit 2
		;;
	esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
SCEN=$ROOT/scripts/sipp
export PATH="/usr/local/go/bin:$PATH"
for tool in go sipp kamailio kamcmd curl; do
	command -v "$tool" >/dev/null || {
		echo "$tool not found (Debian: apt-get install -y golang sip-tester kamailio curl)" >&2
		exit 1
	}
done
PGBIN=${IMBOT_POSTGRES_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n | tail -1)}
[[ -n $PGBIN && -x $PGBIN/initdb && -x $PGBIN/pg_ctl ]] || {
	echo "PostgreSQL server binaries not found (IMBOT_POSTGRES_BIN, /usr/lib/postgresql/*/bin): apt-get install -y postgresql" >&2
	exit 1
}
PGRUN=() # runs the server's programs as its user
if (($(id -u) == 0)); then
	id postgres >/dev/null 2>&1 || {
		echo "run as root, PostgreSQL needs the user postgres to run as" >&2
		exit 1
	}
	PGRUN=(runuser -u postgres --)
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/imbot-cluster.XXXXXX")
chmod 755 "$WORK" # the server's user reaches its directory
PIDS=()
PGDATA=$WORK/pg/data
PG_STARTED=0
cleanup() {
	stop_pids "${PIDS[@]}"
	if ((PG_STARTED)); then
		"${PGRUN[@]+"${PGRUN[@]}"}" "$PGBIN/pg_ctl" stop -D "$PGDATA" -m immediate -s >/dev/null 2>&1 || true
	fi
	if [[ $KEEP == 1 ]]; then
		echo "work directory kept: $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building ./cmd/imbot ..." >&2
(cd "$ROOT" && go build -o "$WORK/imbot" ./cmd/imbot)

cat >"$WORK/rules.yaml" <<'EOF'
# cluster.sh: one rule, whose answer reads the store like any conversation's.
version: 1
rules:
  - name: load
    match: ["load {n}"]
    reply: "got {{ match.n }}"
  - name: sorry
    fallback: true
    reply: "Sorry?"
EOF

TICKS=$(getconf CLK_TCK)

# --- PostgreSQL ---
mkdir -p "$WORK/pg/sock"
[[ ${#PGRUN[@]} == 0 ]] || chown -R postgres: "$WORK/pg"
echo "starting PostgreSQL ($PGBIN) ..." >&2
"${PGRUN[@]+"${PGRUN[@]}"}" "$PGBIN/initdb" -D "$PGDATA" -U imbot --auth=trust --no-locale -E UTF8 --no-sync \
	>"$WORK/pg/initdb.log" 2>&1 || {
	cat "$WORK/pg/initdb.log" >&2
	exit 1
}
for _ in 1 2 3 4 5; do
	PGPORT=$(free_port)
	if "${PGRUN[@]+"${PGRUN[@]}"}" "$PGBIN/pg_ctl" start -D "$PGDATA" -w -t 60 -s -l "$WORK/pg/server.log" \
		-o "-p $PGPORT -k $WORK/pg/sock -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
		>/dev/null 2>&1; then
		PG_STARTED=1
		break
	fi
	echo "PostgreSQL did not start on port $PGPORT (retrying):" >&2
	tail -3 "$WORK/pg/server.log" >&2
done
((PG_STARTED)) || {
	echo "PostgreSQL would not start" >&2
	exit 1
}
PGPID=$(head -1 "$PGDATA/postmaster.pid")

# tree_ticks PID: CPU time (clock ticks) of a process, its children it reaped and its live
# descendants: Kamailio's and PostgreSQL's work is done in their children.
tree_ticks() {
	local pid=$1 sum c
	sum=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
	for c in $(pgrep -P "$pid" 2>/dev/null || true); do
		sum=$((sum + $(tree_ticks "$c")))
	done
	echo "$sum"
}

# secs TICKS: clock ticks as seconds.
secs() { awk -v d="$1" -v hz="$TICKS" 'BEGIN { printf "%.2f", d / hz }'; }

# --- imbot instances and Kamailio ---
IMBOT_PIDS=()
IMBOT_HTTP=()
IMBOT_ADDRS=()

# start_imbot DIR I STORE_YAML PROXY: starts instance I on a free UDP port; PROXY is its
# outbound proxy ("" for none). Appends to IMBOT_PIDS, IMBOT_HTTP and IMBOT_ADDRS.
start_imbot() {
	local dir=$1 i=$2 store=$3 proxy=$4 port pid cfg log line
	cfg=$dir/imbot-$i.yaml
	log=$dir/imbot-$i.log
	for _ in 1 2 3 4 5; do
		port=$(free_port)
		{
			echo "listen: [\"udp://127.0.0.1:$port\"]"
			echo "identity: sip:bot@127.0.0.1"
			[[ -z $proxy ]] || echo "outbound_proxy: $proxy"
			echo "trust: {proxies: [127.0.0.1]}"
			echo "rules: [$WORK/rules.yaml]"
			echo "store: $store"
			echo "http: {listen: \"127.0.0.1:0\"}"
			echo "log: {level: $LOG_LEVEL}"
			[[ $HELPDESK != 1 ]] || echo "handoff: {agents: [{uri: \"sip:agent@127.0.0.1\"}]}"
		} >"$cfg"
		IMBOT_PG_DSN=$DSN "$WORK/imbot" run --config "$cfg" >"$log" 2>&1 &
		pid=$!
		PIDS+=("$pid")
		for _ in $(seq 400); do
			line=$(grep -m1 -o 'metrics and health on http://[^/]*' "$log" || true)
			[[ -z $line ]] || break
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		if [[ -n $line ]] && kill -0 "$pid" 2>/dev/null; then
			line=${line#metrics and health on http://}
			for _ in $(seq 400); do
				if curl -fs -o /dev/null "http://$line/readyz"; then
					IMBOT_PIDS+=("$pid")
					IMBOT_HTTP+=("$line")
					IMBOT_ADDRS+=("127.0.0.1:$port")
					return 0
				fi
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.05
			done
		fi
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		echo "imbot $i did not start on port $port (retrying):" >&2
		tail -3 "$log" >&2
	done
	echo "imbot would not start" >&2
	return 1
}

# messages_in HTTPADDR: the messages an instance handled (imbot_messages_in_total, all modes).
messages_in() {
	curl -fs "http://$1/metrics" | awk '/^imbot_messages_in_total[{ ]/ { n += $NF } END { printf "%d", n }'
}

KAM_PID=
# start_kamailio DIR PORT: Kamailio on PORT (chosen before the instances started: they name it
# as their outbound proxy), its dispatcher set 1 being IMBOT_ADDRS, as interop/kamailio_test.go
# runs it; returns once it serves and holds every instance active (FLAGS AP: probed).
start_kamailio() {
	local dir=$1 port=$2 a pid states=
	: >"$dir/dispatcher.list"
	for a in "${IMBOT_ADDRS[@]}"; do echo "1 sip:$a" >>"$dir/dispatcher.list"; done
	kamailio -f "$ROOT/interop/testdata/kamailio.cfg" -DD -E -Y "$dir" -P "$dir/kamailio.pid" -m "$KAM_SHM" -M 8 \
		-l "udp:127.0.0.1:$port" -l "tcp:127.0.0.1:$port" \
		-A "CTL_SOCK=\"unix:$dir/ctl\"" -A "DSLIST=\"$dir/dispatcher.list\"" >"$dir/kamailio.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	for _ in $(seq 400); do
		grep -q IMBOT-READY "$dir/kamailio.log" && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	if ! grep -q IMBOT-READY "$dir/kamailio.log" || ! kill -0 "$pid" 2>/dev/null; then
		echo "kamailio did not start on port $port:" >&2
		tail -3 "$dir/kamailio.log" >&2
		return 1
	fi
	KAM_PID=$pid
	for _ in $(seq 400); do
		states=$(kamcmd -s "unix:$dir/ctl" dispatcher.list 2>/dev/null | awk '/FLAGS:/ { print $2 }' || true)
		[[ $(grep -c '^AP$' <<<"$states") != "${#IMBOT_ADDRS[@]}" ]] || return 0
		sleep 0.05
	done
	echo "the dispatcher does not hold every instance active: $(tr '\n' ' ' <<<"$states")" >&2
	return 1
}

# stop_step: stops the step's imbot instances and Kamailio.
stop_step() {
	local pid
	for pid in "${IMBOT_PIDS[@]}" $KAM_PID; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	IMBOT_PIDS=()
	IMBOT_HTTP=()
	IMBOT_ADDRS=()
	KAM_PID=
}

# stat_field FILE LABEL: the cumulative column of a line of sipp's final statistics screen.
stat_field() {
	awk -F'|' -v label="$2" 'index($1, label) { v = $3 } END { gsub(/^ +| +$/, "", v); print v }' "$1"
}

declare -A R # R[SETUP,RATE,key]
STEPNO=0

# run_step SETUP RATE: one step; fills R[SETUP,RATE,*].
run_step() {
	local setup=$1 rate=$2 dir n i count target store proxy sport rc=0 args
	local c0=() c1=() k0=0 k1=0 p0 p1 h0 h1 w0 w1 sippcpu handled split
	STEPNO=$((STEPNO + 1))
	dir=$WORK/$setup-$rate
	mkdir -p "$dir"
	count=$((rate * STEP_SECS))
	n=1
	[[ $setup == pg-2 ]] && n=2
	wait_quiet
	DSN=
	if [[ $setup == sqlite ]]; then
		store="{driver: sqlite, path: $dir/imbot.db}"
		proxy=
	else
		"$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U imbot "step$STEPNO"
		DSN="postgres://imbot@127.0.0.1:$PGPORT/step$STEPNO?sslmode=disable"
		store="{driver: postgres, dsn_env: IMBOT_PG_DSN}"
		# Kamailio needs the instances' addresses and they its port: its port is picked
		# first, and it starts after them.
		KAM_PORT=$(free_port)
		proxy="sip:127.0.0.1:$KAM_PORT;transport=udp"
	fi
	for ((i = 0; i < n; i++)); do
		start_imbot "$dir" "$i" "$store" "$proxy"
	done
	target=${IMBOT_ADDRS[0]}
	if [[ -n $proxy ]]; then
		start_kamailio "$dir" "$KAM_PORT"
		target=127.0.0.1:$KAM_PORT
	fi
	echo "== $setup: $count calls at $rate/s to $target" >&2
	args=(-sf "$SCEN/load_page.xml" -oocsf "$SCEN/load_page_echo.xml" -s bot -i 127.0.0.1 -t u1
		-r "$rate" -m "$count" -l "$LIMIT" -nostdin
		-timeout "$((STEP_SECS * 4 + 60))s" -timeout_error
		-trace_err -error_file "$dir/sipp_errors.log"
		-trace_screen -screen_file "$dir/sipp_screen.log")
	for ((i = 0; i < n; i++)); do c0[i]=$(tree_ticks "${IMBOT_PIDS[i]}"); done
	[[ -z $KAM_PID ]] || k0=$(tree_ticks "$KAM_PID")
	p0=$(tree_ticks "$PGPID")
	h0=$(busy_ticks)
	w0=$(date +%s%N)
	for _ in 1 2 3; do
		sport=$(free_port)
		rc=0
		(
			cd "$dir"
			rc=0
			sipp "${args[@]}" -p "$sport" "$target" >"$dir/sipp.out" 2>&1 || rc=$?
			times >"$dir/sipp.times"
			exit "$rc"
		) || rc=$?
		grep -q 'Address already in use' "$dir/sipp.out" || break
		echo "sipp lost port $sport; retrying" >&2
	done
	w1=$(date +%s%N)
	h1=$(busy_ticks)
	for ((i = 0; i < n; i++)); do c1[i]=$(tree_ticks "${IMBOT_PIDS[i]}"); done
	[[ -z $KAM_PID ]] || k1=$(tree_ticks "$KAM_PID")
	p1=$(tree_ticks "$PGPID")
	# The subshell's children's times (second line of `times`): sipp's user and system CPU.
	sippcpu=$(awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.2f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$dir/sipp.times")

	handled=0
	split=
	for ((i = 0; i < n; i++)); do
		local m
		m=$(messages_in "${IMBOT_HTTP[i]}" || echo 0)
		handled=$((handled + m))
		split+=${split:+/}$m
	done
	local ok failed wall
	ok=$(stat_field "$dir/sipp.out" "Successful call")
	failed=$(stat_field "$dir/sipp.out" "Failed call")
	[[ -n $ok ]] || ok=$(stat_field "$dir/sipp_screen.log" "Successful call")
	[[ -n $failed ]] || failed=$(stat_field "$dir/sipp_screen.log" "Failed call")
	wall=$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
	R[$setup,$rate,calls]=$count
	R[$setup,$rate,ok]=${ok:-0}
	R[$setup,$rate,failed]=${failed:-?}
	R[$setup,$rate,split]=$split
	R[$setup,$rate,wall]=$wall
	R[$setup,$rate,cps]=$(awk -v n="${ok:-0}" -v w="$wall" 'BEGIN { printf "%.0f", (w > 0 ? n / w : 0) }')
	R[$setup,$rate,imbot0]=$(secs $((c1[0] - c0[0])))
	R[$setup,$rate,imbot1]=-
	((n < 2)) || R[$setup,$rate,imbot1]=$(secs $((c1[1] - c0[1])))
	R[$setup,$rate,kam]=-
	[[ -z $KAM_PID ]] || R[$setup,$rate,kam]=$(secs $((k1 - k0)))
	R[$setup,$rate,pg]=-
	[[ $setup == sqlite ]] || R[$setup,$rate,pg]=$(secs $((p1 - p0)))
	R[$setup,$rate,sipp]=$sippcpu
	local known
	known=$((c1[0] - c0[0] + k1 - k0 + p1 - p0)) # PostgreSQL idles through sqlite steps
	((n < 2)) || known=$((known + c1[1] - c0[1]))
	R[$setup,$rate,other]=$(awk -v h="$((h1 - h0))" -v k="$known" -v s="$sippcpu" -v hz="$TICKS" \
		'BEGIN { o = (h - k) / hz - s; printf "%.2f", (o > 0 ? o : 0) }')
	if ((rc == 0)) && [[ ${ok:-0} == "$count" && ${failed:-1} == 0 && $handled == "$count" ]] &&
		((R[$setup,$rate,cps] * 100 >= rate * KEEP_PCT)); then
		R[$setup,$rate,verdict]=pass
	elif ((rc == 0)) && [[ ${ok:-0} == "$count" && ${failed:-1} == 0 && $handled == "$count" ]]; then
		R[$setup,$rate,verdict]=SLOW
		echo "step failed: every call completed and was handled once, but at ${R[$setup,$rate,cps]}/s (under $KEEP_PCT % of $rate/s)" >&2
	else
		R[$setup,$rate,verdict]=FAIL
		echo "step failed: sipp exit code $rc, $ok of $count calls successful, $failed failed, $handled messages handled ($split)" >&2
		tail -3 "$dir/sipp_errors.log" >&2 2>/dev/null || true
	fi
	stop_step
}

declare -A BEST FIRSTFAIL RAN
for setup in $SETUPS; do
	fails=0
	for rate in $RATES; do
		run_step "$setup" "$rate"
		RAN[$setup]+=" $rate"
		if [[ ${R[$setup,$rate,verdict]} == pass ]]; then
			BEST[$setup]=$rate
			fails=0
		else
			[[ -n ${FIRSTFAIL[$setup]:-} ]] || FIRSTFAIL[$setup]=$rate
			fails=$((fails + 1))
			if ((STOP_AFTER > 0 && fails >= STOP_AFTER)); then break; fi
		fi
	done
done

echo
echo "imbot page-mode rate: sqlite = one instance on SQLite, sipp writing to it; pg-N = Kamailio's dispatcher in front"
echo "of N instances sharing PostgreSQL (fsync off). Steps of rate*${STEP_SECS} calls, each from a new user: MESSAGE -> 200,"
echo "the bot's reply -> 200. $(nproc) CPUs shared by every process (sipp included): indicative figures."
for setup in $SETUPS; do
	echo
	echo "$setup:"
	printf '  %6s %6s %6s %6s %11s %7s %7s %7s %7s %7s %7s %7s %7s %s\n' \
		rate calls ok failed handled wall_s ok/s imbot1 imbot2 kamail postgr sipp other result
	for rate in ${RAN[$setup]:-}; do
		printf '  %6s %6s %6s %6s %11s %7s %7s %7s %7s %7s %7s %7s %7s %s\n' "$rate" \
			"${R[$setup,$rate,calls]}" "${R[$setup,$rate,ok]}" "${R[$setup,$rate,failed]}" "${R[$setup,$rate,split]}" \
			"${R[$setup,$rate,wall]}" "${R[$setup,$rate,cps]}" "${R[$setup,$rate,imbot0]}" "${R[$setup,$rate,imbot1]}" \
			"${R[$setup,$rate,kam]}" "${R[$setup,$rate,pg]}" "${R[$setup,$rate,sipp]}" "${R[$setup,$rate,other]}" \
			"${R[$setup,$rate,verdict]}"
	done
done
echo
echo "  columns: ok/failed: sipp's calls (a call completes when its MESSAGE got 200 and the replies caught up);"
echo "  handled: messages each instance handled (imbot_messages_in_total), one per call when none was lost or"
echo "  handled twice; ok/s: completed calls per second of wall time; imbot1, imbot2, kamail(io), postgr(es),"
echo "  sipp, other (the rest of the host): CPU seconds during the step, Kamailio and PostgreSQL with their"
echo "  children; pass: every call completed and handled once, at ${KEEP_PCT} % of the rate or more (SLOW: the"
echo "  calls completed and were handled once, but late: past capacity)"
echo
for setup in $SETUPS; do
	top=${BEST[$setup]:-0}
	if [[ $top == 0 ]]; then
		printf '  %-7s highest passing rate: none (lowest step %s/s failed)\n' "$setup" "${RATES%% *}"
	elif [[ -z ${FIRSTFAIL[$setup]:-} ]]; then
		printf '  %-7s highest passing rate: %s/s (every step passed: raise RATES)\n' "$setup" "$top"
	else
		printf '  %-7s highest passing rate: %s/s (failed at %s/s)\n' "$setup" "$top" "${FIRSTFAIL[$setup]}"
	fi
done
