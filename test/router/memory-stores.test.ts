/** The memory stores are whole stores: the contract suites of the SQLite ones, unchanged. */
import { MemoryEventLog } from '../../src/router/memory-event-log.js';
import { MemoryHistoryStore } from '../../src/router/memory-history-store.js';
import { eventLogContract } from './event-log-contract.js';
import { historyStoreContract } from './history-store-contract.js';

historyStoreContract('memory', { open: (now) => new MemoryHistoryStore({ now }) });
eventLogContract('memory', { open: (now) => new MemoryEventLog({ now }) });
