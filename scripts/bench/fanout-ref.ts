// The reference for the master's per-agent cost: a server doing only what the
// protocol requires per recipient of a batch (send the one signed frame;
// receive, verify, decode and validate that agent's ack and result) over real
// websockets, with the real codec and envelope. Clients run in a child
// process; the server reports its own CPU per round.
//
// usage: node fanout-ref.js server AGENTS ROUNDS   -> prints {"cpuUsPerRound": ...}
//        node fanout-ref.js clients PORT AGENTS    (started by the server)
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import WebSocket, { WebSocketServer } from 'ws';
import { decode, encode } from '../../src/protocol/codec.js';
import { open, seal } from '../../src/protocol/envelope.js';
import { parseAgentMessage } from '../../src/protocol/messages.js';
import { signerFromSeed, verifierFor, type Verifier } from '../../src/protocol/sign.js';
import { sleep } from '../../harness/wait.js';

const seedOf = (who: string): Uint8Array => new Uint8Array(createHash('sha256').update(`fanout-ref ${who}`).digest());
const master = signerFromSeed(seedOf('master'));
const conn = new Uint8Array(16);

async function server(agents: number, rounds: number): Promise<void> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, clientTracking: false });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const port = (wss.address() as { port: number }).port;
  const peers: { ws: WebSocket; v: Verifier; name: string }[] = [];
  let waiting = 0;
  let roundDone: (() => void) | null = null;
  const connected = new Promise<void>((resolve) => {
    wss.on('connection', (ws) => {
      ws.once('message', (hello) => {
        const i = Number(hello.toString());
        const peer = { ws, v: verifierFor(signerFromSeed(seedOf(`agent${i}`)).publicKey), name: `mirror${i}` };
        peers.push(peer);
        ws.on('message', (data) => {
          const body = open(peer.v, 'agent->master', data as Uint8Array);
          if (body === null) throw new Error('bad signature');
          parseAgentMessage(decode(body));
          if (--waiting === 0) roundDone?.();
        });
        if (peers.length === agents) resolve();
      });
    });
  });
  const child = spawn(process.execPath, [new URL(import.meta.url).pathname, 'clients', String(port), String(agents)], { stdio: 'inherit' });
  await connected;
  const session = new Uint8Array(randomBytes(16));
  let seq = 0;
  const round = (): Promise<void> =>
    new Promise((resolve) => {
      waiting = 2 * agents;
      roundDone = resolve;
      seq++;
      const body = encode({
        t: 'batch',
        session,
        seq,
        to: peers.map((p) => p.name),
        time: Date.now(),
        changes: [{ name: 'www', full: false, files: [`change-${seq}.txt`], dirs: [], trees: [] }],
      });
      const frame = seal(master, 'master->agent', body);
      for (const p of peers) p.ws.send(frame, { binary: true });
    });
  for (let i = 0; i < 20; i++) await round();
  const c0 = process.cpuUsage();
  for (let i = 0; i < rounds; i++) {
    await round();
    // Batches are spaced in the real workload too: one round at a time, sockets idle between.
    await sleep(2);
  }
  const c1 = process.cpuUsage(c0);
  process.stdout.write(JSON.stringify({ agents, rounds, cpuUsPerRound: (c1.user + c1.system) / rounds }) + '\n');
  child.kill();
  wss.close();
  process.exit(0);
}

function clients(port: number, agents: number): void {
  const mv = verifierFor(master.publicKey);
  for (let i = 0; i < agents; i++) {
    const signer = signerFromSeed(seedOf(`agent${i}`));
    const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false });
    let n = 0;
    ws.on('open', () => ws.send(String(i)));
    ws.on('message', (data) => {
      const body = open(mv, 'master->agent', data as Uint8Array);
      if (body === null) throw new Error('bad master signature');
      const b = decode(body) as { seq: number };
      ws.send(seal(signer, 'agent->master', encode({ t: 'ack', seq: b.seq, conn, n: n++ })));
      const runs = [{ path: 'www', full: false, kind: 'ok', exit: 0, message: '', files: 1, bytes: 1024, deleted: 0, durationMs: 12 }];
      ws.send(seal(signer, 'agent->master', encode({ t: 'result', seq: b.seq, ok: true, runs, conn, n: n++ })));
    });
  }
}

const [role, a, b] = process.argv.slice(2);
if (role === 'server') await server(Number(a), Number(b));
else if (role === 'clients') clients(Number(a), Number(b));
else {
  process.stderr.write('usage: fanout-ref server AGENTS ROUNDS\n');
  process.exit(2);
}
