// rsync cannot listen on port 0 and report what it got, so tests ask the
// kernel for a free port first. Another process could take it before rsync
// binds; the kernel hands out ephemeral ports round-robin, which makes that rare.
import { createServer } from 'node:net';

export function findFreePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen({ host, port: 0, exclusive: true }, () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error(`no TCP port from listening on ${host}:0`));
        return;
      }
      srv.close(() => resolve(addr.port));
    });
  });
}
