// The master's read-only HTTP endpoint: /status for `inosync status`, /metrics
// for Prometheus, /healthz for liveness probes. It serves no secrets but does
// reveal node addresses, hence the loopback default in the config.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import type { MasterStatus } from '../protocol/status.js';
import { renderMetrics } from './metrics.js';
import { hostAllowed, hostOf } from './host-check.js';

export interface StatusServerOptions {
  host: string;
  port: number;
  status: () => MasterStatus;
  /**
   * Host header names answered besides loopback, this machine's addresses
   * (on a wildcard listener), the listen host and this machine's hostname.
   */
  hostNames?: readonly string[];
  log?: { warn(msg: string, fields?: object): void };
}

export interface StatusServer {
  port: number;
  close(): Promise<void>;
}

// Answers are small and cheap, so anything slow is a stuck or hostile client.
const HEADERS_TIMEOUT_MS = 5_000;
const REQUEST_TIMEOUT_MS = 10_000;
const IDLE_TIMEOUT_MS = 30_000;
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
// Scrapers and operators need a handful; the cap stops a client from holding
// file descriptors the master needs for agents and rsync.
const MAX_CONNECTIONS = 64;
const MAX_HEADER_BYTES = 8 * 1024;

const METRICS_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

function send(res: ServerResponse, code: number, type: string, body: string, extra: Record<string, string> = {}): void {
  res.writeHead(code, {
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    ...extra,
  });
  res.end(body);
}

function localAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
}

function route(req: IncomingMessage, res: ServerResponse, opts: StatusServerOptions): void {
  // Before anything else, on every path: a name this listener does not answer
  // to is a page elsewhere reaching it through DNS rebinding (issue 10, item 9).
  const names = [hostname(), ...(opts.hostNames ?? [])];
  if (!hostAllowed(req.headers.host, { listenHost: opts.host, localAddresses: localAddresses(), names })) {
    const shown = JSON.stringify(hostOf(req.headers.host) ?? req.headers.host ?? '').slice(0, 80);
    return send(
      res,
      421,
      'text/plain; charset=utf-8',
      `misdirected request: this status listener does not answer to the host ${shown}; ` +
        'use a loopback address or localhost, an address of this machine, or its hostname\n',
    );
  }
  const status = opts.status;
  const path = (req.url ?? '/').split('?', 1)[0];
  const known = path === '/status' || path === '/metrics' || path === '/healthz';
  if (!known) return send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
  // HEAD is GET without a body (node drops it), which some probes rely on.
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    return send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n', { Allow: 'GET, HEAD' });
  }
  if (path === '/healthz') return send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
  if (path === '/metrics') return send(res, 200, METRICS_TYPE, renderMetrics(status()));
  send(res, 200, 'application/json; charset=utf-8', JSON.stringify(status()) + '\n');
}

export function startStatusServer(opts: StatusServerOptions): Promise<StatusServer> {
  const server = createServer({ maxHeaderSize: MAX_HEADER_BYTES }, (req, res) => {
    try {
      route(req, res, opts);
    } catch (err) {
      // A bug in status() or rendering must cost one answer, not the master.
      opts.log?.warn('status request failed', { path: req.url, error: (err as Error).message });
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    }
  });
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.maxConnections = MAX_CONNECTIONS;
  server.maxHeadersCount = 64;
  server.setTimeout(IDLE_TIMEOUT_MS, (socket) => socket.destroy());

  return new Promise((resolve, reject) => {
    const onListenError = (err: Error): void => reject(err);
    server.once('error', onListenError);
    server.listen({ host: opts.host, port: opts.port }, () => {
      server.off('error', onListenError);
      // After listening, an 'error' event without a listener would throw.
      server.on('error', (err) => opts.log?.warn('status server error', { error: err.message }));
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            // Keep-alive connections would otherwise hold close() open.
            server.closeAllConnections();
          }),
      });
    });
  });
}
