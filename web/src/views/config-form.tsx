/**
 * A client's configuration as a form, drawn from the JSON Schema it announced (`config-schema/<id>`,
 * protocol §14.6): a text field per string (a list for an `enum`), a number field per number, a
 * check box per boolean, a group per nested object, JSON text for what else a schema may say
 * (arrays, unions). The router checks the value against the same schema on write; its answer's
 * issues (code 2, `details.issues`) are shown beside the fields they name.
 */
import { useEffect, useState } from 'preact/hooks';

type Schema = Record<string, unknown>;
type Path = (string | number)[];

export interface FieldIssue {
  path: Path;
  message: string;
}

interface FormProps {
  schema: Schema;
  value: unknown;
  /** Issues of the last write, by field. */
  issues: readonly FieldIssue[];
  busy: boolean;
  onSubmit: (value: unknown) => void;
}

const pathKey = (path: Path) => path.map(String).join('.');
const typeOf = (schema: Schema): string | undefined => (typeof schema.type === 'string' ? schema.type : Array.isArray(schema.type) ? (schema.type.find((type) => type !== 'null') as string | undefined) : undefined);
const isObjectSchema = (schema: Schema) => typeOf(schema) === 'object' && typeof schema.properties === 'object' && schema.properties !== null;

/** The value with each absent property the schema gives a default for filled in (what the client itself would read). */
export function withDefaults(schema: Schema, value: unknown): unknown {
  if (value === undefined && schema.default !== undefined) return structuredClone(schema.default);
  if (!isObjectSchema(schema)) return value;
  const object = { ...((value && typeof value === 'object' && !Array.isArray(value) ? value : {}) as Record<string, unknown>) };
  for (const [name, property] of Object.entries(schema.properties as Record<string, Schema>)) {
    const filled = withDefaults(property, object[name]);
    if (filled !== undefined) object[name] = filled;
  }
  return object;
}

function setAt(value: unknown, path: Path, next: unknown): unknown {
  if (path.length === 0) return next;
  const [head, ...rest] = path;
  const object = { ...((value && typeof value === 'object' ? value : {}) as Record<string, unknown>) };
  const inner = setAt(object[head as string], rest, next);
  if (inner === undefined) delete object[head as string];
  else object[head as string] = inner;
  return object;
}

function getAt(value: unknown, path: Path): unknown {
  return path.reduce<unknown>((inner, name) => (inner && typeof inner === 'object' ? (inner as Record<string, unknown>)[name as string] : undefined), value);
}

export function ConfigForm({ schema, value, issues, busy, onSubmit }: FormProps) {
  const [draft, setDraft] = useState(() => withDefaults(schema, value));
  /** Fields edited as JSON text: their text, and whether it parses. */
  const [texts, setTexts] = useState<Record<string, { text: string; problem?: string }>>({});
  useEffect(() => {
    setDraft(withDefaults(schema, value));
    setTexts({});
  }, [schema, value]);
  const byField = new Map(issues.map((issue) => [pathKey(issue.path), issue.message]));
  const shown = new Set<string>();
  const change = (path: Path, next: unknown) => setDraft((current: unknown) => setAt(current, path, next));

  const field = (name: string, property: Schema, path: Path, required: boolean) => {
    const key = pathKey(path);
    const id = `config-${key.replaceAll('.', '-')}`;
    const issue = byField.get(key);
    if (issue) shown.add(key);
    const label = typeof property.title === 'string' ? property.title : name;
    const hint = typeof property.description === 'string' ? <span class="hint">{property.description}</span> : null;
    const problem = issue ? <span class="problem" id={`${id}-issue`} role="alert">{issue}</span> : null;
    const current = getAt(draft, path);
    const common = { id, name: key, 'aria-invalid': issue ? ('true' as const) : undefined, 'aria-describedby': issue ? `${id}-issue` : undefined };
    const type = typeOf(property);
    if (isObjectSchema(property)) {
      return (
        <fieldset class="config-group" data-field={key}>
          <legend>{label}</legend>
          {hint}
          {problem}
          {fields(property, path)}
        </fieldset>
      );
    }
    let input;
    if (Array.isArray(property.enum)) {
      input = (
        <select {...common} value={current === undefined ? '' : JSON.stringify(current)} onChange={(event) => change(path, event.currentTarget.value === '' ? undefined : JSON.parse(event.currentTarget.value))}>
          {!required && <option value="">(none)</option>}
          {property.enum.map((option) => <option value={JSON.stringify(option)}>{String(option)}</option>)}
        </select>
      );
    } else if (type === 'boolean') {
      return (
        <div class="config-field" data-field={key}>
          <label class="inline" for={id}>
            <input {...common} type="checkbox" checked={current === true} onChange={(event) => change(path, event.currentTarget.checked)} />
            {label}
          </label>
          {hint}
          {problem}
        </div>
      );
    } else if (type === 'number' || type === 'integer') {
      input = (
        <input
          {...common}
          type="number"
          step={type === 'integer' ? 1 : 'any'}
          {...(typeof property.minimum === 'number' && { min: property.minimum })}
          {...(typeof property.maximum === 'number' && { max: property.maximum })}
          value={typeof current === 'number' ? String(current) : ''}
          onInput={(event) => change(path, event.currentTarget.value === '' ? undefined : Number(event.currentTarget.value))}
        />
      );
    } else if (type === 'string') {
      input = <input {...common} type="text" value={typeof current === 'string' ? current : ''} onInput={(event) => change(path, event.currentTarget.value)} />;
    } else {
      // Arrays, unions and the rest: JSON text, parsed as it is typed.
      const text = texts[key]?.text ?? (current === undefined ? '' : JSON.stringify(current));
      const invalid = texts[key]?.problem;
      input = (
        <textarea
          {...common}
          rows={2}
          class="json"
          value={text}
          aria-invalid={issue || invalid ? 'true' : undefined}
          onInput={(event) => {
            const next = event.currentTarget.value;
            try {
              change(path, next.trim() === '' ? undefined : JSON.parse(next));
              setTexts({ ...texts, [key]: { text: next } });
            } catch (error) {
              setTexts({ ...texts, [key]: { text: next, problem: `not JSON: ${(error as Error).message}` } });
            }
          }}
        />
      );
    }
    return (
      <div class="config-field" data-field={key}>
        <label for={id}>
          {label}
          {required ? ' *' : ''}
        </label>
        {input}
        {hint}
        {texts[key]?.problem && <span class="problem">{texts[key]!.problem}</span>}
        {problem}
      </div>
    );
  };

  const fields = (object: Schema, path: Path) => {
    const required = new Set(Array.isArray(object.required) ? (object.required as string[]) : []);
    return Object.entries(object.properties as Record<string, Schema>).map(([name, property]) => field(name, property, [...path, name], required.has(name)));
  };

  if (!isObjectSchema(schema)) return <p class="hint">The announced schema is not an object with properties: edit the value as JSON below.</p>;
  const rendered = fields(schema, []);
  const unplaced = issues.filter((issue) => !shown.has(pathKey(issue.path)));
  const blocked = Object.values(texts).some((text) => text.problem);
  return (
    <form
      class="config-form"
      aria-label="Configuration"
      // The router's check is the one that counts: its refusal is shown beside each field, rather than the browser's bubble for min/max alone.
      noValidate
      onSubmit={(event) => {
        event.preventDefault();
        if (!blocked) onSubmit(draft);
      }}
    >
      {unplaced.map((issue) => (
        <p class="problem" role="alert">
          {issue.path.length ? `${pathKey(issue.path)}: ` : ''}
          {issue.message}
        </p>
      ))}
      {rendered}
      <button type="submit" disabled={busy || blocked}>{busy ? 'Saving…' : 'Save configuration'}</button>
    </form>
  );
}
