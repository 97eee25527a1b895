// What both ends of a connection need from the transport: whole binary frames,
// a close with a code, heartbeats. A `ws` WebSocket is one (ws-frame-socket.ts);
// an in-memory pair is another, for tests that need no sockets.

export interface FrameListener {
  /** One whole frame; `binary` is false for a text frame (not part of the protocol). */
  frame(data: Uint8Array, binary: boolean): void;
  /** The connection is gone, cleanly (with the peer's code) or not (1006). */
  close(code: number, reason: string): void;
  ping?(): void;
  pong?(): void;
  error?(err: Error): void;
}

export interface FrameSocket {
  /** Frames can be sent now. */
  readonly isOpen: boolean;
  /** Bytes queued for sending: how far behind a slow peer is. */
  readonly bufferedAmount: number;
  /** Receives events from now on; one listener per socket. */
  listen(l: FrameListener): void;
  send(frame: Uint8Array, done?: (err?: Error) => void): void;
  close(code: number, reason: string): void;
  /** Drops the connection without a close handshake. */
  terminate(): void;
  /** Asks the peer for a pong (its transport answers on its own). */
  ping(): void;
}

/** Code a side sees when the connection ended without a close frame. */
export const CLOSE_ABNORMAL = 1006;
