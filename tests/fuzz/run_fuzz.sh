#!/bin/sh
# run_fuzz.sh - build the wire decoder's libFuzzer target and run it.
#
# Usage: tests/fuzz/run_fuzz.sh [seconds]   (default 60)
#
# Builds fuzz_wire with clang, ASan and UBSan from the sources it needs,
# runs it for the given time on a scratch copy of tests/fuzz/corpus/wire
# (the committed corpus is never written to), and exits non-zero if the
# fuzzer finds a crash, a leak or undefined behaviour.  Crash inputs are
# left in the work directory, whose name it prints.
set -eu

secs=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/fuzz_wire.XXXXXX")
cc=${CC_FUZZ:-clang}

echo "run_fuzz: building in $work"
# shellcheck disable=SC2046 # pkg-config output is a list of flags
"$cc" -g -O1 -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -std=c11 -D_GNU_SOURCE -DRA_NO_POOL \
    -I"$top/src" -I"$top/src/mailbox" \
    "$here/fuzz_wire.c" "$top/src/mailbox/wire.c" "$top/src/mailbox/msg.c" \
    "$top/src/mailbox/pool.c" "$top/src/mailbox/error.c" \
    "$top/src/mailbox/log.c" \
    $(pkg-config --cflags --libs libbson-1.0) -lpthread \
    -o "$work/fuzz_wire"

mkdir -p "$work/corpus" "$work/artifacts"
cp "$here"/corpus/wire/* "$work/corpus/" 2>/dev/null || true

echo "run_fuzz: fuzzing for $secs s"
status=0
"$work/fuzz_wire" -max_total_time="$secs" -max_len=65536 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" "$work/corpus" || status=$?

if [ "$status" -ne 0 ] || [ -n "$(ls -A "$work/artifacts")" ]; then
    echo "run_fuzz: FAILED (status $status); inputs in $work/artifacts" >&2
    exit 1
fi
echo "run_fuzz: no crash in $secs s; work directory $work"
