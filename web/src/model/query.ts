/** How long the page waits for one answer of the router or a client (a history page, the registry, logs). */
export const QUERY_TIMEOUT_MS = 10_000;
