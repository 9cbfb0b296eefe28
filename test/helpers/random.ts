/**
 * A deterministic pseudo-random sequence (mulberry32): generated test data is the same every
 * run, so a failure can be replayed from its seed.
 */
export function seededRandom(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Between one and `most` of `pieces`, picked with `next`, joined: data made of what matters to a scan. */
export function randomPieces(next: () => number, pieces: readonly string[], most = 120): string {
  const picked: string[] = [];
  const count = 1 + Math.floor(next() * most);
  for (let i = 0; i < count; i++) picked.push(pieces[Math.floor(next() * pieces.length)] as string);
  return picked.join("");
}

/**
 * `text`'s bytes cut into chunks as a socket or a stream might deliver them: all of one size
 * class (single bytes, a few bytes, about 16, up to a few hundred) or of every class mixed.
 */
export function cutRandomly(text: string, next: () => number): Buffer[] {
  const bytes = Buffer.from(text, "latin1");
  const sizes = [
    () => 1,
    () => 1 + Math.floor(next() * 6),
    () => 14 + Math.floor(next() * 8),
    () => 16 + Math.floor(next() * 400),
  ];
  const style = Math.floor(next() * (sizes.length + 1));
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length;) {
    const size = (sizes[style] ?? (sizes[Math.floor(next() * sizes.length)] as () => number))();
    chunks.push(bytes.subarray(at, at + size));
    at += size;
  }
  return chunks;
}
