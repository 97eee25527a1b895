// The agent's config: who it is, which master to trust, where each path lands.

import { isIPv6 } from 'node:net';
import * as z from 'zod';
import { duplicateProblems, nestedDirProblems } from './cross-checks.js';
import type { ConfigProblem } from './errors.js';
import {
  binary, checkedString, filePath, MAX_TIMER_SECONDS, name, optional, publicKey, vettedString, wholeNumber,
} from './fields.js';
import { binaryProblem, directoryProblem, regularFileProblem, secretKeyFileProblem, stateDirProblem } from './fs-checks.js';
import { isPathWithin } from './fs-path.js';
import { hostnameProblem } from './hostport.js';
import { issuesToProblems } from './issues.js';
import type { KeyPath } from './keypath.js';
import { type ParseOptions, type ParseResult, finish, stripUndefined } from './parse-result.js';
import { rsyncExtraProblem } from './rsync-extra.js';
import { readConfigSource, type ConfigSource } from './source.js';
import type { AgentConfig } from './types.js';
import { parseMasterUrl } from './ws-url.js';

function rsyncHostProblem(s: string): string | null {
  if (isIPv6(s.replace(/^\[(.*)\]$/, '$1'))) return null;
  const p = hostnameProblem(s);
  return p === null ? null : `${p}; write the master's host name or IP address without port or scheme`;
}

function agentSchema(dir: string) {
  return z.strictObject({
    name: name().describe('this mirror\'s name, as listed in the master\'s nodes'),
    key: filePath(dir).describe('the path of this agent\'s secret key file'),
    master: z.strictObject({
      url: checkedString(parseMasterUrl).describe('e.g. ws://origin.example:7070'),
      key: publicKey().describe('the master\'s base64 public key'),
      ca: optional(filePath(dir).optional()),
      rsyncHost: optional(vettedString(rsyncHostProblem).optional()),
      allowPlainRsync: optional(z.boolean().optional()),
    }).describe('a mapping with the master\'s url and key'),
    state: optional(filePath(dir).prefault('/var/lib/inosync')),
    rsync: optional(z.strictObject({
      binary: optional(binary(dir).prefault('rsync')),
      bwlimit: optional(wholeNumber(0).default(0)),
      extra: optional(z.array(vettedString(rsyncExtraProblem)).default(() => [])),
      timeout: optional(wholeNumber(0, MAX_TIMER_SECONDS).default(60)),
    }).prefault({})),
    paths: z.array(z.strictObject({
      name: name().describe('the name of the path in the master\'s config'),
      target: filePath(dir).describe('the local directory to mirror into, e.g. /srv/www'),
      maxDelete: optional(wholeNumber(0).default(0)),
      devices: optional(z.boolean().default(false)),
      specials: optional(z.boolean().default(false)),
      setuid: optional(z.boolean().default(false)),
    })).min(1).describe('a list of the paths to mirror, each with name and target'),
  });
}

export function parseAgentConfig(file: string, opts: ParseOptions = {}): ParseResult<AgentConfig> {
  const { source, problems } = readConfigSource(file);
  if (!source) return finish<AgentConfig>(null, problems);
  return parseAgentSource(source, opts, problems);
}

export function parseAgentSource(src: ConfigSource, opts: ParseOptions = {}, problems: ConfigProblem[] = []): ParseResult<AgentConfig> {
  const schema = agentSchema(src.dir);
  const parsed = schema.safeParse(src.data);
  if (!parsed.success) problems.push(...issuesToProblems(parsed.error.issues, src, schema));
  problems.push(
    ...duplicateProblems(src, 'paths', 'name', 'path name'),
    // rsync --delete into the outer target would remove what the inner sync wrote, and back.
    ...nestedDirProblems(src, 'paths', 'target', 'the two syncs would delete each other\'s files; give each path its own directory'),
  );
  if (!parsed.success) return finish<AgentConfig>(null, problems);

  const config: AgentConfig = stripUndefined({ file: src.file, ...parsed.data });
  problems.push(...stateInTargets(src, config), ...optInWarnings(src, config), ...fsProblems(src, config, opts));
  if (config.master.ca !== undefined && config.master.url.startsWith('ws:')) {
    problems.push(src.problem(['master', 'ca'], 'is only used with a wss:// url; switch the url to wss:// or remove ca', 'warning'));
  }
  if (config.master.allowPlainRsync === true) {
    problems.push(src.problem(['master', 'allowPlainRsync'], config.master.url.startsWith('ws:')
      ? 'is only used with a wss:// url (a ws:// master always serves plain rsync); remove it'
      : 'lets this agent pull files over plain rsync from a master that turned rsync.tls off: the files travel in clear and a man in the middle can change them; '
        + 'remove it unless the network between master and mirror is trusted', 'warning'));
  }
  return finish(config, problems);
}

/** A state directory inside a target would be deleted by the next sync; one around a target would hold mirrored data. */
function stateInTargets(src: ConfigSource, c: AgentConfig): ConfigProblem[] {
  return c.paths.flatMap((p, i) => (isPathWithin(c.state, p.target) || isPathWithin(p.target, c.state)
    ? [src.problem(['state'], `${c.state} overlaps paths[${i}].target ${p.target}; a sync would delete or mix with the agent's state — move state elsewhere`)]
    : []));
}

const MITM = 'a compromised master, or a man in the middle on plain rsync,';
const OPT_IN_RISKS: Record<'devices' | 'specials' | 'setuid', string> = {
  devices: `takes device nodes from the origin: ${MITM} could plant a world-writable disk device on this mirror `
    + '(the agent unit also needs CAP_MKNOD and PrivateDevices=no for it); remove it unless this mirror needs them',
  specials: 'takes FIFOs and sockets from the origin, where a program that opens one may block; remove it unless this mirror needs them',
  setuid: `keeps the origin's setuid and setgid bits (and file capabilities, with -X): ${MITM} could plant a setuid-root binary on this mirror; `
    + 'remove it unless this mirror needs them (the agent unit also needs RestrictSUIDSGID=no for it)',
};

/** Opting back into what mirrors refuse by default is allowed, and said out loud. */
function optInWarnings(src: ConfigSource, c: AgentConfig): ConfigProblem[] {
  return c.paths.flatMap((p, i) => (Object.keys(OPT_IN_RISKS) as Array<keyof typeof OPT_IN_RISKS>)
    .filter((k) => p[k])
    .map((k) => src.problem(['paths', i, k], OPT_IN_RISKS[k], 'warning')));
}

function fsProblems(src: ConfigSource, c: AgentConfig, opts: ParseOptions): ConfigProblem[] {
  const severity = opts.fsChecksAsWarnings ? 'warning' : 'error';
  const out: ConfigProblem[] = [];
  const check = (at: KeyPath, problem: string | null) => {
    if (problem !== null) out.push(src.problem(at, problem, severity));
  };
  check(['key'], secretKeyFileProblem(c.key));
  if (c.master.ca !== undefined) check(['master', 'ca'], regularFileProblem(c.master.ca));
  check(['state'], stateDirProblem(c.state));
  check(['rsync', 'binary'], binaryProblem(c.rsync.binary));
  c.paths.forEach((p, i) => check(['paths', i, 'target'], directoryProblem(p.target, true)));
  return out;
}
