# netns_lib.sh - sourced by the multi-node scripts in tests/net: builds a
# bridge namespace and N node namespaces (rcPID-n1 .. rcPID-nN) with
# addresses 10.78.NET.1 .. 10.78.NET.N, and defines
#   on N CMD...   run CMD in node N's namespace with its RAYO_TEMP_DIR
#   ok TEXT       report a passed check
#   fail TEXT     report a failed check (counted in $fails)
#   netns_drivers the pids of multinode_driver processes in these
#                 namespaces
# The caller sets nothing; it gets $rayo, $driver, $me, $net, $base and
# $fails.  An EXIT trap stops every node's daemon and removes the
# namespaces and $base.  Without root or iproute2, or when namespaces
# cannot be made, the script exits 77 (automake's SKIP) and says why.
# Call netns_up N after sourcing it.
set -u
rayo=${RAYO:-$(pwd)/tools/rayo}
driver=${DRIVER:-$(pwd)/tests/cluster/multinode_driver}
fails=0
if [ "$(id -u)" != 0 ]; then
    echo "SKIP: not root: network namespaces need CAP_SYS_ADMIN"
    exit 77
fi
if ! ip -V >/dev/null 2>&1; then
    echo "SKIP: no ip command (apt-get install iproute2)"
    exit 77
fi
# One such script at a time on this machine (make -j2 check would run two
# side by side): each starts several daemons, and the timing of what they
# check (spilling, transfers) suffers when another loads the CPUs too.
# (Daemons and drivers started through `on` do not keep the lock's fd.)
exec 9>/tmp/rayo-netns-tests.lock
flock -w 900 9 ||
    echo "note: another namespace test held the lock for 900 s; going on"
me=$$
net=$((10 + me % 200))
br="rc$me-br"
base=$(mktemp -d /tmp/rayo-cluster-netns.XXXXXX)
netns_nodes=0
# netns_drivers prints the pids of multinode_driver processes (drivers and
# their workers) in this script's node namespaces, and no one else's:
# several of these scripts may run at once.
netns_drivers() {
    i=1
    while [ $i -le $netns_nodes ]; do
        for p in $(ip netns pids "rc$me-n$i" 2>/dev/null); do
            grep -q 'multinode_drive[r]' "/proc/$p/cmdline" 2>/dev/null &&
                echo "$p"
        done
        i=$((i + 1))
    done
}
netns_cleanup() {
    # Drivers that wait to be killed, if a check failed before it did.
    for p in $(netns_drivers); do
        kill -9 "$p" 2>/dev/null
    done
    i=1
    while [ $i -le $netns_nodes ]; do
        RAYO_TEMP_DIR="$base/n$i" ip netns exec "rc$me-n$i" \
            "$rayo" stop --force >/dev/null 2>&1
        ip netns del "rc$me-n$i" >/dev/null 2>&1
        i=$((i + 1))
    done
    ip netns del "$br" >/dev/null 2>&1
    rm -rf "$base"
}
trap netns_cleanup EXIT

ok() { echo "ok: $*"; }
# fail TEXT: a failed check; each node daemon's last log lines say what
# it saw.
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
    for f in "$base"/n*/daemon.log; do
        [ -f "$f" ] || continue
        echo "  -- $f:"
        tail -n 12 "$f" | sed 's/^/    /'
    done
}
# on N CMD...: run CMD in node N's namespace with its temp dir.
on() {
    n=$1
    shift
    RAYO_TEMP_DIR="$base/n$n" ip netns exec "rc$me-n$n" "$@" 9>&-
}

# netns_up N: the bridge and N node namespaces, each with a veth on the
# bridge.
netns_up() {
    if ! ip netns add "$br" 2>/dev/null; then
        echo "SKIP: cannot create a network namespace (ip netns add failed: no CAP_SYS_ADMIN?)"
        exit 77
    fi
    ip -n "$br" link add br0 type bridge && ip -n "$br" link set br0 up ||
        exit 77
    i=1
    while [ $i -le "$1" ]; do
        ns="rc$me-n$i"
        netns_nodes=$i
        ip netns add "$ns" &&
            ip -n "$ns" link add eth0 type veth peer name p$i netns "$br" &&
            ip -n "$ns" addr add "10.78.$net.$i/24" dev eth0 &&
            ip -n "$ns" link set eth0 up &&
            ip -n "$ns" link set lo up &&
            ip -n "$br" link set p$i master br0 &&
            ip -n "$br" link set p$i up || {
            echo "SKIP: could not build the veth/bridge network"
            exit 77
        }
        i=$((i + 1))
    done
}
