#!/usr/bin/env bash
# Wipe speed beside the standard tools, on the same loop device in the same run.
#
#   sudo agent/benches/wipe.sh [SIZE_GIB=2] [DIR=/var/tmp]
#
# Makes a SIZE_GIB file in DIR (use a real disk, not tmpfs), attaches it as a
# loop device with direct I/O, and times: dd zero write (oflag=direct bs=4M
# conv=fsync), custodian clear-zero write, shred -n1, custodian clear-random
# write, nwipe --method=zero (if installed), dd direct read, custodian full
# verification (zero pattern and random pattern). Caches are dropped before
# every run. Prints MiB/s per run and the ratios the issue sets as targets.
set -euo pipefail

size_gib=${1:-2}
dir=${2:-/var/tmp}
repo=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --release --quiet --manifest-path "$repo/Cargo.toml" -p custodian-agent --example wipe_bench
bench="$repo/target/release/examples/wipe_bench"

img=$(mktemp "$dir/wipe-bench.XXXXXX")
loopdev=""
cleanup() {
    [ -n "$loopdev" ] && losetup -d "$loopdev" 2>/dev/null || true
    rm -f "$img"
}
trap cleanup EXIT
fallocate -l "${size_gib}G" "$img"
loopdev=$(losetup --find --show --direct-io=on "$img")
bytes=$(blockdev --getsize64 "$loopdev")
mib=$((bytes / 1048576))
echo "target: $loopdev over $img ($mib MiB), $(nproc) cores"

drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
declare -A rate
timeit() { # name command...
    local name=$1; shift
    drop
    local t0 t1
    t0=$(date +%s.%N)
    if ! "$@" > /tmp/wipe-bench-run.log 2>&1; then
        echo "FAILED: $*"; cat /tmp/wipe-bench-run.log; exit 1
    fi
    t1=$(date +%s.%N)
    rate[$name]=$(echo "scale=1; $mib / ($t1 - $t0)" | bc)
    printf '%-28s %8s MiB/s   (%s)\n' "$name" "${rate[$name]}" "$*"
}

timeit dd-zero-write dd if=/dev/zero of="$loopdev" oflag=direct bs=4M count=$((mib / 4)) conv=fsync
timeit custodian-clear-zero "$bench" write-zero "$loopdev"
timeit custodian-verify-zero "$bench" verify-zero "$loopdev"
timeit dd-direct-read dd if="$loopdev" of=/dev/null iflag=direct bs=4M
timeit shred-n1 shred -n1 "$loopdev"
timeit custodian-clear-random "$bench" write-random "$loopdev"
timeit custodian-verify-random "$bench" verify-random "$loopdev"
if command -v nwipe > /dev/null; then
    timeit nwipe-zero nwipe --autonuke --nogui --nowait --noblank --method=zero --verify=off --rounds=1 "$loopdev"
fi

ratio() { echo "scale=2; ${rate[$1]} / ${rate[$2]}" | bc; }
echo
echo "clear-zero / dd zero write:      $(ratio custodian-clear-zero dd-zero-write)   (target >= 0.95)"
echo "clear-random / dd zero write:    $(ratio custodian-clear-random dd-zero-write)   (target >= 0.80)"
echo "clear-random / shred -n1:        $(ratio custodian-clear-random shred-n1)   (target >= 1.5)"
echo "verify-zero / dd direct read:    $(ratio custodian-verify-zero dd-direct-read)   (target >= 0.90)"
echo "verify-random / dd direct read:  $(ratio custodian-verify-random dd-direct-read)   (target >= 0.90)"
