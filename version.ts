/**
 * The software version, as printed by `p2p --version` and sent in HELLO.
 *
 * @module
 */

/** The version of this build of p2p. */
export const VERSION = "0.1.0";
