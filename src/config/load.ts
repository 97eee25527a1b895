// Entry points for daemons and `inosync check-config`.

import { parseAgentConfig, parseAgentSource } from './agent.js';
import { ConfigError, formatProblem, type ConfigProblem } from './errors.js';
import { parseMasterConfig, parseMasterSource } from './master.js';
import type { ParseOptions, ParseResult } from './parse-result.js';
import { readConfigSource } from './source.js';
import type { AgentConfig, MasterConfig } from './types.js';

export type ConfigKind = 'master' | 'agent';

export interface LoadOptions extends ParseOptions {
  /** Receives each warning; by default they are written to stderr, since a daemon's operator should see them. */
  onWarning?: (problem: ConfigProblem) => void;
}

function defaultWarn(p: ConfigProblem): void {
  process.stderr.write(`warning: ${formatProblem(p)}\n`);
}

function accept<T>(result: ParseResult<T>, opts: LoadOptions): T {
  const firstError = result.problems.find((p) => p.severity === 'error');
  if (firstError || result.config === null) {
    // A null config always comes with an error; the fallback only guards the invariant.
    const p = firstError ?? { file: '(unknown)', reason: 'config could not be validated', severity: 'error' as const };
    throw new ConfigError(p, result.problems);
  }
  const warn = opts.onWarning ?? defaultWarn;
  for (const p of result.problems) warn(p);
  return result.config;
}

/** The master's config, or a ConfigError for its first error: the master must not start on a bad config. */
export function loadMasterConfig(file: string, opts: LoadOptions = {}): MasterConfig {
  return accept(parseMasterConfig(file, opts), opts);
}

/** The agent's config, or a ConfigError for its first error. */
export function loadAgentConfig(file: string, opts: LoadOptions = {}): AgentConfig {
  return accept(parseAgentConfig(file, opts), opts);
}

/** Which kind of config `data` looks like; undefined when it has the marks of neither or both. */
export function kindOfData(data: Record<string, unknown>): ConfigKind | undefined {
  const paths = data['paths'];
  const watches = Array.isArray(paths) && paths.some((p: unknown) => p !== null && typeof p === 'object' && 'watch' in p);
  const master = 'nodes' in data || watches;
  const agent = 'master' in data;
  if (master === agent) return undefined;
  return master ? 'master' : 'agent';
}

/**
 * 'master' for a file with `nodes` or `paths[].watch`, 'agent' for one with
 * `master`, undefined for neither or both. Throws a ConfigError when the file
 * cannot be read or is not a YAML mapping.
 */
export function detectConfigKind(file: string): ConfigKind | undefined {
  const { source, problems } = readConfigSource(file);
  if (!source) {
    const first = problems.find((p) => p.severity === 'error') ?? problems[0]!;
    throw new ConfigError(first, problems);
  }
  return kindOfData(source.data);
}

export interface CheckOptions {
  /** skip detection, e.g. when the CLI was told which kind to expect */
  kind?: ConfigKind;
  /**
   * Defaults to true here: check-config is often run on a config written for
   * another machine, so what it finds missing locally is only a warning
   * (`check-config --strict` upgrades them).
   */
  fsChecksAsWarnings?: boolean;
}

/** Every problem in a config file, errors and warnings, ordered by line. */
export function checkConfigFile(file: string, opts: CheckOptions = {}): ConfigProblem[] {
  const { source, problems } = readConfigSource(file);
  if (!source) return problems;
  const parseOpts: ParseOptions = { fsChecksAsWarnings: opts.fsChecksAsWarnings ?? true };
  const kind = opts.kind ?? kindOfData(source.data);
  if (kind === 'master') return parseMasterSource(source, parseOpts, problems).problems;
  if (kind === 'agent') return parseAgentSource(source, parseOpts, problems).problems;
  return [...problems, source.problem([], 'cannot tell whether this is a master config (it would have "nodes" and '
    + '"paths" with "watch") or an agent config (it would have "master"); see deploy/examples/')];
}
