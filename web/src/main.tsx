/** The dashboard's entry: log in (or not), then the shell with its views. */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { openSession, type Session } from './session.js';
import { Login } from './views/login.js';
import { Shell } from './views/shell.js';

type Screen = { kind: 'connecting' } | { kind: 'login'; reason: string; busy?: boolean } | { kind: 'ready'; session: Session } | { kind: 'failed'; reason: string };

function App() {
  const [screen, setScreen] = useState<Screen>({ kind: 'connecting' });
  const open = async (credentials?: { identity: string; token: string }) => {
    try {
      const opening = await openSession(credentials);
      setScreen('session' in opening ? { kind: 'ready', session: opening.session } : { kind: 'login', reason: opening.login });
    } catch (error) {
      setScreen({ kind: 'failed', reason: (error as Error).message });
    }
  };
  useEffect(() => void open(), []);
  switch (screen.kind) {
    case 'connecting':
      return <p class="splash" role="status">Connecting to the bus…</p>;
    case 'failed':
      return (
        <main class="splash">
          <p role="alert">Cannot reach the bus: {screen.reason}</p>
          <button type="button" onClick={() => (setScreen({ kind: 'connecting' }), void open())}>Try again</button>
        </main>
      );
    case 'login':
      return <Login reason={screen.reason} busy={screen.busy === true} onSubmit={(credentials) => (setScreen({ ...screen, busy: true }), void open(credentials))} />;
    case 'ready':
      return <Shell session={screen.session} onLogOut={() => setScreen({ kind: 'login', reason: 'Logged out.' })} />;
  }
}

render(<App />, document.getElementById('app')!);
