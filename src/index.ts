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
export { startEmbeddedBroker, BrokerStartError, BROKER_DEFAULTS, isLoopbackHost, type EmbeddedBroker, type EmbeddedBrokerOptions } from './broker/index.js';
