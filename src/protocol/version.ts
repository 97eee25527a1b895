import { readFileSync } from 'node:fs';

/** Bumped whenever a frame's meaning changes; both sides refuse a different one. */
export const PROTOCOL_VERSION = 2;

function readPackageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** The software version, shown in status and sent in the handshake. */
export const SOFTWARE_VERSION = readPackageVersion();
