#!/bin/sh
# rayo_cli.sh - the rayo command's answers to bad input, RAYO_LOG, and
# `rayo topo`.
#
# Each check runs tools/rayo and compares its exit status and the message
# it prints with what a user must see.  Run by make check (TESTS), which
# exports srcdir; doc/examples is found there, or beside this script.
set -u
rayo=${RAYO:-tools/rayo}
top=${srcdir:-$(dirname "$0")/../..}
fails=0
# The topology variables would change what `rayo topo` reports.
unset RAYO_TOPOLOGY_SYNTHETIC RAYO_TOPOLOGY_XML RAYO_GPU_FILE

# expect STATUS PATTERN -- ARGS: runs rayo ARGS, wants exit STATUS and
# PATTERN (grep -E) in its standard error.
expect() {
    want=$1 pattern=$2
    shift 3
    err=$("$rayo" "$@" 2>&1 >/dev/null)
    got=$?
    if [ "$got" != "$want" ] || ! printf '%s\n' "$err" | grep -Eq -e "$pattern"; then
        echo "FAIL: rayo $*: exit $got (want $want), stderr: $err"
        fails=$((fails + 1))
    else
        echo "ok: rayo $*"
    fi
}

expect 2 "unknown option '--bogus'" -- bench link --bogus
expect 2 "unknown workload 'nope'" -- bench link -w rtt_ipc,nope
expect 2 "empty workload name" -- bench actor -w ,
expect 2 "--repeat needs a whole number from 1 to 1000, not 'x'" -- \
    bench link -r x
expect 2 "--timeout needs a whole number" -- bench actor --timeout 0
expect 2 "--repeat needs a whole number" -- bench link -r 99999999999999999999

# RAYO_LOG: an unknown level is named and ignored; a known one is quiet.
err=$(RAYO_LOG=loud "$rayo" --version 2>&1 >/dev/null)
if printf '%s\n' "$err" | grep -q "RAYO_LOG=loud is not a level"; then
    echo "ok: RAYO_LOG=loud is reported"
else
    echo "FAIL: RAYO_LOG=loud: stderr: $err"
    fails=$((fails + 1))
fi
err=$(RAYO_LOG=debug "$rayo" --version 2>&1 >/dev/null)
if [ -z "$err" ]; then
    echo "ok: RAYO_LOG=debug is accepted"
else
    echo "FAIL: RAYO_LOG=debug: stderr: $err"
    fails=$((fails + 1))
fi

# expect_out STATUS PATTERN -- ARGS: as expect, for standard output.
expect_out() {
    want=$1 pattern=$2
    shift 3
    out=$("$rayo" "$@" 2>/dev/null)
    got=$?
    if [ "$got" != "$want" ] ||
        ! printf '%s\n' "$out" | grep -Eq -e "$pattern"; then
        echo "FAIL: rayo $*: exit $got (want $want), stdout: $out"
        fails=$((fails + 1))
    else
        echo "ok: rayo $* (stdout)"
    fi
}

# json_gpus ARGS: runs rayo topo --format json ARGS and prints how many
# GPUs the object lists, or "bad" when it is not JSON.  Without python3
# it counts the GPUs' "index" keys.
json_gpus() {
    if ! out=$("$rayo" topo --format json "$@" 2>/dev/null); then
        echo bad
    elif [ "$have_python" = yes ]; then
        printf '%s\n' "$out" | python3 -c 'import json, sys
print(len(json.load(sys.stdin)["gpus"]))' 2>/dev/null || echo bad
    else
        case $out in
        "{"*"}") printf '%s\n' "$out" | grep -o '"index"' | wc -l |
            tr -d ' ' ;;
        *) echo bad ;;
        esac
    fi
}
# A python3 that is only a shim without an interpreter does not count.
have_python=no
python3 -c 'import json' >/dev/null 2>&1 && have_python=yes

# check_eq WHAT GOT WANT
check_eq() {
    if [ "$2" = "$3" ]; then
        echo "ok: $1"
    else
        echo "FAIL: $1: got '$2', want '$3'"
        fails=$((fails + 1))
    fi
}

# rayo topo: this machine, then the example inventory on a synthetic one.
machine="package:2 numa:2 core:8 pu:1"
gpus="$top/doc/examples/gpus-8x-nvlink.json"
expect_out 0 "^packages +[0-9]+" -- topo
n=$(json_gpus)
case $n in
[0-9]*) echo "ok: rayo topo --format json ($n GPUs)" ;;
*)
    echo "FAIL: rayo topo --format json: not a JSON object with gpus"
    fails=$((fails + 1))
    ;;
esac
expect_out 0 "8 GPUs \(.*, NVLink\)" -- topo --synthetic "$machine" \
    --gpu-file "$gpus"
expect_out 0 "^GPU0 +X +NV1 +NV1 +NV2 +NV2 +SYS" -- topo \
    --synthetic "$machine" --gpu-file "$gpus"
check_eq "topo leaves stderr empty" "$("$rayo" topo --synthetic "$machine" \
    --gpu-file "$gpus" 2>&1 >/dev/null)" ""
check_eq "topo --format json lists 8 GPUs" \
    "$(json_gpus --synthetic "$machine" --gpu-file "$gpus")" 8
check_eq "RAYO_TOPOLOGY_SYNTHETIC and RAYO_GPU_FILE stand in for options" \
    "$(export RAYO_TOPOLOGY_SYNTHETIC="$machine" RAYO_GPU_FILE="$gpus"
       json_gpus)" 8
check_eq "--no-cuda leaves no GPUs" "$(json_gpus --no-cuda)" 0
expect 0 "GPU 2 is on NUMA node 1, but the topology has only 1" -- topo \
    --synthetic "package:1 core:2 pu:1" --gpu-file "$gpus"
expect 1 "cannot read the GPU inventory no-such-gpus\.json" -- topo \
    --gpu-file no-such-gpus.json
expect 1 "cannot read the hwloc XML file no-such-topo\.xml" -- topo \
    --xml no-such-topo.xml
expect 1 "hwloc rejected the synthetic topology \"bogus:3\"" -- topo \
    --synthetic bogus:3
expect 2 "--synthetic and --xml both" -- topo --synthetic "$machine" \
    --xml topo.xml
expect 2 "--format takes table or json, not 'yaml'" -- topo --format yaml
expect 2 "unexpected argument 'extra'" -- topo extra
expect_out 0 "^Usage: rayo topo" -- topo --help
expect_out 0 "RAYO_GPU_FILE" -- help topo
[ "$fails" -eq 0 ]
