#!/bin/bash
# Benchmark aid (not a test; root, util-linux's chrt): while bench/peers.ts runs, sets the CPU
# scheduling of each `moat serve` it starts, thread by thread as they appear (every 0.3 s; each
# thread once, so the watching itself starts no process once every thread is seen). Threads inherit
# their creator's policy and nice, so each new thread is set as it comes. The AM session in
# bench/RESULTS.md measured these against runs without.
#
#   bash bench/thread-policy.sh fifo   the main thread (the event loop) in SCHED_FIFO 10, the others ordinary
#   bash bench/thread-policy.sh idle   the others in SCHED_IDLE, the main thread ordinary
#   bash bench/thread-policy.sh nice   the others at nice 10, the main thread at 0
#
# Start it beside the bench (`bash bench/thread-policy.sh fifo & tsx bench/peers.ts 2000`), stop it after.
set -u
mode=${1:-}
case "$mode" in fifo | idle | nice) ;; *) echo "usage: $0 fifo|idle|nice" >&2; exit 2 ;; esac
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
        [ "$mode" = fifo ] && chrt -f -p 10 "$tid"
      else
        case "$mode" in
          fifo) chrt -o -p 0 "$tid" 2>/dev/null ;;
          idle) chrt -i -p 0 "$tid" 2>/dev/null ;;
          nice) renice -n 10 -p "$tid" >/dev/null 2>&1 ;;
        esac
      fi
    done
  fi
  sleep 0.3
done
