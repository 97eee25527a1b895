// Bounds every peer must respect. A frame over its bound is refused before it
// is decoded, so a hostile peer cannot make the other side allocate much.

/** Largest frame an agent accepts from the master (a batch of collapsed changes). */
export const MAX_MASTER_FRAME = 16 * 1024 * 1024;
/** Largest frame the master accepts from an agent (acks and results are small). */
export const MAX_AGENT_FRAME = 256 * 1024;
/** Largest frame accepted before the peer has proven who it is. */
export const MAX_HANDSHAKE_FRAME = 4 * 1024;
/** An unauthenticated connection must finish the handshake within this time. */
export const HANDSHAKE_TIMEOUT_MS = 5_000;
/** Entries (files, dirs, trees) one batch may carry across all its paths. */
export const MAX_BATCH_ENTRIES = 50_000;
/** Heartbeat: a peer silent for this long is considered gone. */
export const HEARTBEAT_MS = 10_000;
/** Node and path names: they become rsync module and user names. */
export const NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;
