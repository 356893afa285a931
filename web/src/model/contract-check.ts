/**
 * A payload checked against a contract's input schema (protocol §7.6) with zod's own JSON
 * Schema reader: zod is what the handler validates with. Loaded on demand (console.tsx).
 */
import { z } from 'zod';

/** A check of payloads against the contract's input schema; throws when zod cannot read the schema. */
export function payloadChecker(schema: unknown): (payload: unknown) => string[] {
  const checker = z.fromJSONSchema(schema as Parameters<typeof z.fromJSONSchema>[0]);
  return (payload) => {
    const result = checker.safeParse(payload);
    if (result.success) return [];
    return result.error.issues.slice(0, 10).map((issue) => `${issue.path.length ? `payload.${issue.path.join('.')}` : 'payload'}: ${issue.message}`);
  };
}
