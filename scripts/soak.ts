// The soak's command line (the run itself is harness/soak.ts).
//
// usage: npm run soak -- --minutes N [--seed S] [--agents N] [--reconcile S]
//        [--faults agent,master,rsyncd,link|none] [--tls] [--keep] [--trace]
// --tls serves wss:// and rsync over TLS (a certificate made with openssl).
// --keep leaves the cluster's directory (logs, trees) behind; --trace prints
// every churn operation.
// Exit 0: all trees identical. Exit 1: the differences are printed.
import { parseArgs } from 'node:util';
import { randomInt } from 'node:crypto';
import { FAULT_KINDS, Soak, type FaultKind } from '../harness/soak.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '5' },
    seed: { type: 'string' },
    agents: { type: 'string', default: '3' },
    // 0: no periodic reconciliation, so events and fault recovery alone must converge.
    reconcile: { type: 'string', default: '0' },
    faults: { type: 'string', default: FAULT_KINDS.join(',') },
    keep: { type: 'boolean', default: false },
    tls: { type: 'boolean', default: false },
    trace: { type: 'boolean', default: false },
  },
});

const minutes = Number(values.minutes);
const seed = values.seed === undefined ? randomInt(2 ** 31) : Number(values.seed);
const agents = Number(values.agents);
const reconcile = Number(values.reconcile);
const faults = values.faults === 'none' ? [] : values.faults.split(',');
const isFault = (k: string): k is FaultKind => (FAULT_KINDS as readonly string[]).includes(k);
if (!(minutes > 0) || !Number.isInteger(seed) || !(agents >= 1) || !(reconcile >= 0) || !faults.every(isFault)) {
  process.stderr.write('usage: soak --minutes N [--seed S] [--agents N] [--reconcile S] [--faults agent,master,rsyncd,link|none] [--tls] [--keep]\n');
  process.exit(2);
}

const soak = new Soak(
  { minutes, seed, agents, reconcile, faults: faults.filter(isFault), tls: values.tls, keep: values.keep, trace: values.trace },
  { line: (text) => process.stdout.write(`${text}\n`), write: (text) => process.stdout.write(text) },
);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => void soak.abort(sig).finally(() => process.exit(1)));
}
process.exit((await soak.run()) ? 0 : 1);
