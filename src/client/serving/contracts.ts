/**
 * Typed contracts (protocol §7.6): a handler may declare the zod schemas of its
 * payload and of its result. Payloads are validated before the handler runs (code 2 naming the
 * field); results are checked unless NODE_ENV is `production`. Each contract is announced in
 * presence by a hash, and served whole, as JSON Schema, by `relais/contracts/get`.
 */
import { z, type ZodType } from 'zod';
import type { ContractDescription } from '../../protocol/contracts.js';
import { InvalidMessageError, RelaisError } from '../../protocol/errors.js';
import { isBytes } from '../../protocol/framing.js';
import { environmentVariable } from '../runtime.js';
import type { Handler, HandlerContext } from '../types.js';

export interface Contract {
  /** The payload: validated (and parsed: defaults, coercions) before the handler sees it. */
  input?: ZodType;
  /** The result: checked before it is sent, except with NODE_ENV=production. */
  output?: ZodType;
  /** One line for people (`relais contracts`, the AsyncAPI document). */
  description?: string;
}

/** The handler's result did not match its declared output (a bug on the serving side). */
export class ContractError extends RelaisError {
  override readonly name = 'ContractError';
  constructor(message: string, details?: unknown) {
    super('CONTRACT', message, { details });
  }
}

/** The first issues of a failed parse, each as `<where>.<path>: <message>`. */
function issuesOf(error: z.ZodError, where: string): { text: string; issues: Array<{ path: string; message: string }> } {
  const issues = error.issues.slice(0, 10).map((issue) => ({ path: [where, ...issue.path.map(String)].join('.'), message: issue.message }));
  return { text: issues.map((issue) => `${issue.path}: ${issue.message}`).join('; '), issues };
}

/** `handler` behind its contract's checks; a plain (not promised) result stays plain. */
export function withContract(action: string, handler: Handler, contract: Contract, checkResults = environmentVariable('NODE_ENV') !== 'production'): Handler {
  const output = checkResults ? contract.output : undefined;
  const checkResult = (result: unknown) => {
    const parsed = output!.safeParse(result);
    if (parsed.success) return parsed.data;
    const { text, issues } = issuesOf(parsed.error, 'result');
    throw new ContractError(`${action} answered a result that breaks its contract: ${text}`, { issues });
  };
  return (payload: unknown, context: HandlerContext) => {
    let input = payload;
    if (contract.input) {
      const parsed = contract.input.safeParse(payload);
      if (!parsed.success) {
        const { text, issues } = issuesOf(parsed.error, 'payload');
        // Bytes where JSON is wanted: say so rather than list the fields bytes lack (protocol §3.5).
        const why = isBytes(payload) ? `the payload is ${payload.length} bytes (a binary message), this action takes JSON: ${text}` : text;
        throw new InvalidMessageError(`invalid payload for ${action}: ${why}`, { details: { issues } });
      }
      input = parsed.data;
    }
    const result = handler(input, context);
    if (!output) return result;
    return typeof (result as { then?: unknown } | null)?.then === 'function' ? Promise.resolve(result).then(checkResult) : checkResult(result);
  };
}

/** The contract as it travels. Asynchronous: its hash is Web Crypto's SHA-256, in any runtime. */
export async function describeContract(contract: Contract): Promise<ContractDescription> {
  const schema = (type: ZodType, io: 'input' | 'output') => z.toJSONSchema(type, { target: 'draft-7', io, unrepresentable: 'any' }) as Record<string, unknown>;
  const body = {
    ...(contract.input && { input: schema(contract.input, 'input') }),
    ...(contract.output && { output: schema(contract.output, 'output') }),
    ...(contract.description !== undefined && { description: contract.description }),
  };
  return { ...body, hash: await contractHash(JSON.stringify(body)) };
}

/** The first 16 hex digits of the SHA-256 of `text` (protocol §7.6). */
export async function contractHash(text: string): Promise<string> {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) throw new TypeError("a contract's hash needs Web Crypto, which a browser offers only to a secure page (https, or http on localhost)");
  const digest = new Uint8Array(await subtle.digest('SHA-256', new TextEncoder().encode(text)));
  return Array.from(digest.subarray(0, 8), (byte) => byte.toString(16).padStart(2, '0')).join('');
}
