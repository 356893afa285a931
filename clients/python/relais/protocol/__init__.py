"""The pure wire rules of Relais (protocol §2-§8, §11-§14), ported from ``src/protocol`` of the
TypeScript library: no socket, no clock (times are epoch ms given by the caller), no asyncio.
The runtime (``relais._client``) imports them from here or from their modules.
"""
from __future__ import annotations

from .bytes import from_base64, is_base64_value, to_base64, utf8_byte_length, wire_bytes
from .encoding import encoding_problem, envelope_text
from .envelope import (
    DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_PRIORITY, EVERYONE, MESSAGE_TYPES, PRIORITIES, PROTOCOL_VERSION, DecodeResult,
    Envelope, Sender, decode, encode, encode_json, encode_message, envelope_problems, parse_json, priority_of, validate,
)
from .framing import HEADER_END, Framed, body_length_problem, split_frame
from .errors import (
    BusyError, CancelledError, HandlerGoneError, InvalidMessageError, NoHandlerError, NotAuthorizedError, NotSentError,
    PayloadTooLargeError, RelaisError, RemoteError, RequestEndedError, ResponseCode, SealingError, SiteUnreachableError,
    TimeoutError, UnknownTokenError, WireError, from_wire, to_wire,
)
from .messages import (
    LOG_LEVELS, cancel_message, command_message, log_message, notification_message, now_ms, presence_message,
    response_message, restamp_accept_by,
)
from .presence import PRESENCE_FIELDS, PresenceOrder, is_older_presence, judge_presence, order_after, parse_presence
from .topics import (
    MAX_PATH_LEVELS, MAX_TOPIC_BYTES, MAX_TOPIC_LEVELS, PRESENCE_FILTER, PRESENCE_PREFIX, RESERVED_SEGMENTS, SYSTEM_ROOT,
    ParsedTopic, cancel_topic, check_client_id, check_filter, check_path, check_topic_name, is_system_action, log_topic,
    notification_topic, parse_topic, presence_topic, request_topic, response_topic, topic_matches,
)
from .ack_clock import AckClock
from .command_admission import Admission, AdmissionAnswer, AdmissionLog, ReplyTo, ServingView, admit_command
from .failure_detector import CEILING_IN_ACK_TIMEOUTS, SUSPICION_IN_ACK_TIMEOUTS, FailureDetector
from .handler_choice import HandlerChoice
from .recent_tokens import RecentTokens
from .request_lifecycle import MAX_OFFERS, RequestEffects, RequestLifecycle, RequestPlan, RequestWorld, Step
from .event_cursor import EVENTS_PAGE, MAX_HELD_EVENTS, Answered, EventCatchUp, EventCursor, EventGap
from .events import EVENT_TYPES, EVENTS_ACTION, EVENTS_CATEGORY
from .kv import (
    CONFIG_BUCKET, CONFIG_SCHEMA_BUCKET, KV_ACTIONS, BucketNotFoundError, ConfigInvalidError, KeyNotFoundError, RevisionConflictError,
    ValueTooLargeError, config_schema_announcement, decode_entry, encode_value, is_up_to_date, kv_error_of,
)
from .contracts import contract_hash
from .history import HISTORY_ACTIONS, HISTORY_KINDS, KILL_ACTION, ends_lifecycle, matches_query, parse_history_query
from .registry import CLIENT_STATUSES, REGISTRY_ACTIONS, REGISTRY_CATEGORIES, UnknownClientError
from .replay_window import ReplayWindows
from .signature import Signer, TrustedKey, Verifier, read_signature, signing_available
from .sealing import (MAX_SEAL_RECIPIENTS, SEAL_ALGORITHM, SEAL_FAILURES, SEAL_MEMBER, is_sealed, open_payload, read_seal_member,
                      seal_payload, sealed_envelope, sealing_available)
from .sites import SITE_DIRECTORY_FILTERS, site_address, site_of_address, site_unreachable
