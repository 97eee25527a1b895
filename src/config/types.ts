// The validated shapes of the two config files. The loader (load.ts) turns
// untrusted YAML into these; everything past the loader trusts them.

export interface HostPort {
  host: string;
  port: number;
}

/** Which kinds of filesystem change trigger a sync (the seed's `emask`). */
export type EventKind = 'create' | 'modify' | 'delete' | 'move' | 'attrib';
export const EVENT_KINDS: readonly EventKind[] = ['create', 'modify', 'delete', 'move', 'attrib'];

export type WatcherBackend = 'inotify' | 'chokidar' | 'parcel';

export interface NodeEntry {
  name: string;
  /** base64 ed25519 public key, 32 bytes decoded */
  key: string;
}

export interface MasterPath {
  name: string;
  /** absolute path to an existing directory, without trailing slash */
  watch: string;
  /** rsync exclude patterns, evaluated relative to `watch` */
  exclude: string[];
  /** A file that must exist under `watch` for the path to be synced (guards against unmounted sources). */
  marker?: string;
}

export interface MasterConfig {
  /** absolute path of the file this came from, for messages */
  file: string;
  listen: HostPort;
  /** path to the secret key file */
  key: string;
  tls?: { cert: string; key: string };
  rsync: {
    listen: HostPort;
    binary: string;
    /** agents reach the daemon through TLS with `tls`'s certificate; default: on when `tls` is set */
    tls: boolean;
    /**
     * The account the daemon reads the trees as, when the master runs as root
     * (otherwise it reads as the master's own user). A name or numeric uid;
     * parsed configs always have it (default "inosync").
     */
    user?: string;
    /** its group; default the user's primary group */
    group?: string;
  };
  status: { listen: HostPort };
  /** seconds; upper bound for gathering events into one batch */
  delay: number;
  events: EventKind[];
  watcher: WatcherBackend;
  /** seconds between full reconciliations; 0 disables */
  reconcile: number;
  /** per node and path, the number of pending entries above which changes collapse into ancestor directories */
  maxPending: number;
  nodes: NodeEntry[];
  paths: MasterPath[];
}

export interface AgentPath {
  name: string;
  /** absolute path to an existing directory, without trailing slash */
  target: string;
  /** refuse a sync that would delete more than this many entries (0 = no limit) */
  maxDelete: number;
  /** opt-ins: take block and character devices from the origin (default false) */
  devices: boolean;
  /** FIFOs and sockets (default false) */
  specials: boolean;
  /** keep setuid and setgid bits, on files and directories (default false: stripped) */
  setuid: boolean;
}

export interface AgentConfig {
  file: string;
  name: string;
  key: string;
  master: {
    url: string;
    /** base64 ed25519 public key of the master */
    key: string;
    /** PEM CA file to verify a wss:// master against */
    ca?: string;
    /** host of the master's rsync daemon; defaults to the host of `url` */
    rsyncHost?: string;
    /** with a wss:// url, follow a master whose rsync port does not speak TLS (default: refuse) */
    allowPlainRsync?: boolean;
  };
  /** directory where the agent remembers what it has applied */
  state: string;
  rsync: {
    binary: string;
    /** KB/s, 0 = no limit (the seed's `rspeed`) */
    bwlimit: number;
    /** raw extra arguments (the seed's `extra`) */
    extra: string[];
    /** seconds of I/O silence before rsync gives up (rsync --timeout) */
    timeout: number;
  };
  paths: AgentPath[];
}
