// "host:port" listener addresses; IPv6 hosts go in brackets so the port's
// colon stays unambiguous. The brackets are dropped from `host` because
// net.Server.listen wants the bare address.

import { isIPv4, isIPv6 } from 'node:net';
import type { HostPort } from './types.js';
import { bad, ok, type Checked } from './checked.js';

const HOST_LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

export function parseHostPort(s: string): Checked<HostPort> {
  const example = 'write HOST:PORT, e.g. 0.0.0.0:7070, or "[::1]:7070" (quoted) for IPv6';
  let host: string;
  let portText: string;
  if (/^\[[^\]]*\]$/.test(s)) return bad(`"${s}" has no port; ${example}`);
  const bracketed = /^\[([^\]]*)\]:(.*)$/.exec(s);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2]!;
    if (!isIPv6(host)) return bad(`"${host}" in brackets is not an IPv6 address; ${example}`);
  } else {
    const colon = s.lastIndexOf(':');
    if (colon < 0) return bad(`"${s}" has no port; ${example}`);
    host = s.slice(0, colon);
    portText = s.slice(colon + 1);
    if (host.includes(':')) return bad(`"${s}": an IPv6 address must be in brackets; ${example}`);
    const hostProblem = hostnameProblem(host);
    if (hostProblem) return bad(`"${s}": ${hostProblem}; ${example}`);
  }
  if (!/^[0-9]{1,5}$/.test(portText)) return bad(`"${s}" has no valid port number after the last ":"; ${example}`);
  const port = Number(portText);
  if (port < 1 || port > 65535) return bad(`port ${port} is out of range; use a port from 1 to 65535`);
  return ok({ host, port });
}

/** Why `host` is neither an IPv4 address nor a DNS name, or null. */
export function hostnameProblem(host: string): string | null {
  if (host === '') return 'the host is empty (use 0.0.0.0 for all interfaces)';
  if (/^[0-9.]+$/.test(host)) return isIPv4(host) ? null : `"${host}" is not a valid IPv4 address`;
  if (host.length > 253) return 'the host name is longer than 253 characters';
  const labels = host.endsWith('.') ? host.slice(0, -1).split('.') : host.split('.');
  if (!labels.every((l) => HOST_LABEL.test(l))) return `"${host}" is not a valid host name`;
  return null;
}
