/** The login form: identity and token (docs/security.md). The token field is never filled in by the page. */
import { useState } from 'preact/hooks';
import type { Credentials } from '../session.js';

export function Login({ reason, busy, onSubmit }: { reason: string; busy: boolean; onSubmit: (credentials: Credentials) => void }) {
  const [identity, setIdentity] = useState('');
  return (
    <main class="login">
      <h1>Relais</h1>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          const form = event.currentTarget as HTMLFormElement;
          const token = (form.elements.namedItem('token') as HTMLInputElement).value;
          // The field is emptied at once: the token lives only in the connection (and sessionStorage).
          (form.elements.namedItem('token') as HTMLInputElement).value = '';
          onSubmit({ identity: identity.trim(), token });
        }}
      >
        <p role="alert" class="reason">{reason}</p>
        <label>
          Identity
          <input name="identity" autocomplete="username" required value={identity} onInput={(event) => setIdentity(event.currentTarget.value)} />
        </label>
        <label>
          Token
          <input name="token" type="password" autocomplete="current-password" required />
        </label>
        <button type="submit" disabled={busy}>{busy ? 'Connecting…' : 'Log in'}</button>
      </form>
    </main>
  );
}
