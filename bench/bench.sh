#!/usr/bin/env bash
# chute against its peers, to the same tusd (internal/cmd/tusdlite, a process of its own), in
# one run, every upload checked (see README "Benchmarks"; figures in bench/RESULTS.md):
#   small: N files of 4 KiB (default 10,000) dropped at once, drop to last sidecar, chute with
#          its DEFAULT config and with concurrency 8, against tus-js-client 8 in flight; files/s
#          and CPU per file (user+system of the client process).
#   big:   one 1 GiB file: curl doing TUS's minimum (one POST, one PATCH), tus-js-client (one
#          PATCH), chute from daemon start to sidecar (SHA-256 included, settle 100ms).
#   four:  (FOUR=1) the 1 GiB file under 4 names at once: chute and 4 curls in parallel.
# Usage: bench/bench.sh [WORKDIR]       (needs curl, node and `npm ci` in bench/)
#        ONLY=small|big bench/bench.sh  N=2000 for a shorter small round
#        BEFORE=<git rev>: every chute round also runs that revision's chute, in the same run
#        ROUNDS=<n>: the big rounds n times over (curl, then each chute, alternating), with the
#        median ratio at the end: this machine's speed moves by tens of percent between runs
# The small rounds' server stores on tmpfs (/dev/shm): on ext4, rounds that follow the deletion
# of many files measure the reuse of freed inodes, not the client. Each small round uploads a
# fresh copy of the files, and nothing is deleted until the end. The big rounds' server stores
# on disk under WORKDIR (TUSD_DIR to change it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=${1:-$(mktemp -d /tmp/chute-bench.XXXXXX)}
mkdir -p "$work"
echo "work dir: $work"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"
go build -o "$work/chute" ./cmd/chute
bins=(chute)
if [ -n "${BEFORE:-}" ]; then
  rm -rf "$work/before-src"
  mkdir -p "$work/before-src"
  git archive "$BEFORE" | tar -x -C "$work/before-src"
  (cd "$work/before-src" && go build -o "$work/chute-before" ./cmd/chute)
  bins+=(chute-before)
  echo "before: $(git log -1 --format='%h %s' "$BEFORE" | cut -c1-80)"
fi
go build -o "$work/tusdlite" ./internal/cmd/tusdlite
[ -d bench/node_modules/tus-js-client ] || (cd bench && npm ci --no-audit --no-fund >/dev/null)
echo "go $(go env GOVERSION), node $(node --version), tus-js-client $(node -p 'require("./bench/node_modules/tus-js-client/package.json").version'), $(curl --version | head -1 | cut -d' ' -f1-2)"

pids=()
chute_pid=
shm=$(mktemp -d /dev/shm/chute-bench.XXXXXX)
cleanup() {
  [ -n "$chute_pid" ] && kill "$chute_pid" 2>/dev/null || true
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "${shm:?}" "${work:?}"/tusd "${work:?}"/small* "${work:?}"/big* "${work:?}"/run-*
}
trap cleanup EXIT

start_tusd() { # $1 = storage dir; sets url
  mkdir -p "$1"
  "$work/tusdlite" --dir "$1" > "$work/tusd.url" &
  pids+=($!)
  for _ in $(seq 50); do [ -s "$work/tusd.url" ] && break; sleep 0.1; done
  url=$(cat "$work/tusd.url")
  rm -f "$work/tusd.url"
}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { print b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
cpu_ms() { awk -v t="$(getconf CLK_TCK)" '{ printf "%.0f", ($14 + $15) * 1000 / t }' "/proc/$1/stat"; }

# run_chute NAME INBOX [CONCURRENCY]: a daemon ($bin, default chute) on its own state; no
# concurrency key = defaults.
run_chute() {
  local dir=$work/run-$1
  rm -rf "$dir"
  mkdir -p "$dir"
  local conc=${3:+, concurrency: $3}
  cat > "$dir/chute.yaml" <<YAML
state: $dir/state.db
providers:
  own: {type: tus, endpoint: "$url"$conc}
folders:
  - {path: $2, provider: own, settle: 100ms}
YAML
  "$work/${bin:-chute}" run --config "$dir/chute.yaml" 2> "$dir/chute.log" &
  chute_pid=$!
}
stop_chute() { # sets peak (KiB) and cpu (ms)
  peak=$(awk '/VmHWM/ {print $2}' "/proc/$chute_pid/status")
  cpu=$(cpu_ms "$chute_pid")
  kill -TERM "$chute_pid"
  wait "$chute_pid" || true
  chute_pid=
}
wait_sidecars() { # $1 = dir, $2 = count, $3 = how often to look (default 0.1 s; the big
  # rounds look every 10 ms, so that the wait adds little to a round of about a second)
  while [ "$(find "$1" -name '*.chute.json' | wc -l)" -lt "$2" ]; do sleep "${3:-0.1}"; done
  if [ "$(grep -l '"status": "done"' -r "$1" --include='*.chute.json' | wc -l)" -ne "$2" ]; then
    echo "FAIL: not every sidecar in $1 says done" >&2
    exit 1
  fi
}
tusjs() { node bench/tusjs.mjs "$@"; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<< "$2"; }

if [ "${ONLY:-small}" = small ]; then
  n=${N:-10000}
  start_tusd "$shm/tusd"
  echo "tusd (tmpfs): $url"
  mkdir -p "$work/small0"
  head -c $((n * 4096)) /dev/urandom | split -b 4096 -a 5 -d - "$work/small0/f"
  rounds=()
  for b in "${bins[@]}"; do rounds+=("$b:default" "$b:c8"); done
  for r in tusjs8 tusjs16 "${rounds[@]}"; do cp -r "$work/small0" "$work/small-${r/:/-}"; done
  sync

  js_rate=0
  for k in 8 16; do
    out=$(tusjs "$url" "$work/small-tusjs$k" $k)
    r=$(awk -v n="$n" -v s="$(field seconds "$out")" 'BEGIN { printf "%.0f", n / s }')
    c=$(awk -v n="$n" -v c="$(field cpu_ms "$out")" 'BEGIN { printf "%.3f", c / n }')
    echo "tus-js-client $n x 4 KiB, $k in flight: $r files/s, $c ms CPU per file"
    [ "$r" -gt "$js_rate" ] && js_rate=$r
  done

  for br in "${rounds[@]}"; do
    bin=${br%%:*} r=${br#*:} k=${br/:/-}
    mkdir -p "$work/inbox-$k"
    conc=; [ "$r" = c8 ] && conc=8
    run_chute "$k" "$work/inbox-$k" $conc
    for _ in $(seq 100); do grep -qs "chute is running" "$work/run-$k/chute.log" && break; sleep 0.05; done
    t0=$(now)
    mv "$work/small-$k" "$work/inbox-$k/drop"
    wait_sidecars "$work/inbox-$k" "$n"
    total=$(since "$t0")
    stop_chute
    rate=$(awk -v n="$n" -v s="$total" 'BEGIN { printf "%.0f", n / s }')
    echo "$bin $n x 4 KiB, ${r/c8/concurrency 8} config: $rate files/s ($(ratio "$rate" "$js_rate")x tus-js-client at its best), $(awk -v n="$n" -v c="$cpu" 'BEGIN { printf "%.3f", c / n }') ms CPU per file, peak RSS $peak KiB"
    rm -rf "$work/inbox-$k"
  done
  bin=
  rm -rf "$work"/small* "${shm:?}/tusd"
fi

if [ "${ONLY:-big}" = big ]; then
  size=$((1 << 30))
  start_tusd "${TUSD_DIR:-$work/tusd}"
  echo "tusd (storing in ${TUSD_DIR:-$work/tusd}): $url"
  mkdir -p "$work/big"
  head -c "$size" /dev/urandom > "$work/big/big.bin"
  want_sha=$(sha256sum "$work/big/big.bin" | cut -d' ' -f1)
  sync

  declare -A ratios=()
  for round in $(seq "${ROUNDS:-1}"); do
    [ "${ROUNDS:-1}" -gt 1 ] && echo "round $round"
    # curl: the protocol's minimum, a POST and one PATCH.
    t0=$(now)
    loc=$(curl -sf -i -X POST -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $size" "$url" | tr -d '\r' | awk -F': ' 'tolower($1)=="location" {print $2}')
    curl -sf -o /dev/null -X PATCH -H 'Tus-Resumable: 1.0.0' -H 'Upload-Offset: 0' \
      -H 'Content-Type: application/offset+octet-stream' -T "$work/big/big.bin" "$loc"
    curl_s=$(since "$t0")
    curl_mb=$(awk -v b="$size" -v s="$curl_s" 'BEGIN { printf "%.0f", b / s / 1e6 }')
    echo "curl 1 GiB (POST + one PATCH): $curl_mb MB/s"
    rm -rf "${TUSD_DIR:-$work/tusd}"/*

    if [ "$round" = 1 ]; then
      out=$(tusjs "$url" "$work/big/big.bin" 1)
      js_mb=$(awk -v b="$size" -v s="$(field seconds "$out")" 'BEGIN { printf "%.0f", b / s / 1e6 }')
      echo "tus-js-client 1 GiB (one PATCH): $js_mb MB/s ($(ratio "$js_mb" "$curl_mb")x curl)"
      rm -rf "${TUSD_DIR:-$work/tusd}"/*
    fi

    for bin in "${bins[@]}"; do
      mkdir -p "$work/big/inbox"
      ln "$work/big/big.bin" "$work/big/inbox/big.bin"
      t0=$(now)
      run_chute one "$work/big/inbox"
      wait_sidecars "$work/big/inbox" 1 0.01
      total=$(since "$t0")
      stop_chute
      grep -q "\"sha256\": \"$want_sha\"" "$work/big/inbox/big.bin.chute.json" || { echo "FAIL: sidecar sha256" >&2; exit 1; }
      mb=$(awk -v b="$size" -v s="$total" 'BEGIN { printf "%.0f", b / s / 1e6 }')
      ratios[$bin]+="$(ratio "$mb" "$curl_mb") "
      echo "$bin 1 GiB, daemon start to sidecar (SHA-256, settle 0.1s): $mb MB/s ($(ratio "$mb" "$curl_mb")x curl), peak RSS $peak KiB"
      rm -rf "$work/big/inbox" "${TUSD_DIR:-$work/tusd}"/*
    done
  done
  if [ "${ROUNDS:-1}" -gt 1 ]; then
    for bin in "${bins[@]}"; do
      echo "$bin 1 GiB: median $(tr ' ' '\n' <<< "${ratios[$bin]}" | grep . | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }')x curl over ${ROUNDS} rounds (${ratios[$bin]% })"
    done
  fi
  bin=

  if [ -n "${FOUR:-}" ]; then
    t0=$(now)
    curls=()
    for i in 1 2 3 4; do
      (loc=$(curl -sf -i -X POST -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $size" "$url" | tr -d '\r' | awk -F': ' 'tolower($1)=="location" {print $2}')
       curl -sf -o /dev/null -X PATCH -H 'Tus-Resumable: 1.0.0' -H 'Upload-Offset: 0' \
         -H 'Content-Type: application/offset+octet-stream' -T "$work/big/big.bin" "$loc") &
      curls+=($!)
    done
    wait "${curls[@]}"
    c4=$(since "$t0")
    c4_mb=$(awk -v b="$((4 * size))" -v s="$c4" 'BEGIN { printf "%.0f", b / s / 1e6 }')
    echo "4 curls, 1 GiB each at once: $c4_mb MB/s"
    rm -rf "${TUSD_DIR:-$work/tusd}"/*
    for bin in "${bins[@]}"; do
      mkdir -p "$work/big/inbox4"
      for i in 1 2 3 4; do ln "$work/big/big.bin" "$work/big/inbox4/big$i.bin"; done
      t0=$(now)
      run_chute four "$work/big/inbox4" 4
      wait_sidecars "$work/big/inbox4" 4 0.01
      total=$(since "$t0")
      stop_chute
      mb=$(awk -v b="$((4 * size))" -v s="$total" 'BEGIN { printf "%.0f", b / s / 1e6 }')
      echo "$bin 4 x 1 GiB at once (concurrency 4): $mb MB/s ($(ratio "$mb" "$c4_mb")x 4 curls), peak RSS $peak KiB"
      rm -rf "$work/big/inbox4" "${TUSD_DIR:-$work/tusd}"/*
    done
    bin=
  fi
fi
