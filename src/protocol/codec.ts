// MessagePack with everything msgpackr adds beyond plain data switched off.
// msgpackr honours its own extension types (records, Sets, Errors, structured
// clone pointers) whatever the options; a throwing decoder for every extension
// type turns them into decode errors instead of objects we never asked for.
import { C1, Packr, Unpackr, addExtension } from 'msgpackr';

for (let type = 0; type < 256; type++) {
  if (type === 0x72) continue; // records: refused by useRecords:false below and by validation
  addExtension({
    type,
    unpack() {
      throw new DecodeError(`msgpack extension type ${type} is not allowed`);
    },
  });
}

export class DecodeError extends Error {}

const packr = new Packr({ useRecords: false, moreTypes: false, structuredClone: false, bundleStrings: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, structuredClone: false, int64AsType: 'number' });

export function encode(value: unknown): Uint8Array {
  // Copy: msgpackr may hand back a view into a buffer it reuses on the next pack.
  return new Uint8Array(packr.pack(value));
}

/** Decodes exactly one value; trailing bytes, truncation and unknown types are errors. */
export function decode(bytes: Uint8Array): unknown {
  let value: unknown;
  try {
    const all = unpackr.unpackMultiple(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) as unknown[] | undefined;
    if (!Array.isArray(all) || all.length !== 1) throw new DecodeError(`expected one value, found ${Array.isArray(all) ? all.length : 0}`);
    value = all[0];
  } catch (err) {
    if (err instanceof DecodeError) throw err;
    throw new DecodeError(`malformed msgpack: ${(err as Error).message}`);
  }
  // msgpackr turns the never-used byte 0xc1 into a marker object rather than an error.
  if (holdsC1(value)) throw new DecodeError('msgpack byte 0xc1 (never used) is not allowed');
  return value;
}

function holdsC1(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === C1) return true;
    if (typeof v !== 'object' || v === null || v instanceof Uint8Array) continue;
    if (Array.isArray(v)) for (const x of v) stack.push(x);
    else for (const k in v) stack.push((v as Record<string, unknown>)[k]);
  }
  return false;
}
