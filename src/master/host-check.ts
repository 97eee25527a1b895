// Which Host headers the status listener answers. A browser on the origin
// that loads an attacker's page can be made to send requests to a loopback
// port under the attacker's own name (DNS rebinding); such a request carries
// that name in Host. Answering only names that cannot be rebound (loopback
// names, this host's addresses, its own hostname, names the operator lists)
// keeps the status page out of reach of any web page. Pure: the caller gives
// the machine's names and addresses.
import { isIP } from 'node:net';

export interface HostRules {
  /** the status listener's configured host (a name or an address) */
  listenHost: string;
  /** this machine's addresses (all interfaces), for a wildcard listener */
  localAddresses: readonly string[];
  /** further names the operator allows (lowercase or not) */
  names: readonly string[];
}

const WILDCARDS = new Set(['0.0.0.0', '::', '']);

/** The host part of a Host header, lowercased, without port, brackets or a final dot; null when malformed. */
export function hostOf(header: string | undefined): string | null {
  if (header === undefined) return null;
  const h = header.trim().toLowerCase();
  if (h === '' || /[\s/@\\?#]/.test(h)) return null;
  let host: string;
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    if (end < 0) return null;
    host = h.slice(1, end);
    const rest = h.slice(end + 1);
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return null;
    if (isIP(host) !== 6) return null;
    return host;
  }
  const colon = h.indexOf(':');
  if (colon >= 0) {
    if (!/^\d{1,5}$/.test(h.slice(colon + 1))) return null;
    host = h.slice(0, colon);
  } else host = h;
  host = host.endsWith('.') ? host.slice(0, -1) : host;
  return host === '' ? null : host;
}

function loopbackAddress(ip: string): boolean {
  if (isIP(ip) === 4) return ip.startsWith('127.');
  const v6 = ip.toLowerCase();
  return v6 === '::1' || /^::ffff:127\./.test(v6);
}

const canonical = (a: string): string => a.toLowerCase().replace(/%.*$/, '');

/** Whether a request with this Host header may be answered. */
export function hostAllowed(header: string | undefined, rules: HostRules): boolean {
  const host = hostOf(header);
  if (host === null) return false;
  const listen = canonical(rules.listenHost.replace(/^\[|\]$/g, ''));
  if (isIP(host) !== 0) {
    // An address cannot be rebound: it is allowed if this listener can be reached on it.
    if (loopbackAddress(host)) return true;
    if (host === listen) return true;
    return WILDCARDS.has(listen) && rules.localAddresses.some((a) => canonical(a) === host);
  }
  if (host === 'localhost') return true;
  if (isIP(listen) === 0 && host === listen) return true;
  return rules.names.some((n) => n.toLowerCase().replace(/\.$/, '') === host);
}
