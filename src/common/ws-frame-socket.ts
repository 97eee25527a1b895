// A `ws` WebSocket as a FrameSocket.
import WebSocket from 'ws';
import type { FrameListener, FrameSocket } from '../protocol/frame-socket.js';

export class WsFrameSocket implements FrameSocket {
  constructor(readonly ws: WebSocket) {}

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  listen(l: FrameListener): void {
    this.ws.on('message', (data, isBinary) => l.frame(toBytes(data), isBinary));
    this.ws.on('close', (code, reason) => l.close(code, reason.toString()));
    this.ws.on('error', (err) => l.error?.(err));
    this.ws.on('ping', () => l.ping?.());
    this.ws.on('pong', () => l.pong?.());
  }

  send(frame: Uint8Array, done?: (err?: Error) => void): void {
    this.ws.send(frame, { binary: true }, done);
  }

  close(code: number, reason: string): void {
    this.ws.close(code, reason);
  }

  terminate(): void {
    this.ws.terminate();
  }

  ping(): void {
    this.ws.ping();
  }
}

function toBytes(data: WebSocket.RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return data;
}
