/**
 * What one event-loop turn sends to another thread, sent as one message at the turn's end
 * (setImmediate). Each postMessage wakes the other thread, and on a VM a wake-up costs tens of
 * microseconds on both sides: a message's scan, its chunks and its end (and every other
 * session's of the same turn) cross to the verdict's thread once (thread-scanner.ts), and its
 * verdicts come back the same way (scan-thread.ts). The receiver gets an array, in order.
 */
export function perTurn<T>(
  send: (items: T[], transfer: ArrayBuffer[]) => void,
): (item: T, transfer?: readonly ArrayBuffer[]) => void {
  let batch: { items: T[]; transfer: ArrayBuffer[] } | undefined;
  return (item, transfer) => {
    if (!batch) {
      const current = { items: [] as T[], transfer: [] as ArrayBuffer[] };
      batch = current;
      setImmediate(() => {
        batch = undefined;
        send(current.items, current.transfer);
      });
    }
    batch.items.push(item);
    if (transfer) batch.transfer.push(...transfer);
  };
}
