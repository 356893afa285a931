/** The frame every view shares: navigation (real links, hash routes), connection state, log out. */
import { useEffect, useState } from 'preact/hooks';
import { useStore } from '../ui/store.js';
import { logOut, type Session } from '../session.js';
import { ClientPage } from './client-page.js';
import { ClientsView } from './clients.js';
import { ConsoleView } from './console.js';
import { EventsView } from './events.js';
import { HistoryView } from './history.js';
import { KvView } from './kv.js';
import { MetricsView } from './metrics.js';
import { SitesView } from './sites.js';
import { TopicsView } from './topics.js';

const VIEWS = [
  ['clients', 'Clients'],
  ['sites', 'Sites'],
  ['events', 'Events'],
  ['console', 'Console'],
  ['history', 'History'],
  ['topics', 'Topics'],
  ['kv', 'Store'],
  ['metrics', 'Metrics'],
] as const;

function useRoute(): string[] {
  // `#/<view>/<id>?<query>`: the query (the console's preset action) is read by the view itself.
  const read = () => window.location.hash.replace(/^#\/?/, '').replace(/\?.*$/, '').split('/').map(decodeURIComponent);
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const onChange = () => setRoute(read());
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}

export function Shell({ session, onLogOut }: { session: Session; onLogOut: () => void }) {
  const [view = 'clients', ...rest] = useRoute();
  const state = useStore(session.connection);
  // On a phone the navigation folds behind one button (style.css), so that the view has the screen.
  const [menuOpen, setMenuOpen] = useState(false);
  const current = VIEWS.some(([name]) => name === view) ? view : 'clients';
  useEffect(() => {
    document.title = `Relais — ${VIEWS.find(([name]) => name === current)![1]}`;
    document.getElementById('main')?.focus();
    setMenuOpen(false);
  }, [current, rest[0]]);
  const label = VIEWS.find(([name]) => name === current)![1];
  return (
    <div class="shell">
      <header>
        <a class="skip" href="#main" onClick={(event) => (event.preventDefault(), document.getElementById('main')?.focus())}>Skip to content</a>
        <span class="brand">Relais</span>
        <button type="button" class="menu-toggle" aria-expanded={menuOpen} aria-controls="views-nav" onClick={() => setMenuOpen(!menuOpen)}>
          ☰ {label}
        </button>
        <nav aria-label="Views" id="views-nav" data-open={menuOpen ? '' : undefined}>
          {VIEWS.map(([name, label]) => (
            <a href={`#/${name}`} aria-current={name === current ? 'page' : undefined}>{label}</a>
          ))}
        </nav>
        <span class={`connection ${state}`} role="status" data-testid="connection">
          {state === 'connected' ? 'connected' : state === 'reconnecting' ? 'reconnecting…' : 'closed'}
          {session.identity ? ` as ${session.identity}` : ''}
        </span>
        {session.identity && (
          <button type="button" onClick={() => (logOut(session), onLogOut())}>Log out</button>
        )}
      </header>
      <main id="main" tabIndex={-1}>
        {current === 'clients' && (rest[0] ? <ClientPage session={session} id={rest[0]} /> : <ClientsView session={session} />)}
        {current === 'sites' && <SitesView session={session} />}
        {current === 'events' && <EventsView session={session} />}
        {current === 'console' && <ConsoleView session={session} />}
        {current === 'history' && <HistoryView session={session} token={rest[0]} />}
        {current === 'topics' && <TopicsView session={session} />}
        {current === 'kv' && <KvView session={session} route={rest} />}
        {current === 'metrics' && <MetricsView session={session} />}
      </main>
    </div>
  );
}
