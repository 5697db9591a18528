#!/usr/bin/env bash
# chute's benchmarks against a real tusd on loopback (see README "Benchmarks"):
#   1. one 1 GiB file: curl doing TUS's minimum (one POST, one PATCH of the whole file) and
#      chute (drop to sidecar, and the upload alone) to the same server, with chute's peak RSS;
#   2. four 1 GiB files at once: chute's peak RSS;
#   3. 10,000 files of 4 KiB dropped at once: drop to last sidecar, and drop to last job
#      recorded in the state database.
# Usage: bench/bench.sh [WORKDIR]   (needs about 10 GiB of disk; curl)
#        ONLY=one bench/bench.sh      (just the single 1 GiB file against curl)
#        TUSD_DIR=/dev/shm/tusd ...   (tusd stores in memory: no disk writeback noise)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d /tmp/chute-bench.XXXXXX)}
mkdir -p "$work"
echo "work dir: $work"
go build -o "$work/chute" ./cmd/chute
go build -o "$work/tusdlite" ./internal/cmd/tusdlite

# TUSD_DIR=/dev/shm/x keeps tusd's disk writes (and the page cache's writeback) out of the figures.
tusd_dir=${TUSD_DIR:-$work/tusd}
"$work/tusdlite" --dir "$tusd_dir" > "$work/tusd.url" &
tusd_pid=$!
chute_pid=
cleanup() {
  [ -n "$chute_pid" ] && kill "$chute_pid" 2>/dev/null || true
  kill -INT "$tusd_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 50); do [ -s "$work/tusd.url" ] && break; sleep 0.1; done
url=$(cat "$work/tusd.url")
echo "tusd: $url"

now() { date +%s.%N; }
rate() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }

size=$((1 << 30))
mkdir -p "$work/stage"
for i in 0 1 2 3; do
  [ -s "$work/stage/big$i.bin" ] || head -c "$size" /dev/urandom > "$work/stage/big$i.bin"
  [ "${ONLY:-}" = one ] && break
done

# 1a. curl: the protocol's minimum.
loc=$(curl -s -i -X POST -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $size" "$url" | tr -d '\r' | awk -F': ' 'tolower($1)=="location" {print $2}')
t0=$(now)
curl -s -o /dev/null -X PATCH -H 'Tus-Resumable: 1.0.0' -H 'Upload-Offset: 0' \
  -H 'Content-Type: application/offset+octet-stream' -T "$work/stage/big0.bin" "$loc"
t1=$(now)
curl_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
echo "curl 1 GiB: ${curl_s}s, $(rate $size "$curl_s") MB/s"

run_chute() { # $1 = name, $2 = concurrency
  rm -rf "${work:?}/$1"
  mkdir -p "$work/$1/inbox"
  cat > "$work/$1/chute.yaml" <<YAML
state: $work/$1/state.db
log: {level: info}
providers:
  own: {type: tus, endpoint: "$url", concurrency: $2}
folders:
  - {path: $work/$1/inbox, provider: own, settle: 100ms}
YAML
  "$work/chute" run --config "$work/$1/chute.yaml" 2> "$work/$1/chute.log" &
  chute_pid=$!
  for _ in $(seq 50); do grep -q "chute is running" "$work/$1/chute.log" && break; sleep 0.1; done
}
stop_chute() {
  peak=$(awk '/VmHWM/ {print $2}' /proc/$chute_pid/status)
  kill -TERM "$chute_pid"; wait "$chute_pid" || true; chute_pid=
}
wait_sidecars() { # $1 = dir, $2 = count
  while [ "$(find "$1" -name '*.chute.json' | wc -l)" -lt "$2" ]; do sleep 0.05; done
}

# 1b. chute, one 1 GiB file.
run_chute one 2
t0=$(now)
mv "$work/stage/big0.bin" "$work/one/inbox/"
wait_sidecars "$work/one/inbox" 1
t1=$(now)
stop_chute
total=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
up=$(grep -o 'msg=uploaded.*seconds=[0-9.e-]*' "$work/one/chute.log" | sed 's/.*seconds=//')
echo "chute 1 GiB: drop to sidecar ${total}s ($(rate $size "$total") MB/s, settle 0.1s included); upload ${up}s ($(rate $size "$up") MB/s); ratio to curl $(awk -v c="$curl_s" -v u="$up" 'BEGIN { printf "%.2f", c / u }'); peak RSS ${peak} KiB"
grep -q '"status": "done"' "$work/one/inbox/big0.bin.chute.json"
mv "$work/one/inbox/big0.bin" "$work/stage/"

[ "${ONLY:-}" = one ] && exit 0

# 2. chute, four 1 GiB files at once.
run_chute four 4
t0=$(now)
mv "$work"/stage/big{0,1,2,3}.bin "$work/four/inbox/"
wait_sidecars "$work/four/inbox" 4
t1=$(now)
stop_chute
total=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
echo "chute 4 x 1 GiB at once: ${total}s ($(rate $((4 * size)) "$total") MB/s); peak RSS ${peak} KiB"
mv "$work"/four/inbox/big*.bin "$work/stage/"
rm -rf "${tusd_dir:?}"/*

# 3. 10,000 files of 4 KiB dropped at once.
n=10000
mkdir -p "$work/small"
if [ "$(ls "$work/small" | wc -l)" -lt $n ]; then
  head -c $((n * 4096)) /dev/urandom | split -b 4096 -a 5 -d - "$work/small/f"
fi
run_chute many 8
t0=$(now)
mv "$work/small" "$work/many/inbox/drop"
wait_sidecars "$work/many/inbox" $n
t1=$(now)
total=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
"$work/chute" status --config "$work/many/chute.yaml" --json > "$work/many/status.json"
stop_chute
mv "$work/many/inbox/drop" "$work/small"
find "$work/small" -name '*.chute.json' -delete
last_queued=$(grep -o '"queued_at": "[^"]*"' "$work/many/status.json" | sort | tail -1 | sed 's/.*: "//; s/"//')
rec=$(awk -v a="$t0" -v b="$(date -d "$last_queued" +%s.%N)" 'BEGIN { print b - a }')
echo "chute $n x 4 KiB: drop to last sidecar ${total}s, $(awk -v n=$n -v s="$total" 'BEGIN { printf "%.0f", n / s }') files/s; last job recorded ${rec}s after the drop (settle 0.1s); peak RSS ${peak} KiB"
