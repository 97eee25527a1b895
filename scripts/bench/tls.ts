// tls: what wrapping both ports in TLS costs. Two clusters of one agent each,
// one plain (ws://, rsync's own protocol), one with `tls` (wss://, rsync
// through the master's TLS front and openssl s_client on the agent). The
// plain cluster is the baseline; samples alternate between the two so that
// machine noise hits both alike.
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, ratioRow, round, sameFile, sameMtime, scratchDir, startInfo, summary, until, withCluster, type Ctx, type WorkloadResult } from './lib.js';
import { sleep } from '../../harness/wait.js';
import { selfSignedCert } from '../../harness/certs.js';

/** ms from the write to the file being identical on the cluster's one mirror. */
async function propagate(c: Cluster, name: string, content: Buffer): Promise<number> {
  const origin = join(c.origin(), name);
  const mirror = join(c.mirror(0), name);
  const t0 = performance.now();
  writeFileSync(origin, content);
  const t1 = await until(() => sameFile(origin, mirror, content) && sameMtime(c.origin(), c.mirror(0)), [c.mirror(0)], 5, 120_000);
  return t1 - t0;
}

export async function tls(ctx: Ctx): Promise<WorkloadResult> {
  const samples = ctx.quick ? 8 : 30;
  const bigMiB = ctx.quick ? 16 : 128;
  const bigReps = 3;
  const certs = scratchDir('tls');
  const pair = selfSignedCert(certs, 'inosync-bench', 'IP:127.0.0.1');
  const plain = await new Cluster({ agents: 1 }).setup();
  try {
    return await withCluster(plain, async () => {
      const wrapped: Cluster = new Cluster({
        agents: 1,
        master: { tls: pair },
        agent: () => ({ master: { url: `wss://127.0.0.1:${wrapped.masterPort}`, key: wrapped.masterKeyPub, ca: pair.cert } }),
      });
      await wrapped.setup();
      return withCluster(wrapped, async () => {
        await startInfo(plain);
        await startInfo(wrapped);
        const small = { plain: [] as number[], tls: [] as number[] };
        for (let i = 0; i < samples; i++) {
          const content = randomBytes(1024);
          small.plain.push(await propagate(plain, `s${i}.bin`, content));
          await sleep(30);
          small.tls.push(await propagate(wrapped, `s${i}.bin`, content));
          await sleep(30);
        }
        ctx.log(`tls: ${samples} small files each`);
        const big = { plain: [] as number[], tls: [] as number[] };
        for (let i = 0; i < bigReps; i++) {
          const content = randomBytes(bigMiB * 2 ** 20);
          big.plain.push(await propagate(plain, `b${i}.bin`, content));
          big.tls.push(await propagate(wrapped, `b${i}.bin`, content));
          rmSync(join(plain.origin(), `b${i}.bin`));
          rmSync(join(wrapped.origin(), `b${i}.bin`));
        }
        const sp = summary(small.plain);
        const st = summary(small.tls);
        const bp = summary(big.plain);
        const bt = summary(big.tls);
        const mbps = (ms: number): number => round((bigMiB * 2 ** 20) / 1e6 / (ms / 1000));
        return {
          name: 'tls',
          rows: [
            ratioRow('tls', `1 KiB file, p50 of ${samples}, wss:// + rsync over TLS`, st.p50, 'ms', sp.p50, 'the same over ws:// and plain rsync'),
            ratioRow('tls', `${bigMiB} MiB file, median of ${bigReps}, over TLS`, bt.p50, 'ms', bp.p50, 'the same in plain rsync'),
          ],
          notes: [
            `throughput of the big file: ${mbps(bt.p50)} MB/s over TLS (through the master's TLS front and the agent's tunnel), ${mbps(bp.p50)} MB/s plain, loopback`,
            'each TLS pull pays a (resumed) TLS handshake, and the bytes cross the master and agent processes, encrypted once',
          ],
          data: { small, big, summary: { smallPlain: sp, smallTls: st, bigPlain: bp, bigTls: bt } },
        };
      });
    });
  } finally {
    rmSync(certs, { recursive: true, force: true });
  }
}
