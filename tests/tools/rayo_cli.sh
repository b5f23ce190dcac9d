#!/bin/sh
# rayo_cli.sh - the rayo command's answers to bad input, and RAYO_LOG.
#
# Each check runs tools/rayo and compares its exit status and the message
# it prints with what a user must see.  Run by make check (TESTS).
set -u
rayo=${RAYO:-tools/rayo}
fails=0

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
[ "$fails" -eq 0 ]
