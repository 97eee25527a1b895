// The agent's master.url. The port is always written out in the normalised
// form so every consumer agrees on it without knowing inosync's default.

import { bad, ok, type Checked } from './checked.js';

export const DEFAULT_MASTER_PORT = 7070;

export function parseMasterUrl(s: string): Checked<string> {
  const example = `write ws://HOST:PORT or wss://HOST:PORT, e.g. ws://origin.example:${DEFAULT_MASTER_PORT}`;
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return bad(`"${s}" is not a URL; ${example}`);
  }
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') {
    return bad(`"${s}" uses ${u.protocol.slice(0, -1)}://, but the master speaks websockets; ${example}`);
  }
  if (u.hostname === '') return bad(`"${s}" has no host; ${example}`);
  if (u.username !== '' || u.password !== '') {
    return bad('contains a user name or password; remove it: agents authenticate with their key');
  }
  if (u.hash !== '') return bad(`"${s}" has a #fragment, which websockets cannot carry; remove it`);

  // WHATWG URL hides a port equal to the scheme default (ws:80, wss:443), so
  // whether a port was written is read from the text itself.
  const authority = s.slice(s.indexOf('//') + 2).split(/[/?#]/, 1)[0] ?? '';
  const written = /(?:^|\]|[^:\]]):(\d+)$/.exec(authority)?.[1];
  let port: number;
  if (u.port !== '') port = Number(u.port);
  else if (written !== undefined) port = Number(written);
  else port = DEFAULT_MASTER_PORT;
  if (port === 0) return bad(`"${s}" has port 0; use the port the master listens on (default ${DEFAULT_MASTER_PORT})`);

  const pathPart = u.pathname === '/' ? '' : u.pathname;
  return ok(`${u.protocol}//${u.hostname}:${port}${pathPart}${u.search}`);
}
