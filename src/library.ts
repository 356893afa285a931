/**
 * What both entry points export: the client (but `connect()`, which each entry makes with its
 * runtime), its errors and the protocol helpers. `relais` (src/index.ts) adds Node's `connect()`
 * and the embedded broker; `relais/browser` (src/browser.ts) the browser's `connect()`.
 */
export { Bus } from './client/bus.js';
export { DEFAULTS, checkTimeout, MAX_TIMER_MS } from './client/options.js';
export { newToken } from './client/tokens.js';
export type * from './client/types.js';
export {
  RelaisError,
  TimeoutError,
  NoHandlerError,
  HandlerGoneError,
  CancelledError,
  InvalidMessageError,
  UnknownTokenError,
  RequestEndedError,
  PayloadTooLargeError,
  NotAuthorizedError,
  NotSentError,
  SealingError,
  BusyError,
  RemoteError,
  ResponseCode,
  toWire,
  fromWire,
} from './protocol/errors.js';
export { LOGS_ACTION, LOG_LINE_LEVELS, DEFAULT_LOG_LINES, MAX_LOG_LINES, parseLogsRequest, type LogLineLevel, type LogsRequest, type LogsAnswer, type LogsProgress, type LogsKept } from './protocol/logs.js';
export { toBase64, fromBase64, isBase64Value, type Base64Value } from './protocol/binary.js';
export { PROTOCOL_VERSION, PRIORITIES, MESSAGE_TYPES, EVERYONE, decode, encode, encodeMessage, validate } from './protocol/envelope.js';
export { splitFrame, isBytes, HEADER_END, type WireBody, type Framed } from './protocol/framing.js';
export { SEAL_ALGORITHM, SEAL_MEMBER, SEAL_FAILURES, MAX_SEAL_RECIPIENTS, isSealed, sealedFor, readSealMember, type SealMember, type SealFailure } from './protocol/sealing.js';
export {
  requestTopic,
  responseTopic,
  notificationTopic,
  cancelTopic,
  logTopic,
  presenceTopic,
  parseTopic,
  topicMatches,
  checkClientId,
  parseClientId,
  sessionClientId,
  identityOfClientId,
  type ClientIdParts,
  checkPath,
  checkFilter,
  checkTopicName,
  MAX_TOPIC_LEVELS,
  MAX_TOPIC_BYTES,
  MAX_PATH_LEVELS,
} from './protocol/topics.js';
export {
  HISTORY_ACTIONS,
  HISTORY_KINDS,
  historyQuerySchema,
  parseHistoryQuery,
  matchesQuery,
  endsLifecycle,
  type HistoryRow,
  type HistoryKind,
  type HistoryQuery,
  type HistoryPage,
} from './protocol/history.js';
export type { FollowOptions } from './client/requesting/index.js';
export type { EventsOptions, EventGap, EventCatchUp } from './client/requesting/index.js';
export { EVENTS_ACTION, EVENTS_CATEGORY, EVENT_TYPES, eventsQuerySchema, type BusEvent, type EventType, type EventsPage, type EventBatch } from './protocol/events.js';
export type { FanOutOptions, FanOutResult, FanOutAnswer } from './client/requesting/index.js';
export { ContractError, withContract, describeContract, type Contract } from './client/serving/index.js';
export { CONTRACTS_ACTION, type ContractDescription, type ContractsAnswer } from './protocol/contracts.js';
export {
  REGISTRY_ACTIONS,
  REGISTRY_CATEGORIES,
  CLIENT_STATUSES,
  MAX_REGISTRY_PAGE_LIMIT,
  UnknownClientError,
  readAllPages,
  type RegistryPageRequest,
  type ClientStatus,
  type ClientSummary,
  type ClientDetail,
  type ClientListPayload,
  type ClientDetailPayload,
  type ClientDetailChanges,
} from './protocol/registry.js';
// Sites (protocol §13): what the library knows of the links, and the error of a request to a site that cannot be reached.
export { SiteUnreachableError } from './protocol/errors.js';
export {
  CENTRAL_SITE,
  SITES_ACTION,
  SITES_FILTER,
  siteStatusTopic,
  siteClientsTopic,
  siteAddress,
  siteOfAddress,
  type SiteStatus,
  type SiteClients,
  type SiteEntry,
  type SiteSyncState,
  type SitesAnswer,
} from './protocol/sites.js';
export type { SiteView, DownSite } from './client/presence/index.js';
// The key-value store (protocol §14): bus.kv(bucket), bus.config(schema, { defaults }), the wire and its typed errors.
export * from './protocol/kv.js';
export { KvBucket, type KvValueEntry, type KvWatchEvent, type KvWatchOptions } from './client/kv.js';
export type { ClientConfig, ConfigOptions } from './client/config.js';
