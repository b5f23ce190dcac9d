#!/bin/sh
# cluster_netns.sh - a rayo cluster of three nodes, each in its own
# network namespace with its own address, started with the rayo command:
# a head, two nodes joining it over tcp with the cluster certificate,
# `rayo status` seeing all three, work spilled from a busy node to the
# others, a task sent to the only node with a custom resource, placement
# groups across nodes (STRICT_SPREAD over three nodes; four bundles stay
# pending), a node killed with SIGKILL seen dead, a stranger without the
# certificate refused, and `rayo stop` everywhere.
#
# Needs root and iproute2; otherwise it exits 77 (automake's SKIP) and
# says why.  Run by make check from the build directory.
# Every process of these nodes runs on this machine's two CPUs beside the
# rest of make -j2 check, where one is sometimes not scheduled for over
# 2.5 s: the links here allow 5 s of silence (500 ms x 10), as a busy
# network would.  What this script checks of node loss (kill -9) is seen
# at once through the watched processes, not through heartbeats.
export RAYO_HEARTBEAT_MISS=10
. "$(dirname "$0")/netns_lib.sh"
netns_up 3

# The head, then two nodes joining it; node 2 has a custom resource.
head_ip="10.78.$net.1"
s1=$(on 1 "$rayo" start --head --node-ip "$head_ip" --port 6390 \
     --num-cpus 2 2>"$base/start1.err") ||
    { fail "head did not start: $(cat "$base/start1.err")"; exit 1; }
ok "head started: $s1"
cert="$s1/cluster.cert"
[ -f "$cert" ] && [ "$(stat -c %a "$cert")" = 600 ] &&
    ok "the cluster certificate is made with mode 0600" ||
    fail "certificate $cert"
for i in 2 3; do
    extra=""
    [ $i = 2 ] && extra='{"special": 1}'
    if [ -n "$extra" ]; then
        s=$(on $i "$rayo" start --address "$head_ip:6390" \
            --node-ip "10.78.$net.$i" --cert "$cert" --num-cpus 2 \
            --resources "$extra" 2>"$base/start$i.err")
    else
        s=$(on $i "$rayo" start --address "$head_ip:6390" \
            --node-ip "10.78.$net.$i" --cert "$cert" --num-cpus 2 \
            2>"$base/start$i.err")
    fi
    [ $? = 0 ] && ok "node $i joined: $s" ||
        fail "node $i did not join: $(cat "$base/start$i.err")"
    eval "s$i=\$s"
done
id2=$(sed -n 's/^node //p' "$s2/node.info")
id3=$(sed -n 's/^node //p' "$s3/node.info")

# A node without the certificate is refused.
err=$(RAYO_TEMP_DIR="$base/stranger" RAYO_CERT= ip netns exec "rc$me-n3" \
      "$rayo" start --address "$head_ip:6390" --node-ip "10.78.$net.3" \
      --cert "$base/other.cert" --num-cpus 1 2>&1 >/dev/null 9>&-)
rc=$?
[ $rc != 0 ] && printf '%s' "$err" | grep -q "cannot reach the head" &&
    ok "a node with another certificate is refused" ||
    fail "stranger: exit $rc: $err"
RAYO_TEMP_DIR="$base/stranger" "$rayo" stop --force >/dev/null 2>&1

# Every node sees all three.
for i in 1 2; do
    out=$(on $i "$rayo" status 2>&1)
    printf '%s' "$out" | grep -q "Nodes: 3 alive of 3" &&
        ok "rayo status on node $i sees 3 nodes" ||
        fail "rayo status on node $i: $out"
done
out=$(on 1 "$rayo" list nodes --format json 2>&1)
[ "$(printf '%s' "$out" | grep -o '"topology" : {' | wc -l)" = 3 ] &&
    ok "rayo list nodes has the topology of each" || fail "list nodes: $out"

# A task that needs the custom resource runs on node 2, from node 1.
out=$(on 1 env RAYO_ADDRESS=auto "$driver" resource special 2>&1)
[ "$out" = "node $id2" ] && ok "the custom-resource task ran on node 2" ||
    fail "custom-resource task: $out (node 2 is $id2)"

# A task that no node can run fails with an error that says so, once two
# newer views of the nodes have come (a node that has just joined may
# have what it needs): well within 5 s, not never.
t0=$(date +%s%N)
out=$(on 1 env RAYO_ADDRESS=auto "$driver" resource nowhere 2>&1)
rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ $rc != 0 ] && [ $ms -lt 5000 ] &&
    printf '%s' "$out" | grep -q "no node offers the resources" &&
    ok "a task no node can run fails in $ms ms: $out" ||
    fail "infeasible task: exit $rc after $ms ms: $out"

# Large results made on node 2 are read in node 1's store (pulled there).
out=$(on 1 env RAYO_ADDRESS=auto "$driver" fetch special 3000000 4 2>&1)
printf '%s' "$out" |
    grep -q "^fetched 4 x 3000000 from node $id2 zero-copy [0-9]* ms, left here 0 there 0$" &&
    ok "results of 3 MB made on node 2 are read in node 1's object store" ||
    fail "large results from node 2: $out"

# Output of a worker on node 2 reaches the driver on node 1.
out=$(on 1 env RAYO_ADDRESS=auto "$driver" say hello special 2>/dev/null)
printf '%s' "$out" | grep -q "^(pid=[0-9]*, node=$id2) out: hello$" &&
    ok "output of a worker on node 2 reaches the driver on node 1" ||
    fail "remote worker output: $out"

# A named actor made by a driver on node 1 lives on node 2; a driver on
# node 3 finds it by name and calls it.
on 1 env RAYO_ADDRESS=auto "$driver" serve counter special 8 \
    >"$base/serve.out" 2>&1 &
server=$!
for i in $(seq 1 100); do
    grep -q serving "$base/serve.out" && break
    sleep 0.1
done
out=$(on 3 env RAYO_ADDRESS=auto "$driver" call counter 2>&1)
[ "$out" = "node $id2 count 1 2" ] &&
    ok "a named actor on node 2 is called by name from node 3" ||
    fail "named actor across nodes: $out ($(cat "$base/serve.out"))"
# (The background job is a subshell: end the driver itself.)
kill "$(sed -n 's/^serving //p' "$base/serve.out")" 2>/dev/null
wait $server 2>/dev/null

# 12 tasks of 400 ms on a node of 2 CPUs spill to the others.
out=$(on 1 env RAYO_ADDRESS=auto "$driver" spread 12 400 2>&1)
d=$(printf '%s\n' "$out" | sed -n 's/^distinct //p')
[ "${d:-0}" -ge 2 ] && ok "work spilled over $d nodes" ||
    fail "no spill: $out"

# Placement groups across nodes.
out=$(on 1 env RAYO_ADDRESS=auto "$driver" pg STRICT_SPREAD 3 10000 2>&1)
created=$(printf '%s\n' "$out" | sed -n 's/^created //p')
ran=$(printf '%s\n' "$out" | sed -n 's/^ran //p')
nd=$(printf '%s\n' $created | sort -u | wc -l)
[ "$nd" = 3 ] && ok "STRICT_SPREAD of 3 bundles took 3 nodes ($created)" ||
    fail "STRICT_SPREAD 3: $out"
[ -n "$ran" ] && [ "$ran" = "$created" ] &&
    ok "each bundle's task ran on its node" || fail "bundle tasks: $out"
out=$(on 1 env RAYO_ADDRESS=auto "$driver" pg STRICT_SPREAD 4 2000 2>&1)
[ "$out" = "pending" ] && ok "STRICT_SPREAD of 4 bundles on 3 nodes stays pending" ||
    fail "STRICT_SPREAD 4: $out"
out=$(on 2 env RAYO_ADDRESS=auto "$driver" pg STRICT_PACK 2 10000 2>&1)
created=$(printf '%s\n' "$out" | sed -n 's/^created //p')
nd=$(printf '%s\n' $created | sort -u | wc -l)
[ -n "$created" ] && [ "$nd" = 1 ] &&
    ok "STRICT_PACK of 2 bundles took one node ($created)" ||
    fail "STRICT_PACK 2: $out"

out=$(on 3 env RAYO_ADDRESS=auto "$driver" pg SPREAD 3 10000 2>&1)
created=$(printf '%s\n' "$out" | sed -n 's/^created //p')
nd=$(printf '%s\n' $created | sort -u | wc -l)
[ "$nd" = 3 ] && ok "SPREAD of 3 bundles took 3 nodes ($created)" ||
    fail "SPREAD 3: $out"
out=$(on 3 env RAYO_ADDRESS=auto "$driver" pg PACK 2 10000 2>&1)
created=$(printf '%s\n' "$out" | sed -n 's/^created //p')
nd=$(printf '%s\n' $created | sort -u | wc -l)
[ -n "$created" ] && [ "$nd" = 1 ] &&
    ok "PACK of 2 bundles took one node ($created)" || fail "PACK 2: $out"

# A group that cannot be placed is reported as demand while it waits.
on 1 env RAYO_ADDRESS=auto "$driver" watch STRICT_SPREAD 4 4 \
    >"$base/watch4.out" 2>&1 &
w4=$!
seen=""
for i in $(seq 1 40); do
    out=$(on 2 "$rayo" status 2>&1)
    printf '%s' "$out" | grep -q "1 placement groups pending" && {
        seen=yes
        break
    }
    sleep 0.1
done
[ -n "$seen" ] && ok "rayo status reports the pending group" ||
    fail "pending group not reported: $out"
wait $w4
grep -q "^PENDING" "$base/watch4.out" && ! grep -q "^CREATED" "$base/watch4.out" &&
    ok "STRICT_SPREAD of 4 stayed PENDING" ||
    fail "STRICT_SPREAD 4 watch: $(cat "$base/watch4.out")"

# A group that one node cannot reserve now (its CPUs are busy with
# tasks) is rolled back everywhere: no bundle stays reserved on the other
# nodes while it waits, and it is created once the node is free.
on 1 env RAYO_ADDRESS=auto "$driver" busy special 2 8000 >"$base/busy.out" 2>&1 &
filler=$!
full=""
for i in $(seq 1 50); do
    out=$(on 1 "$rayo" list nodes 2>/dev/null)
    printf '%s\n' "$out" | grep -q "^[0-9]* *ALIVE *[0-9]* *2/2 " &&
        { full=yes; break; }
    sleep 0.1
done
[ -n "$full" ] && ok "node 2's CPUs are busy with tasks" ||
    fail "node 2 never busy: $out"
on 1 env RAYO_ADDRESS=auto "$driver" watch STRICT_SPREAD 3 14 \
    >"$base/watch3.out" 2>&1 &
w3=$!
sleep 1.5
# (A retried reservation may be in flight at one look: one of three looks
# must see none.)
half=""
for i in 1 2 3; do
    js=$(on 1 "$rayo" list nodes --format json 2>/dev/null)
    half=$(printf '%s' "$js" | grep -o '"available" : { "CPU" : [0-9.]*' |
           grep -vc '2.0$')
    [ "$half" = 1 ] && break
    sleep 0.2
done
[ "$half" = 1 ] && ok "no bundle stays reserved while the group waits" ||
    fail "half-reserved group (the busy driver $(kill -0 $filler 2>/dev/null && echo runs || echo "ended: $(cat "$base/busy.out")")): $js"
# (Only while the filler still runs: slow builds may have finished it.)
kill -0 $filler 2>/dev/null && grep -q "^CREATED" "$base/watch3.out" &&
    fail "the group was created while node 2 was busy: $(cat "$base/watch3.out")"
wait $filler
wait $w3
created=$(grep "^CREATED" "$base/watch3.out" | tail -n 1 | cut -d' ' -f2-)
nd=$(printf '%s\n' $created | sort -u | wc -l)
[ "$nd" = 3 ] && ok "it was created once node 2 was free ($created)" ||
    fail "group after node 2 freed: $(cat "$base/watch3.out")"

# A detached group outlives its driver; one that is not ends with it.
for g in "1 keepme" "0 tempone"; do
    set -- $g
    on 2 env RAYO_ADDRESS=auto "$driver" keep 1 "$1" "$2" \
        >"$base/keep-$2.out" 2>&1 &
    for i in $(seq 1 100); do
        grep -q created "$base/keep-$2.out" && break
        sleep 0.1
    done
    # (The background job is a subshell: kill the driver itself.)
    kill -9 "$(sed -n 's/^created by //p' "$base/keep-$2.out")"
    wait
done
for i in $(seq 1 60); do
    out=$(on 1 "$rayo" list placement-groups 2>&1)
    printf '%s\n' "$out" | grep -q " tempone *REMOVED" && break
    sleep 0.1
done
printf '%s\n' "$out" | grep -q " keepme *CREATED" &&
    printf '%s\n' "$out" | grep -q " tempone *REMOVED" &&
    ok "a detached group outlives its driver, another ends with it" || {
    fail "detached groups: $out"
    grep "gcs\]" "$base/n1/daemon.log" | tail -n 8
}
# (The detached one keeps its CPU: 5 of 6 are free from here on.)

# Resources all return.
for i in $(seq 1 50); do
    js=$(on 1 "$rayo" status --format json 2>/dev/null)
    free=$(printf '%s' "$js" | sed 's/"nodes" : .*//' | sed -n 's/.*"available" : { "CPU" : \([0-9.]*\).*/\1/p')
    [ "$free" = "5.0" ] && break
    sleep 0.1
done
[ "$free" = "5.0" ] && ok "all CPUs but the detached group's are free after the jobs" || {
    fail "CPUs free after the jobs: $free"
    on 1 "$rayo" status
    on 1 "$rayo" list placement-groups
    tail -n 30 "$base/n1/daemon.log" "$base/n2/daemon.log"
}

# kill -9 of node 3's daemon: the head sees it dead, and a group with a
# bundle there places that bundle again on the nodes left; its other
# bundles, and the actors in them, stay.
on 1 env RAYO_ADDRESS=auto "$driver" watch SPREAD 3 14 \
    >"$base/watch.out" 2>&1 &
watcher=$!
# (CREATED is printed once an actor runs in each bundle.)
for i in $(seq 1 300); do
    grep -q "^CREATED" "$base/watch.out" 2>/dev/null && break
    sleep 0.1
done
first=$(grep "^CREATED" "$base/watch.out" | head -n 1)
printf '%s' "$first" | grep -q " $id3" &&
    ok "the watched group has a bundle on node 3 ($first)" ||
    fail "watched group: $(cat "$base/watch.out")"
pid3=$(sed -n 's/^pid //p' "$s3/node.info")
kill -9 "$pid3"
dead=""
for i in $(seq 1 80); do
    out=$(on 1 "$rayo" status 2>&1)
    if printf '%s' "$out" | grep -q "Nodes: 2 alive of 3"; then
        dead=yes
        break
    fi
    sleep 0.1
done
[ -n "$dead" ] && ok "node 3 is seen dead after kill -9" ||
    fail "node 3 not seen dead: $out"
wait $watcher
again=$(grep "^CREATED" "$base/watch.out" | tail -n 1)
# (RESCHEDULING may pass between two looks of the watcher.)
if [ -n "$again" ] && [ "$again" != "$first" ] &&
    ! printf '%s' "$again" | grep -q " $id3"; then
    ok "the group was rescheduled off the dead node ($again)"
else
    fail "rescheduling: $(cat "$base/watch.out")"
fi
# Only the bundle that was on node 3 moved; the two others stayed on their
# nodes, and the actors in them are the same processes, still answering.
kept=$(grep -c "^kept [0-9]* [0-9]* same-actor$" "$base/watch.out")
moved=$(grep -c "^moved [0-9]* $id3 [0-9]*$" "$base/watch.out")
[ "$kept" = 2 ] && [ "$moved" = 1 ] &&
    ok "the surviving bundles kept their nodes and their actors" ||
    fail "surviving bundles: $(cat "$base/watch.out")"
# The cluster still runs work on the two nodes left.
out=$(on 1 env RAYO_ADDRESS=auto "$driver" spread 6 100 2>&1)
d=$(printf '%s\n' "$out" | sed -n 's/^distinct //p')
printf '%s\n' "$out" | grep -q "node $id3 " && fail "work ran on the dead node: $out"
[ -n "$d" ] && ok "work runs on the nodes left" || fail "after node loss: $out"

# nodes_back N asks node 1's `rayo status` up to N times, 20 ms apart,
# until two nodes of two are alive: back=yes then; the last answer in out.
nodes_back() {
    back=""
    for i in $(seq 1 "$1"); do
        out=$(on 1 "$rayo" status 2>&1)
        printf '%s' "$out" | grep -q "Nodes: 2 alive of 2" &&
            { back=yes; break; }
        sleep 0.02
    done
}

# busy_on_2 NAME runs a job of four half-CPU tasks of 1.5 s on node 2 in
# the background (its pid in busy), its output and "exit STATUS" in
# $base/NAME.out.
busy_on_2() {
    (on 2 env RAYO_ADDRESS=auto "$driver" busy special 4 1500 0.5 \
        >"$base/$1.out" 2>&1; echo "exit $?" >>"$base/$1.out") &
    busy=$!
}

# The head's GCS ended by an exit signal mid-job (as a fault tool would):
# its supervisor restarts it in place, in the same daemon, with the same
# pid.  Node 2 registers with it again when its heartbeats go unanswered,
# the job running on node 2 finishes, and the detached group is kept.
busy_on_2 busyg
busyg=$busy
sleep 1
pid1=$(sed -n 's/^pid //p' "$s1/node.info")
t0=$(date +%s%N)
kout=$(on 1 env RAYO_ADDRESS=auto "$driver" killsys gcs 2>&1)
printf '%s\n' "$kout" | head -n 1 | grep -qx "killed the daemon's gcs" ||
    fail "killsys gcs: $kout"
nodes_back 150
t1=$(date +%s%N)
[ -n "$back" ] && kill -0 "$pid1" 2>/dev/null &&
    [ "$(sed -n 's/^pid //p' "$s1/node.info")" = "$pid1" ] &&
    grep -q "was restarted in place by its supervisor (restart 1)" \
        "$s1/../daemon.log" &&
    ! grep -q "the GCS .* was lost" "$base/n2/daemon.log" &&
    ok "the head's GCS was restarted in place: $(printf '%s' "$kout" | sed -n 's/^the GCS //p'); node 2 registered again within $(( (t1 - t0) / 1000000 )) ms" ||
    { fail "GCS restart in place: $out"
      grep "gcs\]\|api\]" "$s1/../daemon.log" | tail -n 8; }
wait $busyg
grep -q "exit 0" "$base/busyg.out" &&
    ok "the job on node 2 finished through the GCS's restart" ||
    fail "job through the GCS restart: $(cat "$base/busyg.out")"
out=$(on 1 "$rayo" list placement-groups 2>&1)
printf '%s\n' "$out" | grep -q " keepme *CREATED" &&
    ok "the detached group keepme is still CREATED after the GCS restart" ||
    fail "keepme after the GCS restart: $out"

# Node 2's raylet ended by an exit signal mid-job: its supervisor
# restarts it in place, in the same daemon, and stops the node's workers.
# A driver on node 1 whose tasks run on node 2 (they need "special")
# finishes its job: the tasks are retried, its job is registered again at
# node 2's new raylet.  Node 2 stays in the cluster.
(on 1 env RAYO_ADDRESS=auto "$driver" busy special 4 1500 0.5 \
    >"$base/busyr.out" 2>&1; echo "exit $?" >>"$base/busyr.out") &
busyr=$!
sleep 1
pid2=$(sed -n 's/^pid //p' "$s2/node.info")
kout=$(on 2 env RAYO_ADDRESS=auto "$driver" killsys raylet 2>&1)
[ "$(printf '%s\n' "$kout" | head -n 1)" = "killed the daemon's raylet" ] || fail "killsys raylet: $kout"
wait $busyr
grep -q "exit 0" "$base/busyr.out" &&
    ok "a job of node 1 on node 2 finished through node 2's raylet restart" ||
    { fail "job through the raylet restart: $(cat "$base/busyr.out")"
      grep "raylet\]\|api\]" "$base/n2/daemon.log" | tail -n 8; }
nodes_back 150
[ -n "$back" ] && kill -0 "$pid2" 2>/dev/null &&
    [ "$(sed -n 's/^pid //p' "$s2/node.info")" = "$pid2" ] &&
    grep -q "the raylet (actor [0-9.]*) was restarted in place by its supervisor (restart 1)" \
        "$base/n2/daemon.log" &&
    ok "node 2's raylet was restarted in place: $(printf '%s' "$kout" | sed -n 's/^the raylet //p'); $(printf '%s' "$kout" | sed -n 's/^a task ran/a task of node 2 ran/p'); node 2 stays in the cluster" ||
    { fail "raylet restart in place: $out"
      grep "raylet\]\|api\]" "$base/n2/daemon.log" | tail -n 8; }

# The object managers, ended by exit signals, are restarted in place: node
# 2's, which holds the results made there for their owner on node 1 (the
# new one takes the holds over), and node 1's, which copies them to node 1
# (a driver that waits for copies asks the new one again).  Large results
# still reach node 1, and neither store keeps anything after.
kout=$(on 2 env RAYO_ADDRESS=auto "$driver" killsys objmgr 2>&1)
[ "$(printf '%s\n' "$kout" | head -n 1)" = "killed the daemon's objmgr" ] || fail "killsys objmgr: $kout"
out=$(on 1 env RAYO_ADDRESS=auto "$driver" fetch special 3000000 4 2>&1)
printf '%s' "$out" |
    grep -q "^fetched 4 x 3000000 from node $id2 zero-copy [0-9]* ms, left here 0 there 0$" &&
    ok "node 2's object manager was restarted in place: $(printf '%s' "$kout" | sed -n 's/^the object manager //p'); results of node 2 reach node 1" ||
    fail "large results after node 2's object manager restart: $out"
(on 1 env RAYO_ADDRESS=auto RAYO_LOG=warning "$driver" fetch special \
    20000000 8 >"$base/fetchk.out" 2>&1; echo "exit $?" >>"$base/fetchk.out") &
fetchk=$!
# (Killed once the first copy is under way: node 1's daemon logs large
# transfers as they start.)
pulls0=$(grep -c "pulling object" "$base/n1/daemon.log")
for i in $(seq 1 300); do
    [ "$(grep -c "pulling object" "$base/n1/daemon.log")" -gt "$pulls0" ] && break
    sleep 0.01
done
kout=$(on 1 env RAYO_ADDRESS=auto "$driver" killsys objmgr 2>&1)
[ "$(printf '%s\n' "$kout" | head -n 1)" = "killed the daemon's objmgr" ] || fail "killsys objmgr on 1: $kout"
wait $fetchk
grep -q "exit 0" "$base/fetchk.out" &&
    grep -q "asking again for [1-9][0-9]* object" "$base/fetchk.out" &&
    grep -q "^fetched 8 x 20000000 from node $id2 zero-copy [0-9]* ms, left here 0 there 0$" "$base/fetchk.out" &&
    grep -q "the object manager (actor [0-9.]*) was restarted in place by its supervisor (restart 1)" "$base/n1/daemon.log" &&
    ok "a fetch on node 1 finished through node 1's object manager restart ($(printf '%s' "$kout" | sed -n 's/^the object manager //p'); the driver: $(grep -o "asking again for [0-9]* objects*" "$base/fetchk.out" | head -n 1))" ||
    { fail "fetch through the object manager restart: $(cat "$base/fetchk.out")"
      grep "objmgr\]" "$base/n1/daemon.log" | tail -n 8; }

# kill -9 of the head mid-job, and a head started again at the same
# address: it takes over the GCS's tables, node 2 registers with it again,
# the job running on node 2 finishes, and a named actor there is still
# found by name.
# A detached group with a bundle on node 1 and one on node 2, whose driver
# is gone: the new head takes it over, its bundle on node 2 stays, and the
# one on the head (whose raylet died with it) is placed again.
on 1 env RAYO_ADDRESS=auto "$driver" keep 2 1 across STRICT_SPREAD 0.001 \
    >"$base/keep-across.out" 2>&1 &
for i in $(seq 1 100); do
    grep -q "^created by" "$base/keep-across.out" && break
    sleep 0.1
done
kill -9 "$(sed -n 's/^created by //p' "$base/keep-across.out")"
across=$(on 1 "$rayo" list placement-groups 2>&1 | grep " across ")
printf '%s' "$across" | grep -q "CREATED .*@$id2" ||
    fail "the group across two nodes: $across"
on 2 env RAYO_ADDRESS=auto "$driver" serve c2 special 30 \
    >"$base/serve2.out" 2>&1 &
for i in $(seq 1 100); do
    grep -q serving "$base/serve2.out" && break
    sleep 0.1
done
# (Half-CPU tasks: the groups above may hold all but 0.999 of node 2's.)
busy_on_2 busy2
busy2=$busy
sleep 1
pid1=$(sed -n 's/^pid //p' "$s1/node.info")
kill -9 "$pid1"
# Node 2 sees the GCS lost (at once: its process exited, and both run on
# this machine; else after its heartbeat window, about 2.5 s); the
# recovery is measured from the new head's start.
for i in $(seq 1 100); do
    grep -q "the GCS .* was lost" "$base/n2/daemon.log" && break
    sleep 0.05
done
t0=$(date +%s%N)
s1b=$(on 1 "$rayo" start --head --node-ip "$head_ip" --port 6390 \
      --num-cpus 2 --cert "$cert" 2>"$base/start1b.err") ||
    fail "the head did not start again: $(cat "$base/start1b.err")"
t1=$(date +%s%N)
nodes_back 100
t2=$(date +%s%N)
[ -n "$back" ] &&
    ok "the new head sees node 2 again: start $(( (t1 - t0) / 1000000 )) ms, then registered within $(( (t2 - t1) / 1000000 )) ms" ||
    { fail "node 2 did not come back: $out"
      grep -v "killed by\|job environment\|lost: " "$base/n2/daemon.log" |
          tail -n 6
      echo "-- head:"
      grep -v "job environment\|lost: it disc" "$s1b/../daemon.log" |
          tail -n 15; }
wait $busy2
grep -q "exit 0" "$base/busy2.out" &&
    ok "the job on node 2 finished through the head's restart" ||
    { fail "job through the head restart: $(cat "$base/busy2.out")"
      grep -v "job environment" "$base/n2/daemon.log" | tail -n 25; }
out=$(on 2 env RAYO_ADDRESS=auto "$driver" call c2 2>&1)
[ "$out" = "node $id2 count 1 2" ] &&
    ok "the named actor is found by name after the head's restart" ||
    { fail "named actor after the head restart: $out"
      cat "$base/serve2.out"; }
kill "$(sed -n 's/^serving //p' "$base/serve2.out")" 2>/dev/null
out=$(on 1 "$rayo" list jobs 2>&1)
printf '%s\n' "$out" | grep -q "keep 1 1 keepme" &&
    ok "the new head kept the job table" || fail "jobs after restart: $out"
# The groups: taken over, the bundle on node 2 kept (node 2 holds it
# still: its CPUs are not counted twice), the head's placed again.
for i in $(seq 1 100); do
    after=$(on 1 "$rayo" list placement-groups 2>&1 | grep " across ")
    printf '%s' "$after" | grep -q "CREATED .*@1 .*@$id2\|CREATED .*@$id2 .*@1" &&
        break
    sleep 0.1
done
printf '%s' "$after" | grep -q "CREATED .*@1 .*@$id2\|CREATED .*@$id2 .*@1" &&
    [ "$(printf '%s' "$after" | awk '{print $1}')" = \
      "$(printf '%s' "$across" | awk '{print $1}')" ] &&
    grep -q "took over [0-9]* placement groups" "$s1b/../daemon.log" &&
    grep -q "bundles its node no longer holds are placed again" \
        "$s1b/../daemon.log" &&
    ok "the new head took over the detached group (was: $across; now: $after)" ||
    { fail "group after the head restart: was '$across', now '$after'"
      grep "gcs\]" "$s1b/../daemon.log" | tail -n 8; }
out=$(on 1 "$rayo" list placement-groups 2>&1)
printf '%s\n' "$out" | grep -q " keepme *CREATED" &&
    ok "the detached group keepme is still CREATED" ||
    fail "keepme after the head restart: $out"
s1=$s1b

pids=""
for i in 3 2 1; do
    eval "s=\$s$i"
    pids="$pids $(sed -n 's/^pid //p' "$s/node.info" 2>/dev/null)"
    on $i "$rayo" stop >/dev/null 2>&1 || fail "rayo stop on node $i"
done
sleep 0.5
left=0
for p in $pids; do
    [ -e "/proc/$p/stat" ] && ! grep -q ') Z' "/proc/$p/stat" && left=$((left + 1))
done
workers=$(netns_drivers | wc -l)
[ "$left" = 0 ] && [ "$workers" = 0 ] &&
    ok "no daemon, driver or worker of the cluster is left" ||
    { fail "$left daemons and $workers workers of the cluster are left"
      for p in $(netns_drivers); do
          echo "  left: $p $(tr '\0' ' ' < "/proc/$p/cmdline") ppid $(sed -n 's/^PPid:\t//p' "/proc/$p/status")"
      done; }

echo "$fails failed"
[ $fails = 0 ]
