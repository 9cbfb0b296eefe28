#!/bin/bash
# Benchmark aid (not a test; root, util-linux's chrt and taskset, perl): while bench/peers.ts runs,
# sets the CPU scheduling or the CPUs of each `moat serve` it starts, thread by thread as they
# appear (every 0.3 s; each thread once, so the watching itself starts no process once every thread
# is seen). Threads inherit their creator's policy, nice, slice and CPUs, so each new thread is set
# as it comes. The AM and AN sessions in bench/RESULTS.md measured these against runs without.
#
#   bash bench/thread-policy.sh fifo   the main thread (the event loop) in SCHED_FIFO 10, the others ordinary
#   bash bench/thread-policy.sh idle   the others in SCHED_IDLE, the main thread ordinary
#   bash bench/thread-policy.sh nice   the others at nice 10, the main thread at 0
#   bash bench/thread-policy.sh batch  the others in SCHED_BATCH (a woken batch thread does not preempt the
#                                      running one; no privilege needed), the main thread ordinary
#   bash bench/thread-policy.sh slice  the main thread's time slice 0.1 ms (SCHED_OTHER's custom slice,
#                                      Linux 6.12 or later; no privilege needed for a process's own
#                                      threads), the others at the kernel's default
#   bash bench/thread-policy.sh slice-all  every thread's slice 0.1 ms (what a gateway started with
#                                      that slice would have: threads inherit it)
#   bash bench/thread-policy.sh split  the main thread on CPU 0 only, the others on CPU 1 only (taskset;
#                                      no privilege needed for a process's own threads)
#   bash bench/thread-policy.sh apart  the others on CPU 1 only, the main thread on any CPU
#
# Start it beside the bench (`bash bench/thread-policy.sh fifo & tsx bench/peers.ts 2000`), stop it after.
set -u
mode=${1:-}
case "$mode" in fifo | idle | nice | batch | slice | slice-all | split | apart) ;;
  *) echo "usage: $0 fifo|idle|nice|batch|slice|slice-all|split|apart" >&2; exit 2 ;;
esac
# sched_setattr(2) on one thread: SCHED_OTHER, nice 0, the slice in ns (0: the kernel's default). chrt
# before util-linux 2.41 sets a slice for SCHED_DEADLINE only; perl's syscall() reaches it directly
# (314: sched_setattr on x86_64).
slice() {
  perl -e 'my ($tid, $ns) = map { $_ + 0 } @ARGV; syscall(314, $tid, pack("LLQlLQQQ", 48, 0, 0, 0, 0, $ns, 0, 0), 0) == 0 or die "sched_setattr $tid: $!\n"' "$1" "$2"
}
declare -A seen
pid=""
while true; do
  if [ -z "$pid" ] || [ ! -d "/proc/$pid" ]; then
    pid=$(pgrep -f "^[^ ]*node [^ ]*.*gateway/cli.js serve" | head -1 || true)
    seen=()
  fi
  if [ -n "$pid" ]; then
    for task in /proc/"$pid"/task/*; do
      tid=${task##*/}
      [ -n "${seen[$tid]:-}" ] && continue
      seen[$tid]=1
      if [ "$tid" = "$pid" ]; then
        case "$mode" in
          fifo) chrt -f -p 10 "$tid" ;;
          slice | slice-all) slice "$tid" 100000 ;;
          split) taskset -p -c 0 "$tid" >/dev/null ;;
        esac
      else
        case "$mode" in
          fifo) chrt -o -p 0 "$tid" 2>/dev/null ;;
          idle) chrt -i -p 0 "$tid" 2>/dev/null ;;
          batch) chrt -b -p 0 "$tid" 2>/dev/null ;;
          nice) renice -n 10 -p "$tid" >/dev/null 2>&1 ;;
          slice) slice "$tid" 0 2>/dev/null ;;
          slice-all) slice "$tid" 100000 2>/dev/null ;;
          split | apart) taskset -p -c 1 "$tid" >/dev/null 2>&1 ;;
        esac
      fi
    done
  fi
  sleep 0.3
done
