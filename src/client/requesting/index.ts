/**
 * The requesting side (protocol §4.1, §4.3–§4.7, §11.2, §11.7, §11.8): requests and calls,
 * each the Node shell of a lifecycle in src/protocol/request-lifecycle.ts; the choice of a
 * handler and the failure detector behind it; fan-out, following a token, the event feed.
 */
export { Requester } from './requester.js';
export { requestAll, type FanOutAnswer, type FanOutOptions, type FanOutResult } from './fan-out.js';
export { followRows, followToken, type FollowOptions } from './follow.js';
export { eventFeed, type EventCatchUp, type EventFeedClient, type EventGap, type EventsOptions } from './event-feed.js';
