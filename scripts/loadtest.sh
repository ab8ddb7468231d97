#!/usr/bin/env bash
# make loadtest: bulk-load LOADTEST_N synthetic face subjects into a fresh
# (encrypted) data directory, start matchd on it, and drive Identify with ghz
# from 64 concurrent clients for LOADTEST_DURATION, sampling matchd's RSS
# every 10 s. Prints ghz's summary (latency percentiles, throughput, errors).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${LOADTEST_N:-1000000}
DURATION=${LOADTEST_DURATION:-60s}
CONCURRENCY=${LOADTEST_CONCURRENCY:-64}
LISTEN=${LOADTEST_LISTEN:-127.0.0.1:50151}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bordermatch-loadtest.XXXXXX")
trap 'kill -INT "${pid:-}" 2>/dev/null || true; wait "${pid:-}" 2>/dev/null || true; kill "${sampler:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT

echo "== Bulk-loading $N synthetic 128-d face subjects into $WORK/data"
go run ./scripts/loadtest --data "$WORK/data" --n "$N" --probe "$WORK/probe.json"

echo "== Starting matchd"
start=$(date +%s)
bin/matchd --listen "$LISTEN" --data "$WORK/data" --models "${BORDERMATCH_MODELS:-./models}" \
	--metrics-listen 127.0.0.1:0 --log-format json 2>"$WORK/matchd.log" &
pid=$!
for _ in $(seq 1 1200); do
	kill -0 "$pid" 2>/dev/null || { cat "$WORK/matchd.log"; echo "matchd exited" >&2; exit 1; }
	grep -q '"matchd serving"' "$WORK/matchd.log" && break
	sleep 0.5
done
grep '"index loaded"' "$WORK/matchd.log" || true
echo "matchd ready after $(( $(date +%s) - start )) s"

rss() { awk '/VmRSS/ {printf "%.0f MiB", $2/1024}' "/proc/$pid/status"; }
echo "RSS before the run: $(rss)"
( t=0; while sleep 10; do t=$((t+10)); echo "RSS at ${t}s: $(rss)"; done ) &
sampler=$!

bin/ghz --insecure --call bordermatch.v1.Matcher.Identify -D "$WORK/probe.json" \
	-c "$CONCURRENCY" -z "$DURATION" --connections 4 --timeout 60s "$LISTEN"

kill "$sampler" 2>/dev/null || true
echo "RSS after the run: $(rss)"
