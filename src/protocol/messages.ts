// Every message either side sends, described once. `parse*` turns a decoded
// but untrusted value into these types or says precisely what is wrong.
import { z } from 'zod';
import { MAX_BATCH_ENTRIES, NAME_RE } from './limits.js';
import { PATH_MAX, relPathProblem } from './relpath.js';
import type { PathChanges } from './changes.js';

const bin = (len: number) =>
  z.custom<Uint8Array>((v) => v instanceof Uint8Array && v.length === len, { message: `expected ${len} bytes` });
// '.' and '..' fit the alphabet but are path components: a path named so would
// point its rsync module and its files elsewhere.
const name = z.string().regex(NAME_RE, 'not a valid name').refine((s) => s !== '.' && s !== '..', 'not a valid name ("." and ".." are path components)');
const seq = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const shortText = (max: number) => z.string().max(max);
const relPath = z.string().superRefine((p, ctx) => {
  const problem = relPathProblem(p);
  if (problem !== null) ctx.addIssue({ code: 'custom', message: `unsafe path ${JSON.stringify(p.slice(0, 200))}: ${problem}` });
});

export const SESSION_BYTES = 16;
export const NONCE_BYTES = 32;
export const CONN_BYTES = 16;

const Hello = z.strictObject({
  t: z.literal('hello'),
  v: z.number().int(),
  name,
  nonce: bin(NONCE_BYTES),
  version: shortText(64),
});

const Challenge = z.strictObject({
  t: z.literal('challenge'),
  v: z.number().int(),
  session: bin(SESSION_BYTES),
  nonce: bin(NONCE_BYTES),
  echo: bin(NONCE_BYTES),
  name,
});

const Applied = z.strictObject({ session: bin(SESSION_BYTES), seq });

const Auth = z.strictObject({
  t: z.literal('auth'),
  conn: bin(CONN_BYTES),
  n: seq,
  boxKey: bin(32),
  applied: Applied.nullable(),
  version: shortText(64),
});

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Why an exclude pattern cannot go to rsync at all, or null: what the agent's
 * rsync argument builder would throw on, refused here at the edge instead (a
 * hostile master once crashed the agent with a NUL). The agent then vets the
 * rest with the matcher's own rules (rsync/excludes.ts).
 */
export function excludeWireProblem(p: string): string | null {
  if (p === '') return 'empty pattern';
  if (/[\0\n\r]/.test(p)) return 'contains a NUL, newline or carriage return';
  if (LONE_SURROGATE.test(p)) return 'not valid Unicode (lone surrogate)';
  if (Buffer.byteLength(p) > PATH_MAX) return `longer than ${PATH_MAX} bytes`;
  return null;
}

const excludePattern = z.string().superRefine((p, ctx) => {
  const problem = excludeWireProblem(p);
  if (problem !== null) ctx.addIssue({ code: 'custom', message: `bad exclude pattern ${JSON.stringify(p.slice(0, 200))}: ${problem}` });
});

const PathInfo = z.strictObject({ name, exclude: z.array(excludePattern).max(1000) });

const Welcome = z.strictObject({
  t: z.literal('welcome'),
  conn: bin(CONN_BYTES),
  n: seq,
  node: name,
  session: bin(SESSION_BYTES),
  boxKey: bin(32),
  creds: z.strictObject({ nonce: bin(24), box: z.custom<Uint8Array>((v) => v instanceof Uint8Array && v.length <= 512) }),
  rsyncPort: z.number().int().min(1).max(65535),
  /** the rsync port speaks TLS (with the websocket's certificate) */
  rsyncTls: z.boolean(),
  paths: z
    .array(PathInfo)
    .max(1000)
    .refine((ps) => new Set(ps.map((p) => p.name)).size === ps.length, 'a path name appears twice'),
});

const Changes = z.strictObject({
  name,
  full: z.boolean(),
  files: z.array(relPath),
  dirs: z.array(relPath),
  trees: z.array(relPath),
});

const Batch = z
  .strictObject({
    t: z.literal('batch'),
    session: bin(SESSION_BYTES),
    seq: seq.min(1),
    to: z.array(name).min(1).max(100_000),
    time: z.number().min(0),
    changes: z.array(Changes).max(1000),
  })
  .superRefine((b, ctx) => {
    let entries = 0;
    for (const c of b.changes) entries += c.files.length + c.dirs.length + c.trees.length;
    if (entries > MAX_BATCH_ENTRIES) ctx.addIssue({ code: 'custom', message: `batch has ${entries} entries, limit ${MAX_BATCH_ENTRIES}` });
    if (new Set(b.changes.map((c) => c.name)).size !== b.changes.length) ctx.addIssue({ code: 'custom', message: 'a path appears twice in one batch' });
  });

const Ack = z.strictObject({ t: z.literal('ack'), conn: bin(CONN_BYTES), n: seq, seq });

export const RUN_KINDS = ['ok', 'partial-ok', 'retry', 'fatal', 'refused', 'dry-run'] as const;

const RunReport = z.strictObject({
  path: name,
  full: z.boolean(),
  kind: z.enum(RUN_KINDS),
  exit: z.number().int().nullable(),
  message: shortText(4096),
  files: count,
  bytes: count,
  deleted: count,
  durationMs: z.number().min(0),
});

const Result = z.strictObject({
  t: z.literal('result'),
  conn: bin(CONN_BYTES),
  n: seq,
  seq,
  ok: z.boolean(),
  runs: z.array(RunReport).max(1000),
});

const Progress = z.strictObject({
  t: z.literal('progress'),
  conn: bin(CONN_BYTES),
  n: seq,
  path: name,
  percent: z.number().min(0).max(100),
});

/** The agent saw something wrong with what the master sent (or what claimed to be from it). */
const Reject = z.strictObject({
  t: z.literal('reject'),
  conn: bin(CONN_BYTES),
  n: seq,
  seq: seq.nullable(),
  reason: shortText(1024),
});

export type Hello = z.infer<typeof Hello>;
export type Challenge = z.infer<typeof Challenge>;
export type Auth = z.infer<typeof Auth>;
export type Welcome = z.infer<typeof Welcome>;
export type Batch = z.infer<typeof Batch> & { changes: PathChanges[] };
export type Ack = z.infer<typeof Ack>;
export type RunReport = z.infer<typeof RunReport>;
export type Result = z.infer<typeof Result>;
export type Progress = z.infer<typeof Progress>;
export type Reject = z.infer<typeof Reject>;
export type Applied = z.infer<typeof Applied>;

export type AgentMessage = Ack | Result | Progress | Reject;
export type MasterMessage = Batch;

export class MessageError extends Error {}

function parseWith<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const where = issue && issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
  throw new MessageError(`invalid ${what}${where}: ${issue?.message ?? 'malformed'}`);
}

export const parseHello = (v: unknown): Hello => parseWith(Hello, v, 'hello');
export const parseChallenge = (v: unknown): Challenge => parseWith(Challenge, v, 'challenge');
export const parseAuth = (v: unknown): Auth => parseWith(Auth, v, 'auth');
export const parseWelcome = (v: unknown): Welcome => parseWith(Welcome, v, 'welcome');
export const parseBatch = (v: unknown): Batch => parseWith(Batch, v, 'batch') as Batch;

const AgentMessageSchema = z.discriminatedUnion('t', [Ack, Result, Progress, Reject]);
export const parseAgentMessage = (v: unknown): AgentMessage => parseWith(AgentMessageSchema, v, 'agent message');
