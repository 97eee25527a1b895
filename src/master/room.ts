// Who may take a connection slot before authenticating, shared by the
// websocket listener (sockets before their HTTP upgrade) and the rsync front
// (connections before rsync says "@RSYNCD: OK"). Pure.

export interface Caps {
  /** slots in all */
  total: number;
  /** slots for one address; 0 refuses the address */
  perAddress: number;
}

export interface Held {
  readonly address: string;
  /** may be closed to make room (it has not proven anything yet) */
  readonly evictable: boolean;
}

export type Room<S> = { admit: true; evict: S | null } | { admit: false; reason: string };

/**
 * Whether a new connection from `address` gets a slot, and which held one
 * (`held` is oldest first) must go to make room. When full, the oldest
 * evictable connection goes (from this address, if that is what is full):
 * a real client proves itself within milliseconds, so what is evicted is
 * what sits idle to fill the slots. Refusing the newest instead would let a
 * flood keep every real client out for as long as it lasts.
 */
export function makeRoom<S extends Held>(held: Iterable<S>, address: string, caps: Caps): Room<S> {
  if (caps.perAddress <= 0) return { admit: false, reason: 'address not admitted' };
  let total = 0;
  let fromAddress = 0;
  let oldestHere: S | null = null;
  let oldestAny: S | null = null;
  for (const s of held) {
    total++;
    if (s.evictable) oldestAny ??= s;
    if (s.address !== address) continue;
    fromAddress++;
    if (s.evictable) oldestHere ??= s;
  }
  if (fromAddress >= caps.perAddress) {
    return oldestHere ? { admit: true, evict: oldestHere } : { admit: false, reason: `${fromAddress} connections from this address` };
  }
  if (total >= caps.total) {
    return oldestAny ? { admit: true, evict: oldestAny } : { admit: false, reason: `${total} connections in all` };
  }
  return { admit: true, evict: null };
}

/** "::ffff:10.0.0.1" -> "10.0.0.1": one listener on "::" and another on 0.0.0.0 see the same client alike. */
export function normalizeAddress(address: string): string {
  const a = address.toLowerCase();
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice('::ffff:'.length) : a;
}
