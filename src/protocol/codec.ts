// MessagePack with everything msgpackr adds beyond plain data switched off.
// msgpackr honours its own extension types (records, Sets, Errors, structured
// clone pointers) whatever the options; a throwing decoder for every extension
// type turns them into decode errors instead of objects we never asked for.
import { Packr, Unpackr, addExtension } from 'msgpackr';

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
  return value;
}
