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
/**
 * What an authenticated agent may make the master check, in units: a frame
 * costs one per started `unitBytes`. A real agent's busiest pace, with the
 * default `delay` of 50 ms, is an ack and a result per batch (40 a second),
 * progress at most once a second per path, and a reject in place of an ack:
 * about 50 a second. 500 a second (after a burst of 5000) is ten times that;
 * each batch sent adds room for its answers besides, so a shorter `delay`
 * pays for itself. A flood is held to about 15% of a core (a small frame costs
 * about 0.3 ms to verify, decode and validate).
 */
export const AGENT_FRAME_RATE = { perSecond: 500, burst: 5_000, unitBytes: 4 * 1024, perBatch: 2 } as const;
/** Node and path names: they become rsync module and user names. */
export const NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;
