// Two connected FrameSockets in memory: both ends of the protocol talk to each
// other in one process, without sockets. Delivery is asynchronous (a
// microtask), as over a network, so neither side sees the other's reply
// before its own handler has returned.
import { CLOSE_ABNORMAL, type FrameListener, type FrameSocket } from '../src/protocol/frame-socket.js';

export class MemoryFrameSocket implements FrameSocket {
  peer!: MemoryFrameSocket;
  private listener: FrameListener | null = null;
  private state: 'open' | 'closing' | 'closed' = 'open';
  /** Like a hung process: pings arrive but no pong goes back. */
  answerPings = true;
  /** What this side sent, in order, for assertions. */
  readonly sent: Uint8Array[] = [];
  /** How the connection ended, as this side saw it. */
  closed: { code: number; reason: string } | null = null;
  terminated = false;
  readonly bufferedAmount = 0;

  get isOpen(): boolean {
    return this.state === 'open';
  }

  listen(l: FrameListener): void {
    this.listener = l;
  }

  send(frame: Uint8Array, done?: (err?: Error) => void): void {
    if (this.state !== 'open') {
      done?.(new Error('socket is not open'));
      return;
    }
    this.sent.push(frame);
    this.deliver(() => this.peer.receive(frame, true));
    done?.();
  }

  /** Sends a text frame, which no real peer of ours ever does. */
  sendText(text: string): void {
    if (this.state !== 'open') return;
    this.deliver(() => this.peer.receive(new TextEncoder().encode(text), false));
  }

  close(code: number, reason: string): void {
    if (this.state !== 'open') return;
    this.state = 'closing';
    // The peer answers a close frame with the same code; both then report it.
    this.deliver(() => {
      this.peer.end(code, reason);
      this.end(code, reason);
    });
  }

  terminate(): void {
    if (this.state === 'closed') return;
    this.terminated = true;
    this.state = 'closing';
    this.deliver(() => {
      this.peer.end(CLOSE_ABNORMAL, '');
      this.end(CLOSE_ABNORMAL, '');
    });
  }

  ping(): void {
    if (this.state !== 'open') return;
    this.deliver(() => {
      if (this.peer.state !== 'open') return;
      this.peer.listener?.ping?.();
      if (this.peer.answerPings) this.peer.deliver(() => this.state === 'open' && this.listener?.pong?.());
    });
  }

  private receive(frame: Uint8Array, binary: boolean): void {
    if (this.state === 'open') this.listener?.frame(frame, binary);
  }

  private end(code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.closed = { code, reason };
    this.listener?.close(code, reason);
  }

  private deliver(fn: () => void): void {
    queueMicrotask(fn);
  }
}

/** Two ends of one connection. */
export function framePair(): [MemoryFrameSocket, MemoryFrameSocket] {
  const a = new MemoryFrameSocket();
  const b = new MemoryFrameSocket();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

/** Lets every frame in flight arrive (and the replies they cause). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
