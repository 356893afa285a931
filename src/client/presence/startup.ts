/**
 * A client's first connection (protocol §7.2): subscribe to the presences (only our own for an on-demand directory), announce our own,
 * and be ready once it comes back, the broker having sent every retained presence before it,
 * so the directory is loaded. Fails with NotSentError when any step cannot be done, or when
 * another client takes our id meanwhile (§7.5).
 */
import type { Logger } from 'pino';
import { NotSentError } from '../../protocol/errors.js';
import { SITE_DIRECTORY_FILTERS } from '../../protocol/sites.js';
import { PRESENCE_FILTER } from '../../protocol/topics.js';
import type { Directory } from './directory.js';
import type { Presence } from './presence.js';
import type { Transport } from '../connection/index.js';
import { waitFor } from '../wait.js';

export class Startup {
  /** Resolves when the client is connected and its directory loaded. */
  readonly ready: Promise<void>;
  private failLoading!: (error: Error) => void;

  constructor(
    private readonly transport: Transport,
    private readonly directory: Directory,
    private readonly presence: Presence,
    connectTimeout: number,
    private readonly logger: Logger,
    /** `relais/presence/+`, or only our own presence for an on-demand directory (protocol §7.2). */
    private readonly presenceFilter: string = PRESENCE_FILTER,
  ) {
    const loadingFailed = new Promise<never>((_, reject) => (this.failLoading = reject));
    loadingFailed.catch(() => {});
    this.ready = transport.ready().then(() =>
      waitFor<void>(
        {
          timeout: connectTimeout,
          timeoutError: () => new NotSentError(`connected to ${transport.brokerLabel}, but our presence did not come back within ${connectTimeout} ms (does the broker's ACL allow relais/presence/#?)`),
        },
        (settle) => {
          this.directory.loaded.then(() => settle(undefined));
          loadingFailed.catch((error: Error) => settle(error));
        },
      ),
    );
    this.ready.catch(() => {});
  }

  /**
   * The main lane's first CONNACK: subscribe to the sites' links and rosters (protocol §13.4)
   * and to the presences, then announce ours. The sites' filters go first, so their retained
   * messages come before our own presence, the loading barrier (§7.2); a broker that refuses them
   * (a policy older than sites) costs this client only the fast failure for a site that is down.
   */
  begin(): void {
    for (const filter of SITE_DIRECTORY_FILTERS) {
      this.transport.subscribe(filter, 'main').catch((error: Error) => this.logger.info({ err: error.message }, `not subscribed to ${filter}: requests to the clients of a site whose link is down are not failed at once`));
    }
    this.transport.subscribe(this.presenceFilter, 'main').then(
      () => this.presence.announce().catch((error: Error) => this.fail(new NotSentError(`cannot publish our presence: ${error.message}`, { cause: error }))),
      (error: Error) => this.fail(new NotSentError(`cannot subscribe to ${this.presenceFilter}: ${error.message}`, { cause: error })),
    );
  }

  /** Ends a start that has not finished (a no-op once ready). */
  fail(error: Error): void {
    this.failLoading(error);
  }
}
