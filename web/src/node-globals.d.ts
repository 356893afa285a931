/**
 * The page reuses src/protocol/*. envelope.ts names Buffer on paths the page never takes
 * (`decode` of a string; `encodeJson` with a byte limit): the page decodes bytes and calls
 * `encode` without `maxBytes`. This declares just enough for those files to typecheck
 * without Node's types, which would hide a real Node API slipping into the page.
 */
declare const Buffer: {
  byteLength(text: string): number;
  from(buffer: ArrayBufferLike, offset?: number, length?: number): { toString(encoding: string): string };
};
