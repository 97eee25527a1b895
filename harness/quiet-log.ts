// A logger that writes nothing, for in-process tests that assert on state, not on log lines.
import type { Logger } from '../src/common/log.js';

export const quietLog: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, child: () => quietLog };
