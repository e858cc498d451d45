# The kernel-matrix checks, run by /init in the guest (busybox sh). Each step runs phasebox
# (or its oracle, strace) and sends back its exit status and outputs over the console:
#   PBVM-KERNEL RELEASE MACHINE
#   PBVM-STATUS STEP CODE
#   PBVM-FILE NAME LINE        (one per line of the file NAME)
#   PBVM-SENT NAME             (after the last line of NAME; absent when it was not written)
# The host (xtask/src/vm/checks.rs) judges them. Background programs write to files only, so
# nothing else lands in the middle of a line on the console.
O=/tmp/o
mkdir -p $O

send() {
    [ -f "$2" ] || return 0
    sed "s/^/PBVM-FILE $1 /" "$2"
    # A last line without its newline would run into the marker.
    [ -z "$(tail -c 1 "$2")" ] || echo
    echo "PBVM-SENT $1"
}

# step NAME CMD…: runs CMD and sends its status, standard output and standard error.
step() {
    name=$1
    shift
    "$@" >$O/$name.out 2>$O/$name.err </dev/null
    echo "PBVM-STATUS $name $?"
    send $name.out $O/$name.out
    send $name.err $O/$name.err
}

# until_ok SECONDS CMD…: polls CMD until it succeeds, for at most SECONDS.
until_ok() {
    n=$(($1 * 5))
    shift
    while ! "$@" >/dev/null 2>&1; do
        n=$((n - 1))
        [ $n -le 0 ] && return 1
        usleep 200000
    done
}

get() { wget -q -O /dev/null "http://127.0.0.1:8080$1"; }
scrape() { wget -q -O "$1" http://127.0.0.1:9464/metrics; }
children() { grep -l "^PPid:[[:space:]]*$1\$" /proc/[0-9]*/status 2>/dev/null | sort; }
tracked() { scrape $O/m.txt && grep -q "^phasebox_tracked_processes $1\$" $O/m.txt; }
# at_least PATTERN N: the samples of the metrics page matching PATTERN add up to N or more.
at_least() {
    scrape $O/m.txt &&
        awk -v pat="$1" -v n="$2" '$0 ~ pat { s += $NF } END { exit !(s >= n) }' $O/m.txt
}
workers_replaced() { [ -n "$(children $1)" ] && [ "$(children $1)" != "$2" ]; }

echo "PBVM-KERNEL $(uname -r) $(uname -m)"
# For the record (docs/kernels.md): the memory-lock limit, and whether the exit tracepoint
# has group_dead.
send limits /proc/self/limits
send exit-format /sys/kernel/tracing/events/sched/sched_process_exit/format

# The preflight: the release, BTF, tracefs and the ring buffer, then loading.
step preflight phasebox run -q -- /bin/true

# Exact counts against strace, on programs whose calls are the same on every run.
for p in threads pwd; do
    case $p in
    threads) cmd=/vm/bin/threads ;;
    pwd) cmd="/bin/busybox pwd" ;;
    esac
    # Its output goes to a file as under phasebox's step: programs ask a terminal or a device
    # more questions than a file (busybox's TCGETS on /dev/null).
    strace -f -qq -o $O/strace-$p.log $cmd >$O/strace-$p.out 2>&1 </dev/null
    send strace-$p.log $O/strace-$p.log
    step run-$p phasebox run -q --summary $O/summary-$p.json -- $cmd
    send summary-$p.json $O/summary-$p.json
done

# The agent on nginx from its start, through requests, 404s and a reload.
mkdir -p /tmp/nginx/logs /tmp/nginx/www
echo '<h1>phasebox</h1>' >/tmp/nginx/www/index.html
phasebox agent --exec-name nginx --phases nginx --errors --listen 127.0.0.1:9464 \
    --profile $O/nginx.json >$O/agent.out 2>$O/agent.err </dev/null &
agent=$!
until_ok 120 grep -q 'waiting for nginx' $O/agent.err
nginx -c /vm/nginx.conf -g 'daemon off;' >$O/nginx.log 2>&1 </dev/null &
master=$!
until_ok 60 get /
for i in 1 2 3 4 5; do get /; get /missing; done
before=$(children $master)
step reload nginx -c /vm/nginx.conf -s reload
until_ok 60 workers_replaced $master "$before"
for i in 1 2 3 4 5; do get /; get /missing; done
# The agent reads the kernel's counters now and then: wait until it has read the new worker's
# (21 connections, 10 of them to a missing file) and seen the old worker exit.
until_ok 60 at_least '^phasebox_syscalls_total[{].*role="worker".*syscall="accept4"' 21
until_ok 60 at_least '^phasebox_syscall_errors_total[{].*role="worker".*syscall="openat"' 10
until_ok 60 tracked 2
scrape $O/metrics.txt
send metrics.txt $O/metrics.txt
kill -TERM $agent
wait $agent
echo "PBVM-STATUS agent $?"
send agent.err $O/agent.err
send nginx.json $O/nginx.json
kill -QUIT $master
wait $master

# A learned profile, exported, applied, and validated: pwd passes, ls needs more.
phasebox run -q --profile $O/pwd.json -- /bin/busybox pwd >/dev/null 2>&1 </dev/null
step export phasebox export $O/pwd.json -o $O/pwd.oci.json
send pwd.oci.json $O/pwd.oci.json
step seccomp-pass phasebox run -q --seccomp $O/pwd.oci.json -- /bin/busybox pwd
step seccomp-fail phasebox run -q --seccomp $O/pwd.oci.json -- /bin/busybox ls /
step validate-pass phasebox validate --profile $O/pwd.json -- /bin/busybox pwd
step validate-fail phasebox validate --profile $O/pwd.json -- /bin/busybox ls /

# Phase-aware enforcement: socket, a startup-only call, is denied once the server serves.
ask() { echo "$2" | nc 127.0.0.1 "$1"; }
denied() { [ "$(ask 18091 socket)" = "socket: Operation not permitted" ]; }
phasebox run -q --phases generic --profile $O/server.json -- /vm/bin/phased_server 18090 \
    >/dev/null 2>$O/learn.err </dev/null &
learning=$!
until_ok 60 ask 18090 GET
for i in 1 2 3 4 5; do ask 18090 GET >/dev/null; done
ask 18090 quit >/dev/null
wait $learning
step per-phase phasebox export $O/server.json --per-phase $O/phases --add-basics
phasebox run -q --seccomp-phases $O/phases/manifest.json -- /vm/bin/phased_server 18091 \
    >/dev/null 2>$O/phase-aware.err </dev/null &
server=$!
until_ok 60 ask 18091 GET
until_ok 30 denied
echo "PBVM-STATUS socket-denied $?"
ask 18091 GET >$O/after.out
send after.out $O/after.out
ask 18091 quit >/dev/null
wait $server
echo "PBVM-STATUS phase-aware $?"
send phase-aware.err $O/phase-aware.err

# The trace file, read back.
phasebox run -q -o $O/pwd.trace --summary $O/summary-trace.json -- /bin/busybox pwd \
    >/dev/null 2>&1 </dev/null
send summary-trace.json $O/summary-trace.json
step trace-dump phasebox trace dump $O/pwd.trace
