/** The `relais` package: the client library, the protocol helpers and the embedded broker. */
export { connect, Bus, DEFAULTS, checkTimeout, MAX_TIMER_MS } from './client/index.js';
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
  BusyError,
  RemoteError,
  ResponseCode,
  toWire,
  fromWire,
} from './protocol/errors.js';
export { LOGS_ACTION, LOG_LINE_LEVELS, DEFAULT_LOG_LINES, MAX_LOG_LINES, parseLogsRequest, type LogLineLevel, type LogsRequest, type LogsAnswer, type LogsProgress, type LogsKept } from './protocol/logs.js';
export { toBase64, fromBase64, isBase64Value, type Base64Value } from './protocol/binary.js';
export { PROTOCOL_VERSION, PRIORITIES, MESSAGE_TYPES, EVERYONE, decode, encode, validate } from './protocol/envelope.js';
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
export type { FollowOptions } from './client/follow.js';
export type { EventsOptions, EventGap } from './client/event-feed.js';
export { EVENTS_ACTION, EVENTS_CATEGORY, EVENT_TYPES, eventsQuerySchema, type BusEvent, type EventType, type EventsPage, type EventBatch } from './protocol/events.js';
export type { FanOutOptions, FanOutResult, FanOutAnswer } from './client/fan-out.js';
export { ContractError, withContract, describeContract, type Contract } from './client/contracts.js';
export { CONTRACTS_ACTION, type ContractDescription, type ContractsAnswer } from './protocol/contracts.js';
export { asyncApiDocument, type ServedContract } from './protocol/asyncapi.js';
export { startEmbeddedBroker, BrokerStartError, BROKER_DEFAULTS, BROKER_LIMITS, isLoopbackHost, type EmbeddedBroker, type EmbeddedBrokerOptions, type BrokerLimits } from './broker/index.js';
export {
  REGISTRY_ACTIONS,
  REGISTRY_CATEGORIES,
  CLIENT_STATUSES,
  UnknownClientError,
  type ClientStatus,
  type ClientSummary,
  type ClientDetail,
  type ClientListPayload,
  type ClientDetailPayload,
  type ClientDetailChanges,
} from './protocol/registry.js';
