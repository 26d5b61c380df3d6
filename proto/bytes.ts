/**
 * Byte helpers shared by the codec, the peer and tests.
 *
 * @module
 */

/** The bytes of `parts` one after the other, in a new array (the part itself when alone). */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
