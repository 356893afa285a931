/** A client's status as a coloured badge (protocol §11.3 statuses); the word is always written. */
export function StatusBadge({ status }: { status: string }) {
  return <span class={`status status-${status}`} data-status={status}>{status}</span>;
}

/** An answer's code (protocol §5.1): 0 ok, else the error's code. */
export function CodeBadge({ code }: { code: number | undefined }) {
  if (code === undefined) return null;
  return <span class={`code ${code === 0 ? 'code-ok' : 'code-error'}`}>code {code}</span>;
}
