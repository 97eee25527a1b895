// Field parsers return either the normalised value or a reason for the
// operator; the schema turns reasons into problems at the field's line.

export type Checked<T> = { value: T } | { problem: string };

export function ok<T>(value: T): Checked<T> {
  return { value };
}

export function bad<T = never>(problem: string): Checked<T> {
  return { problem };
}
