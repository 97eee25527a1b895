// Runs inside a host's network namespace: accepts connections on a Unix
// socket (reachable from every namespace through the filesystem) and relays
// each to host:port as seen from inside. Usage: ns-forward SOCKET HOST PORT.
// Exits when its stdin closes, i.e. when the test process that started it dies.
import { connect, createServer } from 'node:net';
import { rmSync } from 'node:fs';

const [socketPath, host, port] = process.argv.slice(2) as [string, string, string];
rmSync(socketPath, { force: true });
const server = createServer((client) => {
  const upstream = connect(Number(port), host);
  const done = (): void => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', done).on('close', done);
  upstream.on('error', done).on('close', done);
  client.pipe(upstream).pipe(client);
});
server.listen(socketPath, () => process.stdout.write('ready\n'));
process.stdin.resume();
process.stdin.on('close', () => process.exit(0));
process.stdin.on('end', () => process.exit(0));
