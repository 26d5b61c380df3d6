/**
 * Chunk-position bitfields: bit i set means chunk i is held. Bits are MSB-first
 * within each byte, as in BitTorrent, and spare bits in the last byte are zero.
 *
 * @module
 */

/** Bytes needed for a bitfield of `count` chunk positions. */
export function bitfieldLength(count: number): number {
  return Math.ceil(count / 8);
}

/** A bitfield of `count` positions with the given indices set; throws `RangeError` on a bad index. */
export function bitfieldFromIndices(count: number, indices: Iterable<number>): Uint8Array {
  const bits = new Uint8Array(bitfieldLength(count));
  for (const i of indices) {
    if (!Number.isInteger(i) || i < 0 || i >= count) {
      throw new RangeError(`Chunk index '${i}' is out of range 0..${count - 1}`);
    }
    setBit(bits, i, true);
  }
  return bits;
}

/** Sets position `i` (`on`) or clears it. */
export function setBit(bits: Uint8Array, i: number, on: boolean): void {
  if (on) bits[i >> 3] |= 0x80 >> (i & 7);
  else bits[i >> 3] &= ~(0x80 >> (i & 7));
}

/** Whether position `i` is set. */
export function hasBit(bits: Uint8Array, i: number): boolean {
  return ((bits[i >> 3] ?? 0) & (0x80 >> (i & 7))) !== 0;
}

/** The set positions, in ascending order. */
export function bitfieldIndices(bits: Uint8Array, count: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < count; i++) if (hasBit(bits, i)) out.push(i);
  return out;
}

/** How many positions are set. */
export function bitfieldCount(bits: Uint8Array, count: number): number {
  let n = 0;
  for (let i = 0; i < count; i++) if (hasBit(bits, i)) n++;
  return n;
}

/**
 * Checks that `bits` is a well-formed bitfield for `count` positions: right length and
 * no spare bit set. Throws `RangeError` naming what is wrong.
 */
export function assertBitfield(bits: Uint8Array, count: number): void {
  const want = bitfieldLength(count);
  if (bits.length !== want) {
    throw new RangeError(
      `Bitfield has '${bits.length}' bytes but '${count}' chunks need '${want}'`,
    );
  }
  const spare = want * 8 - count;
  if (spare > 0 && (bits[want - 1] & ((1 << spare) - 1)) !== 0) {
    throw new RangeError(`Bitfield sets positions past the last chunk '${count - 1}'`);
  }
}

/** Compact ranges like `0-15,17,20-21` for people; `-` when none is set. */
export function formatRanges(bits: Uint8Array, count: number): string {
  const parts: string[] = [];
  let start = -1;
  for (let i = 0; i <= count; i++) {
    const set = i < count && hasBit(bits, i);
    if (set && start < 0) start = i;
    if (!set && start >= 0) {
      parts.push(start === i - 1 ? `${start}` : `${start}-${i - 1}`);
      start = -1;
    }
  }
  return parts.length ? parts.join(",") : "-";
}
