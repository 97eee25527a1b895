// The master's config: what to watch, which mirrors may connect, where to listen.

import * as path from 'node:path';
import * as z from 'zod';
import { nestedDirProblems, duplicateProblems } from './cross-checks.js';
import type { ConfigProblem } from './errors.js';
import {
  binary, excludeList, filePath, hostPort, MAX_TIMER_SECONDS, name, optional, publicKey, uniqueList, vettedString, wholeNumber,
} from './fields.js';
import {
  binaryProblem, directoryProblem, regularFileProblem, secretKeyFileProblem, tlsKeyFileProblem, tlsKeyGroupProblem,
} from './fs-checks.js';
import { isPathWithin } from './fs-path.js';
import { issuesToProblems } from './issues.js';
import { accountNameProblem, DEFAULT_RSYNC_USER, lookupRsyncAccount, unreadableTreeProblem } from './rsync-account.js';
import type { KeyPath } from './keypath.js';
import { type ParseOptions, type ParseResult, finish, stripUndefined } from './parse-result.js';
import { readConfigSource, type ConfigSource } from './source.js';
import { EVENT_KINDS, type HostPort, type MasterConfig } from './types.js';
import { relPathProblem } from '../protocol/relpath.js';

function markerProblem(s: string): string | null {
  const p = relPathProblem(s);
  return p === null ? null : `"${s}" is not a relative path below watch (${p}); name a file inside the watched directory`;
}

function masterSchema(dir: string) {
  const path = z.strictObject({
    name: name().describe('the rsync module name agents use for this path, e.g. "www"'),
    watch: filePath(dir).describe('the directory to watch, e.g. /var/www'),
    exclude: optional(excludeList().default(() => [])),
    marker: optional(vettedString(markerProblem).optional()),
  });
  return z.strictObject({
    listen: optional(hostPort().prefault('0.0.0.0:7070')),
    key: filePath(dir).describe('the path of the master\'s secret key file'),
    tls: optional(z.strictObject({
      cert: filePath(dir).describe('the PEM certificate file'),
      key: filePath(dir).describe('the PEM private key file of the certificate'),
    }).optional()),
    rsync: optional(z.strictObject({
      listen: optional(hostPort().prefault('0.0.0.0:8730')),
      binary: optional(binary(dir).prefault('rsync')),
      tls: optional(z.boolean().optional()),
      user: optional(vettedString(accountNameProblem).default(DEFAULT_RSYNC_USER)),
      group: optional(vettedString(accountNameProblem).optional()),
    }).prefault({})),
    status: optional(z.strictObject({
      listen: optional(hostPort().prefault('127.0.0.1:7071')),
    }).prefault({})),
    delay: optional(z.number().min(0).max(3600).default(0.05)),
    events: optional(uniqueList(z.enum(EVENT_KINDS), 'event').min(1).default(() => [...EVENT_KINDS])),
    watcher: optional(z.enum(['inotify', 'chokidar', 'parcel']).default('inotify')),
    reconcile: optional(wholeNumber(0, MAX_TIMER_SECONDS).default(3600)),
    maxPending: optional(wholeNumber(16).default(10000)),
    nodes: z.array(z.strictObject({
      name: name().describe('the mirror\'s name, as set in its agent config'),
      key: publicKey().describe('the mirror\'s base64 public key'),
    })).min(1).describe('a list of the mirrors allowed to connect, each with name and key'),
    paths: z.array(path).min(1).describe('a list of the directories to sync, each with name and watch'),
  });
}

export function parseMasterConfig(file: string, opts: ParseOptions = {}): ParseResult<MasterConfig> {
  const { source, problems } = readConfigSource(file);
  if (!source) return finish<MasterConfig>(null, problems);
  return parseMasterSource(source, opts, problems);
}

export function parseMasterSource(src: ConfigSource, opts: ParseOptions = {}, problems: ConfigProblem[] = []): ParseResult<MasterConfig> {
  const schema = masterSchema(src.dir);
  const parsed = schema.safeParse(src.data);
  if (!parsed.success) problems.push(...issuesToProblems(parsed.error.issues, src, schema));
  problems.push(
    ...duplicateProblems(src, 'nodes', 'name', 'node name'),
    ...duplicateProblems(src, 'nodes', 'key', 'node key'),
    ...duplicateProblems(src, 'paths', 'name', 'path name'),
    ...nestedDirProblems(src, 'paths', 'watch',
      'the same files would be served by two modules; watch only the outer directory (using exclude if needed) or separate them'),
  );
  if (!parsed.success) return finish<MasterConfig>(null, problems);

  const { rsync, ...rest } = parsed.data;
  // rsync's own protocol is plain text: with a certificate at hand, wrap it too.
  const config: MasterConfig = stripUndefined({ file: src.file, ...rest, rsync: { ...rsync, tls: rsync.tls ?? rest.tls !== undefined } });
  if (rsync.tls === true && rest.tls === undefined) {
    problems.push(src.problem(['rsync', 'tls'], 'needs a certificate: set tls.cert and tls.key, or remove rsync.tls'));
  }
  problems.push(...listenerClashes(src, config), ...excludeHints(src, config), ...fsProblems(src, config, opts));
  return finish(config, problems);
}

function fsProblems(src: ConfigSource, c: MasterConfig, opts: ParseOptions): ConfigProblem[] {
  const severity = opts.fsChecksAsWarnings ? 'warning' : 'error';
  const out: ConfigProblem[] = [];
  const check = (at: KeyPath, problem: string | null) => {
    if (problem !== null) out.push(src.problem(at, problem, severity));
  };
  check(['key'], secretKeyFileProblem(c.key));
  if (c.tls) {
    check(['tls', 'cert'], regularFileProblem(c.tls.cert));
    check(['tls', 'key'], tlsKeyFileProblem(c.tls.key));
    const shared = tlsKeyGroupProblem(c.tls.key);
    if (shared !== null) out.push(src.problem(['tls', 'key'], shared, 'warning'));
  }
  check(['rsync', 'binary'], binaryProblem(c.rsync.binary));
  const account = lookupRsyncAccount(c.rsync.user ?? DEFAULT_RSYNC_USER, c.rsync.group);
  // Only a master running as root switches the daemon to the account; for
  // anyone else (a developer, check-config run by hand) it is a warning, which
  // check-config --strict, the unit's ExecStartPre, still makes an error.
  const asAccount = (at: KeyPath, problem: string | null) => {
    if (problem !== null) out.push(src.problem(at, problem, process.getuid?.() === 0 ? severity : 'warning'));
  };
  if ('problem' in account) asAccount(['rsync', account.key], account.problem);
  else if (account.uid === 0) {
    out.push(src.problem(['rsync', 'user'], `"${account.user}" is root: every agent's pull reads as root; prefer an unprivileged account such as ${DEFAULT_RSYNC_USER}`, 'warning'));
  }
  c.paths.forEach((p, i) => {
    const dirProblem = directoryProblem(p.watch);
    check(['paths', i, 'watch'], dirProblem);
    if (dirProblem === null && !('problem' in account)) asAccount(['paths', i, 'watch'], unreadableTreeProblem(p.watch, account));
    // Without the marker the master refuses to sync the path, suspecting an unmounted source.
    if (dirProblem === null && p.marker !== undefined) {
      const m = regularFileProblem(path.join(p.watch, p.marker));
      if (m !== null) check(['paths', i, 'marker'], `${m}; the master will not start until it exists`);
    }
  });
  return out;
}

/** Two of the master's listeners on one port would fail at startup with EADDRINUSE. */
function listenerClashes(src: ConfigSource, c: MasterConfig): ConfigProblem[] {
  const listeners: [KeyPath, HostPort][] = [[['listen'], c.listen], [['rsync', 'listen'], c.rsync.listen], [['status', 'listen'], c.status.listen]];
  const wildcard = (h: string) => h === '0.0.0.0' || h === '::';
  const out: ConfigProblem[] = [];
  listeners.forEach(([at, hp], j) => {
    const clash = listeners.slice(0, j).find(([, o]) => o.port === hp.port && (o.host === hp.host || wildcard(o.host) || wildcard(hp.host)));
    if (clash) {
      out.push(src.problem(at, `port ${hp.port} is also used by ${clash[0].join('.')}; give each listener its own port`));
    }
  });
  return out;
}

/** Anchored excludes are relative to watch; repeating the watch path makes them match nothing. */
function excludeHints(src: ConfigSource, c: MasterConfig): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  c.paths.forEach((p, i) => p.exclude.forEach((pattern, j) => {
    if (p.watch !== '/' && pattern.startsWith('/') && isPathWithin(pattern.replace(/\/+$/, ''), p.watch)) {
      const rel = pattern.slice(p.watch.length) || '/';
      out.push(src.problem(['paths', i, 'exclude', j],
        `"${pattern}" repeats the watch directory, but a leading "/" anchors the pattern at ${p.watch}; write "${rel}"`, 'warning'));
    }
  }));
  return out;
}
