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
# One gate certificate drives all the clients, so the per-caller limits
# (meant for one gate controller each) are off for the run.
bin/matchd --listen "$LISTEN" --data "$WORK/data" --models "${BORDERMATCH_MODELS:-./models}" \
	--rate-limit 0 --max-concurrent 0 \
	--metrics-listen 127.0.0.1:0 --log-format json 2>"$WORK/matchd.log" &
pid=$!
for _ in $(seq 1 1200); do
	kill -0 "$pid" 2>/dev/null || { cat "$WORK/matchd.log"; echo "matchd exited" >&2; exit 1; }
	grep -q '"matchd serving"' "$WORK/matchd.log" && break
	sleep 0.5
done
grep '"index loaded"' "$WORK/matchd.log" || true
echo "matchd ready after $(( $(date +%s) - start )) s"

# The load generator is a gate controller: mutual TLS with a gate certificate
# from matchd's local CA.
bin/matchd certs --data "$WORK/data" --role gate --name loadgen --out "$WORK/certs" >/dev/null
TLS=(--cacert "$WORK/data/tls/ca.pem" --cert "$WORK/certs/loadgen.pem" --key "$WORK/certs/loadgen-key.pem")

# RssAnon is the process's own memory (Go heap, Badger's caches, C++
# models); RssFile is the gallery's files mapped in, which grows as searches
# touch more of them and is given back under memory pressure.
rss() { awk '/VmRSS|RssAnon|RssFile/ {printf "%s %.0f MiB  ", $1, $2/1024}' "/proc/$pid/status"; }
echo "RSS before the run: $(rss)"
( t=0; while sleep 10; do t=$((t+10)); echo "RSS at ${t}s: $(rss)"; done ) &
sampler=$!

# --duration-stop wait: calls in flight when the time is up are answered
# and counted, not cut off by ghz closing its connections.
bin/ghz "${TLS[@]}" --call bordermatch.v1.Matcher.Identify -D "$WORK/probe.json" \
	-c "$CONCURRENCY" -z "$DURATION" --duration-stop wait --connections 4 --timeout 60s "$LISTEN"

kill "$sampler" 2>/dev/null || true
echo "RSS after the run: $(rss)"
