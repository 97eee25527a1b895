// A peer broke the protocol: the error carries the close code the connection
// ends with, so the code that detects a problem also decides how the peer is told.
import type { CloseCode } from './handshake.js';

export class ProtocolError extends Error {
  constructor(
    readonly close: CloseCode,
    message: string,
  ) {
    super(message);
    this.name = 'ProtocolError';
  }
}

/** Room for a close reason: the WebSocket close frame carries at most 123 bytes of it. */
export const CLOSE_REASON_CHARS = 120;
