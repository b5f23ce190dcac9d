#!/bin/sh
# rayo_daemon.sh - a node daemon through the rayo command: `rayo start
# --head`, programs joining it (the quickstart, unchanged, with
# RAYO_ADDRESS=auto), `rayo status` and `rayo list`, a driver killed with
# SIGKILL mid-job, bad command lines, `rayo stop`.
#
# Each cluster lives in a temp dir of its own, so this runs beside other
# clusters.  Run by make check (TESTS) from the build directory.
set -u
rayo=${RAYO:-tools/rayo}
quickstart=${QUICKSTART:-apps/quickstart}
driver=${DRIVER:-tests/cluster/multinode_driver}
mnd=$driver     # ($driver is reused below for a driver's pid)
fails=0
temp=$(mktemp -d /tmp/rayo-daemon-test.XXXXXX)
export RAYO_TEMP_DIR="$temp"
unset RAYO_ADDRESS RAYO_TOPOLOGY_SYNTHETIC RAYO_TOPOLOGY_XML RAYO_GPU_FILE
cleanup() {
    "$rayo" stop --force >/dev/null 2>&1
    rm -rf "$temp"
}
trap cleanup EXIT

ok() { echo "ok: $*"; }
# alive PID: the process runs (a zombie nobody reaped yet does not).
alive() { [ -e "/proc/$1/stat" ] && ! grep -q ') Z' "/proc/$1/stat"; }
# fail TEXT: a failed check; the daemon's last log lines say what it saw.
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
    [ -f "$temp/daemon.log" ] && tail -n 25 "$temp/daemon.log" | sed 's/^/  daemon.log: /'
}

# json_num KEY: the first number after "KEY" : in stdin.
# (top level only: what follows "nodes" is cut off first).
json_num() {
    sed 's/"nodes" : .*//' | sed -n "s/.*\"$1\" : \([0-9.e+-]*\).*/\1/p"
}

# Bad command lines are refused with a message, before anything starts.
err=$("$rayo" start 2>&1 >/dev/null); rc=$?
[ $rc = 2 ] && printf '%s' "$err" | grep -q "say what to start: --head" &&
    ok "start without --head is refused" || fail "start without --head: $rc $err"
err=$("$rayo" start --head --num-gpus 1.5 2>&1 >/dev/null); rc=$?
[ $rc = 2 ] && printf '%s' "$err" | grep -q "whole GPU devices" &&
    ok "fractional --num-gpus is refused" || fail "--num-gpus 1.5: $rc $err"
err=$("$rayo" start --head --resources '{"ssd": -1}' 2>&1 >/dev/null); rc=$?
[ $rc = 2 ] && printf '%s' "$err" | grep -q "non-negative" &&
    ok "negative --resources is refused" || fail "--resources: $rc $err"
err=$("$rayo" status --format yaml 2>&1 >/dev/null); rc=$?
[ $rc = 2 ] && ok "status --format yaml is refused" || fail "status --format: $rc"

# Nothing runs yet: status says so, stop has nothing to do, a program
# asked to join fails with a message that says how to start a cluster.
err=$("$rayo" status 2>&1 >/dev/null); rc=$?
[ $rc = 1 ] && printf '%s' "$err" | grep -q "rayo start --head" &&
    ok "status without a cluster" || fail "status without a cluster: $rc $err"
"$rayo" stop >/dev/null 2>&1 && ok "stop without a cluster" ||
    fail "stop without a cluster"
err=$(RAYO_ADDRESS=auto RAYO_LOG=error "$quickstart" 2>&1); rc=$?
[ $rc != 0 ] && printf '%s' "$err" | grep -q "rayo start --head" &&
    ok "a driver without a cluster is told how to start one" ||
    fail "driver without a cluster: $rc $err"

# Start a head node with 2 CPUs and a custom resource.
session=$("$rayo" start --head --num-cpus 2 --resources '{"ssd": 2}' 2>/dev/null)
rc=$?
if [ $rc != 0 ] || [ ! -d "$session" ]; then
    fail "rayo start --head: exit $rc, session '$session'"
    tail -n 20 "$temp/daemon.log"
    exit 1
fi
ok "rayo start --head: $session"
err=$("$rayo" start --head 2>&1 >/dev/null); rc=$?
[ $rc = 1 ] && printf '%s' "$err" | grep -q "already running" &&
    ok "a second head in the same temp dir is refused" ||
    fail "second start: $rc $err"

# The quickstart runs unchanged on it, twice.
for i in 1 2; do
    out=$(RAYO_ADDRESS=auto "$quickstart" 2>&1); rc=$?
    if [ $rc = 0 ] && printf '%s' "$out" | grep -q "all results correct" &&
        printf '%s' "$out" | grep -q "squares: 0 1 4 9"; then
        ok "quickstart on the daemon ($i)"
    else
        fail "quickstart on the daemon ($i): exit $rc: $out"
    fi
done
# ... and by session directory.
out=$(RAYO_ADDRESS="$session" "$quickstart" 2>&1); rc=$?
[ $rc = 0 ] && ok "quickstart with the session as address" ||
    fail "quickstart with the session as address: $rc $out"

# A worker's output reaches the driver's terminal, prefixed with its pid.
out=$(RAYO_ADDRESS=auto "$driver" say hello 2>/dev/null)
err=$(RAYO_ADDRESS=auto "$driver" say hello 2>&1 >/dev/null)
printf '%s' "$out" | grep -q '^(pid=[0-9]*) out: hello$' &&
    printf '%s' "$err" | grep -q '^(pid=[0-9]*) err: hello$' &&
    ok "worker output is streamed to the driver's stdout and stderr" ||
    fail "worker output: stdout '$out', stderr '$err'"
# ... and kept in the worker's log files, which rayo logs lists and shows.
wpid=$(printf '%s' "$out" | sed -n 's/^(pid=\([0-9]*\)) out: hello$/\1/p')
"$rayo" logs 2>/dev/null | grep -q "^worker-$wpid.out " &&
    "$rayo" logs 2>/dev/null | grep -q "^daemon.log " &&
    ok "rayo logs lists the worker's files and the daemon's log" ||
    fail "rayo logs: $("$rayo" logs 2>&1)"
out=$("$rayo" logs --pid "$wpid" 2>&1)
[ "$out" = "==> worker-$wpid.out <==
out: hello
==> worker-$wpid.err <==
err: hello" ] && ok "rayo logs --pid shows the worker's output" ||
    fail "rayo logs --pid $wpid: $out"
out=$("$rayo" logs --tail 1 "worker-$wpid.err" 2>&1)
[ "$out" = "err: hello" ] && ok "rayo logs --tail 1 FILE" ||
    fail "rayo logs --tail 1: $out"
"$rayo" logs no-such.log >/dev/null 2>&1; rc1=$?
"$rayo" logs ../node.info >/dev/null 2>&1; rc2=$?
"$rayo" logs --tail x >/dev/null 2>&1; rc3=$?
[ $rc1 = 1 ] && [ $rc2 = 2 ] && [ $rc3 = 2 ] &&
    ok "rayo logs refuses unknown files, paths and bad options" ||
    fail "rayo logs errors: $rc1 $rc2 $rc3"

# status and list: one node, its topology, every CPU free again and the
# jobs' workers gone once the drivers ended.
free=""; workers=""
for i in $(seq 1 50); do
    js=$("$rayo" status --format json 2>/dev/null)
    free=$(printf '%s' "$js" | sed 's/"nodes" : .*//' | sed -n 's/.*"available" : { "CPU" : \([0-9.]*\).*/\1/p')
    workers=$(printf '%s' "$js" | json_num workers)
    [ "$free" = "2.0" ] && [ "$workers" = "0" ] && break
    sleep 0.1
done
[ "$free" = "2.0" ] && ok "all CPUs free after the jobs" ||
    fail "CPUs free after the jobs: '$free' ($js)"
[ "$workers" = "0" ] && ok "the jobs' workers are gone" ||
    fail "workers after the jobs: '$workers'"
out=$("$rayo" status 2>&1); rc=$?
[ $rc = 0 ] && printf '%s' "$out" | grep -q "Nodes: 1 alive" &&
    printf '%s' "$out" | grep -q "topology: .*cores" &&
    printf '%s' "$out" | grep -q "ssd 2" &&
    printf '%s' "$out" | grep -q "object store: [0-9.]*/256.0 MiB used, 0 objects" &&
    ok "rayo status (the jobs left no object in the store)" ||
    fail "rayo status: $rc: $out"
out=$("$rayo" list nodes --format json 2>&1); rc=$?
[ $rc = 0 ] && printf '%s' "$out" | grep -q '"topology" : {' &&
    printf '%s' "$out" | grep -q '"state" : "ALIVE"' &&
    printf '%s' "$out" | grep -q '"object_store" : { "capacity" : 268435456' &&
    ok "rayo list nodes --format json has the topology" ||
    fail "list nodes: $rc: $out"
out=$("$rayo" list placement-groups 2>&1); rc=$?
[ $rc = 0 ] && printf '%s' "$out" | grep -q "STRATEGY" &&
    ok "rayo list placement-groups" || fail "list placement-groups: $rc $out"

# A driver killed with SIGKILL mid-job: its workers are stopped and its
# resources return.  The quickstart's batch phase keeps both CPUs busy;
# QUICKSTART_SLOW_MS makes each batch take that long.
RAYO_ADDRESS=auto QUICKSTART_SLOW_MS=500 "$quickstart" >/dev/null 2>&1 &
driver=$!
busy=""
for i in $(seq 1 100); do
    js=$("$rayo" status --format json 2>/dev/null)
    busy=$(printf '%s' "$js" | sed 's/"nodes" : .*//' | sed -n 's/.*"available" : { "CPU" : \([0-9.]*\).*/\1/p')
    [ "$busy" = "0.0" ] && break
    sleep 0.1
done
kill -9 $driver 2>/dev/null
wait $driver 2>/dev/null
if [ "$busy" != "0.0" ]; then
    fail "the slow quickstart never used both CPUs ($js)"
fi
free=""; workers=""
for i in $(seq 1 50); do
    js=$("$rayo" status --format json 2>/dev/null)
    free=$(printf '%s' "$js" | sed 's/"nodes" : .*//' | sed -n 's/.*"available" : { "CPU" : \([0-9.]*\).*/\1/p')
    workers=$(printf '%s' "$js" | json_num workers)
    [ "$free" = "2.0" ] && [ "$workers" = "0" ] && break
    sleep 0.1
done
[ "$free" = "2.0" ] && [ "$workers" = "0" ] &&
    ok "a killed driver's CPUs and workers return" ||
    fail "after kill -9 of a driver: CPU free '$free', workers '$workers'"
grep -q "its driver was lost" "$temp/daemon.log" &&
    ok "the daemon logged the lost driver" || fail "no lost-driver line in the log"

# The killed driver's job FAILED in the GCS's table; the others succeeded.
for i in $(seq 1 50); do
    out=$("$rayo" list jobs --format json 2>&1)
    printf '%s' "$out" | grep -q '"status" : "FAILED"' && break
    sleep 0.1
done
printf '%s' "$out" | grep -q '"status" : "FAILED", .*"message" : "the driver.s process was lost"' &&
    printf '%s' "$out" | grep -q '"status" : "SUCCEEDED"' &&
    ok "rayo list jobs: the killed driver FAILED, the others SUCCEEDED" ||
    fail "rayo list jobs: $out"

# The quickstarts' tasks are in the GCS's task table, finished, with the
# worker that ran each (their drivers sent their last events as they ended).
out=$("$rayo" list tasks --limit 0 2>&1)
sq=$(printf '%s\n' "$out" | grep -c " FINISHED  *square ")
inf=$(printf '%s\n' "$out" | grep -c " FINISHED  *infer ")
notdone=$(printf '%s\n' "$out" | grep -c " PENDING \| RUNNING ")
[ "$sq" -ge 4 ] && [ "$inf" -ge 100 ] && [ "$notdone" = 0 ] &&
    ok "rayo list tasks: the quickstarts' squares and batches FINISHED" ||
    fail "list tasks: squares $sq, batches $inf, unfinished $notdone: $(printf '%s\n' "$out" | head -20)"
json=$("$rayo" list tasks --limit 2 --format json 2>&1)
[ "$(printf '%s' "$json" | grep -o '"function" : "[a-z]' | wc -l)" = 2 ] &&
    printf '%s' "$json" | grep -q '"state" : "[A-Z]*", "function"' &&
    ok "rayo list tasks --limit 2 --format json" || fail "list tasks json: $json"
"$rayo" list tasks --limit -1 >/dev/null 2>"$temp/err"; rc=$?
"$rayo" status --limit 3 >/dev/null 2>>"$temp/err"; rc2=$?
"$rayo" list actors --limit 3 >/dev/null 2>>"$temp/err"; rc3=$?
[ $rc = 2 ] && [ $rc2 = 2 ] && [ $rc3 = 2 ] &&
    grep -q "a number of tasks" "$temp/err" &&
    ok "bad --limit is refused" || fail "--limit: $rc $rc2 $rc3 $(cat "$temp/err")"

# The names of a killed driver's actors are released: the name can be
# taken again, by a new actor (its count starts again).
serve_keeper() {
    RAYO_ADDRESS=auto "$mnd" serve keeper ssd 60 >"$temp/serve-$1.out" 2>&1 &
    for i in $(seq 1 100); do
        grep -q "^serving" "$temp/serve-$1.out" && return 0
        grep -q "exists" "$temp/serve-$1.out" && return 1
        sleep 0.1
    done
    return 1
}
serve_keeper 1 || fail "serve keeper: $(cat "$temp/serve-1.out")"
out=$(RAYO_ADDRESS=auto "$mnd" call keeper 2>&1)
[ "$out" = "node 1 count 1 2" ] || fail "call keeper: $out"
kill -9 "$(sed -n 's/^serving //p' "$temp/serve-1.out")"
again=""
for t in 2 3 4 5 6 7 8 9 10 11; do
    serve_keeper $t && { again=$t; break; }
    sleep 0.3
done
out=$(RAYO_ADDRESS=auto "$mnd" call keeper 2>&1)
[ -n "$again" ] && [ "$out" = "node 1 count 1 2" ] &&
    grep -q "names of the lost driver's actors .* released" "$temp/daemon.log" &&
    ok "a killed driver's actor name is released and taken again" ||
    fail "name after the driver was killed: serve '$again', call '$out'"
[ -n "$again" ] && kill "$(sed -n 's/^serving //p' "$temp/serve-$again.out")"

# A detached actor outlives the driver that made it (which ends normally
# here): its state goes on; killed by another driver that looked it up,
# its worker exits, its name is released and made again.
for round in 1 2; do
    out=$(RAYO_ADDRESS=auto "$mnd" serve dk ssd 0 detached 2>&1)
    c1=$(RAYO_ADDRESS=auto "$mnd" call dk 2>&1)
    c2=$(RAYO_ADDRESS=auto "$mnd" call dk 2>&1)
    [ "$c1" = "node 1 count 1 2" ] && [ "$c2" = "node 1 count 3 4" ] &&
        ok "a detached actor outlives its driver, with its state ($round)" ||
        fail "detached actor ($round): serve '$out', calls '$c1' '$c2'"
    alive=$("$rayo" list actors 2>&1 | grep -c " ALIVE  *Counter  *dk ")
    [ "$alive" = 1 ] && ok "rayo list actors: dk ALIVE ($round)" ||
        fail "list actors ($round): $("$rayo" list actors 2>&1)"
    k=$(RAYO_ADDRESS=auto "$mnd" kill dk 2>&1)
    gone=""
    for i in $(seq 1 50); do
        [ "$("$rayo" list workers 2>/dev/null | wc -l)" -le 1 ] &&
            { gone=yes; break; }
        sleep 0.1
    done
    [ "$k" = killed ] && [ -n "$gone" ] &&
        ok "a killed detached actor's worker exits ($round)" ||
        fail "killing the detached actor ($round): '$k', workers: $("$rayo" list workers 2>&1)"
    dead=""
    for i in $(seq 1 50); do
        [ "$("$rayo" list actors 2>/dev/null |
              grep -c " DEAD  *Counter  *dk .*killed by process")" = "$round" ] &&
            { dead=yes; break; }
        sleep 0.1
    done
    [ -n "$dead" ] && ok "rayo list actors: dk DEAD, killed ($round)" ||
        fail "list actors after the kill ($round): $("$rayo" list actors 2>&1)"
done
json=$("$rayo" list actors --format json 2>&1)
printf '%s' "$json" | grep -q '"name" : "dk", "namespace" : "default"' &&
    printf '%s' "$json" | grep -q '"detached" : true' &&
    ok "rayo list actors --format json" || fail "list actors json: $json"
grep -q "names of detached actors that ended .* released" "$temp/daemon.log" &&
    ok "the names of ended detached actors are released" ||
    fail "detached actor names were not released"

# Jobs submitted with rayo job.
err=$("$rayo" job submit 2>&1 >/dev/null); rc=$?
[ $rc = 2 ] && ok "job submit without a command is refused" ||
    fail "job submit without a command: $rc $err"
err=$("$rayo" job status nosuch 2>&1 >/dev/null); rc=$?
[ $rc = 1 ] && printf '%s' "$err" | grep -q "no job nosuch" &&
    ok "status of an unknown job" || fail "job status nosuch: $rc $err"
out=$("$rayo" job submit --submission-id quick1 -- "$quickstart" 2>/dev/null); rc=$?
[ $rc = 0 ] && printf '%s' "$out" | grep -q "^quick1" &&
    printf '%s' "$out" | grep -q "all results correct" &&
    ok "job submit runs the quickstart and follows its output" ||
    fail "job submit: $rc $out"
[ "$("$rayo" job status quick1 2>/dev/null)" = SUCCEEDED ] &&
    ok "job status: SUCCEEDED" || fail "job status quick1"
"$rayo" job logs quick1 2>/dev/null | grep -q "squares: 0 1 4 9" &&
    ok "job logs" || fail "job logs quick1"
"$rayo" list jobs --format json 2>/dev/null |
    grep -q '"status" : "SUCCEEDED", [^}]*"submission_id" : "quick1"' &&
    ok "the GCS records the submitted job" || fail "GCS record of quick1"
out=$("$rayo" job submit --no-wait --submission-id slow1 \
      --runtime-env-json '{"env_vars": {"QUICKSTART_SLOW_MS": "300"}}' \
      -- "$quickstart" 2>/dev/null); rc=$?
[ $rc = 0 ] && [ "$out" = slow1 ] && ok "job submit --no-wait" ||
    fail "job submit --no-wait: $rc $out"
for i in $(seq 1 50); do
    "$rayo" list jobs 2>/dev/null | grep -q "RUNNING .*slow1" && break
    sleep 0.1
done
[ "$("$rayo" job status slow1 2>/dev/null)" = RUNNING ] &&
    ok "a slow job is RUNNING" || fail "job status slow1 while running"
# job logs --follow (in the background) returns once the job has ended,
# with all of its output.
"$rayo" job logs --follow slow1 >"$temp/follow.out" 2>&1 &
follower=$!
# rayo list workers: the job's workers, leased, naming its driver.
dpid=$("$rayo" list jobs --format json 2>/dev/null |
       sed -n 's/.*"status" : "RUNNING", "driver_pid" : \([0-9]*\).*/\1/p')
seen=""
for i in $(seq 1 100); do
    out=$("$rayo" list workers 2>&1)
    printf '%s\n' "$out" | grep -q "LEASED *0 *$dpid " && { seen=yes; break; }
    sleep 0.1
done
[ -n "$seen" ] && ok "rayo list workers shows the job's leased workers" ||
    fail "list workers (driver $dpid): $out"
kill -0 $follower 2>/dev/null && ok "job logs --follow waits while the job runs" ||
    fail "job logs --follow returned while slow1 ran: $(cat "$temp/follow.out")"
"$rayo" job stop slow1 >/dev/null 2>&1
[ "$("$rayo" job status slow1 2>/dev/null)" = STOPPED ] &&
    ok "job stop: STOPPED" || fail "job status slow1 after stop"
for i in $(seq 1 50); do
    kill -0 $follower 2>/dev/null || break
    sleep 0.1
done
if kill -0 $follower 2>/dev/null; then
    kill $follower
    fail "job logs --follow still runs after the job stopped"
else
    wait $follower && ok "job logs --follow ends with the job" ||
        fail "job logs --follow: exit $?: $(cat "$temp/follow.out")"
fi
"$rayo" list jobs --format json 2>/dev/null |
    grep -q '"status" : "STOPPED", [^}]*"submission_id" : "slow1"' &&
    ok "the GCS records the stopped job" || fail "GCS record of slow1"

# The daemon still serves.
out=$(RAYO_ADDRESS=auto "$quickstart" 2>&1); rc=$?
[ $rc = 0 ] && ok "quickstart after a killed driver" ||
    fail "quickstart after a killed driver: $rc $out"

# rayo stop ends the daemon; then nothing runs.
pid=$(sed -n 's/^pid //p' "$session/node.info")
"$rayo" stop >/dev/null 2>&1 && ok "rayo stop" || fail "rayo stop"
if alive "$pid"; then
    fail "daemon $pid still runs after rayo stop"
else
    ok "daemon $pid ended"
fi
[ ! -e "$temp/current" ] && [ ! -e "$session/node.info" ] &&
    ok "the session reads as stopped" || fail "stop left current or node.info"
err=$(RAYO_ADDRESS="$session" RAYO_LOG=error "$quickstart" 2>&1); rc=$?
[ $rc != 0 ] && ok "a driver of a stopped cluster fails" ||
    fail "driver of a stopped cluster: $rc $err"

# kill -9 of the daemon: its workers die with it, and `rayo stop` cleans
# up what it left.
session=$("$rayo" start --head --num-cpus 1 2>/dev/null)
pid=$(sed -n 's/^pid //p' "$session/node.info")
store=$(sed -n 's/^store //p' "$session/node.info")
RAYO_ADDRESS=auto QUICKSTART_SLOW_MS=500 "$quickstart" >/dev/null 2>&1 &
driver=$!
sleep 1
kill -9 "$pid"
wait $driver; rc=$?
[ $rc != 0 ] && ok "the driver fails when the daemon is killed" ||
    fail "driver exit $rc after the daemon was killed"
err=$("$rayo" status 2>&1 >/dev/null); rc=$?
[ $rc = 1 ] && printf '%s' "$err" | grep -q "no cluster is running" &&
    ok "status after kill -9 of the daemon" || fail "status after kill -9: $rc $err"
"$rayo" stop >/dev/null 2>&1 && [ ! -e "$temp/current" ] &&
    [ ! -e "/dev/shm/$store" ] &&
    ok "stop cleans up after a killed daemon, its object store too" ||
    fail "stop after kill -9 (store $store)"

# --restart: a supervisor process (the keeper) keeps the daemon up.  After
# kill -9 of the daemon it starts it again (a new process and session,
# which takes over the GCS's tables), programs run on it again, and rayo
# stop ends the daemon and the keeper.
err=$("$rayo" start --head --restart --block 2>&1 >/dev/null); rc=$?
[ $rc = 2 ] && printf '%s' "$err" | grep -q "restart" &&
    ok "--restart with --block is refused" || fail "--restart --block: $rc $err"
session=$("$rayo" start --head --num-cpus 1 --restart 2>"$temp/restart.err")
pid=$(sed -n 's/^pid //p' "$session/node.info" 2>/dev/null)
keeper=$(cat "$temp/keeper.pid" 2>/dev/null)
[ -n "$pid" ] && [ -n "$keeper" ] && [ "$keeper" != "$pid" ] &&
    alive "$keeper" && alive "$pid" &&
    ok "--restart: daemon $pid, kept by $keeper" ||
    fail "--restart: $(cat "$temp/restart.err")"
# next_daemon SESSION prints the pid of the daemon of a session other than
# SESSION once one runs (the keeper's next), waiting up to 15 s.
next_daemon() {
    for i in $(seq 1 150); do
        new=$(cat "$temp/current" 2>/dev/null)
        if [ -n "$new" ] && [ "$new" != "$1" ] && [ -f "$new/node.info" ]; then
            p=$(sed -n 's/^pid //p' "$new/node.info")
            [ -n "$p" ] && alive "$p" && { echo "$p"; return; }
        fi
        sleep 0.1
    done
}
kill -9 "$pid"
pid2=$(next_daemon "$session")
[ -n "$pid2" ] && [ "$pid2" != "$pid" ] &&
    ok "after kill -9 the keeper started the daemon again ($pid2)" ||
    fail "no daemon after kill -9 under --restart"
out=$(RAYO_ADDRESS=auto "$quickstart" 2>&1); rc=$?
[ $rc = 0 ] && "$rayo" status >/dev/null 2>&1 &&
    ok "the daemon started again serves programs" ||
    fail "quickstart on the restarted daemon: $rc $out"
# The GCS, ended by a driver as a fault tool would, is restarted in place
# by its supervisor: the same daemon serves on (the keeper has nothing to
# do), says so in its log, and runs programs.
session1=$(cat "$temp/current" 2>/dev/null)
out=$(RAYO_ADDRESS=auto "$mnd" killsys gcs 2>&1)
sleep 0.3
[ "$(printf '%s\n' "$out" | head -n 1)" = "killed the daemon's gcs" ] &&
    alive "$pid2" && [ "$(cat "$temp/current" 2>/dev/null)" = "$session1" ] &&
    grep -q "the GCS (actor [0-9.]*) was restarted in place" "$temp/daemon.log" &&
    ok "the GCS was restarted in place; daemon $pid2 serves on" ||
    fail "GCS killed: $out; daemon $pid2 alive? log: $(tail -n 5 "$temp/daemon.log")"
out=$(RAYO_ADDRESS=auto "$quickstart" 2>&1); rc=$?
[ $rc = 0 ] && "$rayo" status >/dev/null 2>&1 &&
    ok "and it runs programs" ||
    fail "quickstart after the GCS's restart: $rc $out"
# The raylet, ended the same way, is restarted in place by its own
# supervisor: the same daemon serves on, says so in its log, and runs
# programs (its workers were started again).
out=$(RAYO_ADDRESS=auto "$mnd" killsys raylet 2>&1)
sleep 0.3
[ "$(printf '%s\n' "$out" | head -n 1)" = "killed the daemon's raylet" ] && alive "$pid2" &&
    [ "$(cat "$temp/current" 2>/dev/null)" = "$session1" ] &&
    grep -q "the raylet (actor [0-9.]*) was restarted in place" "$temp/daemon.log" &&
    ok "the raylet was restarted in place; daemon $pid2 serves on" ||
    fail "raylet killed: $out; daemon $pid2 alive? log: $(tail -n 5 "$temp/daemon.log")"
out=$(RAYO_ADDRESS=auto "$quickstart" 2>&1); rc=$?
[ $rc = 0 ] && ok "and it runs programs after the raylet's restart" ||
    fail "quickstart after the raylet's restart: $rc $out"
# The object manager too is restarted in place; past five restarts a
# minute its supervisor gives up, and the daemon stops, with a log line
# that names it, and the keeper starts it again.
out=$(RAYO_ADDRESS=auto "$mnd" killsys objmgr 2>&1)
sleep 0.3
[ "$(printf '%s\n' "$out" | head -n 1)" = "killed the daemon's objmgr" ] && alive "$pid2" &&
    grep -q "the object manager (actor [0-9.]*) was restarted in place" "$temp/daemon.log" &&
    ok "the object manager was restarted in place; daemon $pid2 serves on" ||
    fail "object manager killed: $out; daemon $pid2 alive? log: $(tail -n 5 "$temp/daemon.log")"
session2=$(cat "$temp/current" 2>/dev/null)
for i in 2 3 4 5 6; do
    out=$(RAYO_ADDRESS=auto "$mnd" killsys objmgr 2>&1)
    sleep 0.2
done
pid3=$(next_daemon "$session2")
[ "$(printf '%s\n' "$out" | head -n 1)" = "killed the daemon's objmgr" ] && [ -n "$pid3" ] &&
    ! alive "$pid2" &&
    grep -q "the daemon's object manager supervisor (it restarts the object manager up to 5 times a minute) (actor [0-9.]*) ended" "$temp/daemon.log" &&
    ok "a daemon whose object manager's supervisor gave up stopped and was started again ($pid3)" ||
    fail "object manager killed 6 times: $out; daemon $pid2 alive? new daemon '$pid3'; log: $(tail -n 5 "$temp/daemon.log")"
out=$(RAYO_ADDRESS=auto "$quickstart" 2>&1); rc=$?
[ $rc = 0 ] && ok "and the new daemon serves programs" ||
    fail "quickstart after the object manager's supervisor gave up: $rc $out"
pid2=$pid3
"$rayo" stop >/dev/null 2>&1
sleep 0.3
! alive "$pid2" && ! alive "$keeper" && [ ! -e "$temp/keeper.pid" ] &&
    ok "rayo stop ends the daemon and its keeper" ||
    fail "after stop: daemon $pid2 alive? keeper $keeper alive?"

# A cluster that starts removes the stores dead processes of this user
# left in /dev/shm (named rayo-PID-TIME), and only those.
sh -c 'exit 0' & deadpid=$!
wait $deadpid
stale="/dev/shm/rayo-$deadpid-1"
live="/dev/shm/rayo-$$-1"
: >"$stale"
: >"$live"
# --block: the daemon stays in the foreground until it is stopped.
"$rayo" start --head --num-cpus 1 --block >"$temp/block.out" 2>&1 &
blocker=$!
up=""
for i in $(seq 1 100); do
    "$rayo" status >/dev/null 2>&1 && { up=yes; break; }
    sleep 0.1
done
[ -n "$up" ] && kill -0 $blocker 2>/dev/null &&
    ok "rayo start --block runs the daemon in the foreground" ||
    fail "start --block: $(cat "$temp/block.out")"
[ ! -e "$stale" ] && [ -e "$live" ] &&
    ok "a starting cluster removes a dead process's store, not a live one's" ||
    fail "store sweep: stale $(ls "$stale" 2>&1), live $(ls "$live" 2>&1)"
rm -f "$stale" "$live"
# runtime env: working_dir is where the job runs; bad JSON is refused.
mkdir -p "$temp/wd"
out=$("$rayo" job submit --runtime-env-json "{\"working_dir\": \"$temp/wd\"}" \
      -- sh -c pwd 2>/dev/null); rc=$?
[ $rc = 0 ] && printf '%s\n' "$out" | grep -qx "$temp/wd" &&
    ok "--runtime-env-json working_dir" ||
    fail "working_dir: $rc $out"
err=$("$rayo" job submit --runtime-env-json '{"env_vars": ' -- true 2>&1 \
      >/dev/null); rc=$?
[ $rc = 2 ] && printf '%s' "$err" | grep -qi "json" &&
    ok "bad --runtime-env-json is refused" || fail "bad JSON: $rc $err"
err=$("$rayo" job submit --runtime-env-json "{\"working_dir\": \"$temp/none\"}" \
      -- true 2>&1 >/dev/null); rc=$?
[ $rc = 2 ] && printf '%s' "$err" | grep -q "working_dir" &&
    ok "a working_dir that is not a directory is refused" ||
    fail "missing working_dir: $rc $err"
"$rayo" stop >/dev/null 2>&1
for i in $(seq 1 50); do
    kill -0 $blocker 2>/dev/null || break
    sleep 0.1
done
if kill -0 $blocker 2>/dev/null; then
    kill -9 $blocker
    fail "rayo start --block did not end with rayo stop"
else
    wait $blocker && ok "rayo start --block ends with rayo stop, exit 0" ||
        fail "start --block exit $?: $(cat "$temp/block.out")"
fi

left=$(pgrep -f "$temp" | wc -l)
[ "$left" = 0 ] && ok "no process of the cluster is left" ||
    fail "$left processes of the cluster are left"

echo "$fails failed"
[ $fails = 0 ]
