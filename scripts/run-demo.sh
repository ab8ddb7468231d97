#!/usr/bin/env bash
# make run: start matchd on the embedded default store (./data), enrol the
# sample watchlist from testdata/ if the store is empty, show one real
# identification, then keep the server in the foreground until Ctrl-C.
# matchd reads BORDERMATCH_FACE_MODEL, BORDERMATCH_THRESHOLD and its other
# variables from the environment (README: matchd's flags).
# matchd serves TLS with a local CA it makes in the data directory's tls/
# on first start; watchlist finds the CA and the admin certificate there.
set -euo pipefail
# glibc gives each camera-reading thread an arena; two keep RSS flat (README: capture).
export MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-2}
cd "$(dirname "$0")/.."

LISTEN=${BORDERMATCH_LISTEN:-127.0.0.1:50051}
export BORDERMATCH_SERVER=$LISTEN
export BORDERMATCH_DATA=${BORDERMATCH_DATA:-./data}
SAMPLE=testdata/watchlist
PROBE=testdata/faces/bbt/sheldon/3.png   # sheldon is enrolled with another photo (bbt/sheldon/1.png)

# Another server on the port (a matchd left running, say) would answer the
# demo's calls while this one dies on the port or the data directory's
# lock: refuse to start instead.
host=${LISTEN%:*}
port=${LISTEN##*:}
case $host in "" | 0.0.0.0 | "[::]" | "::") host=127.0.0.1 ;; esac
host=${host#[}
host=${host%]}
if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
	echo "run-demo: $LISTEN is taken: something (another matchd?) already listens there." >&2
	echo "Stop it (ss -ltnp 'sport = :$port' names it), or run on another port: BORDERMATCH_LISTEN=127.0.0.1:50052 make run" >&2
	exit 1
fi

# matchd's log is kept, besides being shown, so that the demo knows it is
# this matchd that is serving: its own log says so.
logdir=$(mktemp -d)
log=$logdir/matchd.log
format=${BORDERMATCH_LOG_FORMAT:-auto}
if [ "$format" = auto ] && [ -t 2 ]; then format=console; fi # the tee below is no terminal
bin/matchd --listen "$LISTEN" --data "${BORDERMATCH_DATA:-./data}" --models "${BORDERMATCH_MODELS:-./models}" \
	--log-format "$format" 2> >(tee "$log" >&2) &
pid=$!
stop() { kill -INT "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$logdir"; }
trap 'stop; exit 130' INT TERM

# Wait for this matchd to serve: loading the models takes a few seconds.
serving=
for _ in $(seq 1 240); do
	if ! kill -0 "$pid" 2>/dev/null; then
		wait "$pid" || true
		rm -rf "$logdir"
		echo "matchd exited during start-up (see the log above)" >&2
		exit 1
	fi
	if grep -q 'matchd serving' "$log"; then
		serving=1
		break
	fi
	sleep 0.5
done
if [ -z "$serving" ]; then
	stop
	echo "matchd did not start serving on $LISTEN within 2 minutes (see the log above)" >&2
	exit 1
fi

if [ -z "$(bin/watchlist list --json | tr -d ' \n' | grep -v '"subjects":\[\]' || true)" ]; then
	echo
	echo "== Enrolling the sample watchlist from $SAMPLE"
	bin/watchlist import "$SAMPLE" --list sample
fi
echo
echo "== Watchlists"
bin/watchlist lists
echo
echo "== watchlist search --photo $PROBE"
result=$(bin/watchlist search --photo "$PROBE" --top 5)
echo "$result"
if grep -q '^No candidate' <<<"$result"; then
	echo
	echo "No candidate: if $BORDERMATCH_DATA was enrolled with another face model (matchd's log above names it),"
	echo "move it to this one from the kept photos:  bin/watchlist retemplate --algorithm ${BORDERMATCH_FACE_MODEL:-mobilefacenet-192}"
fi
echo
echo "matchd is serving on $LISTEN (data in ${BORDERMATCH_DATA:-./data}). Try:"
echo "  bin/watchlist search --photo $PROBE"
echo "  bin/watchlist list"
echo "  bin/watchlist audit            # who searched and enrolled whom; bin/watchlist audit verify checks the chain"
echo "  bin/matchd certs --role gate --name gate-07 --out ./certs   # a client certificate for a gate"
echo "Press Ctrl-C to stop."
rc=0
wait "$pid" || rc=$?
rm -rf "$logdir"
exit "$rc"
