/**
 * The brokers one connection may use (protocol §1.3, "Several brokers"): one endpoint per URL
 * of `ConnectOptions.broker`, and which of them an attempt to connect goes to. A single URL is
 * the list of one.
 */
import mqtt, { type IClientOptions, type IStream, type MqttClient, type StreamBuilder } from 'mqtt';
import { brokerUrlOptions, brokerUrls, redactBroker } from '../options.js';

export interface BrokerEndpoint {
  /** The URL as logs and errors show it (password masked). */
  readonly label: string;
  /** Opens a socket to this broker for `client`, with MQTT.js's own stream for the URL's scheme. */
  open(client: MqttClient): IStream;
  /** The credentials of a CONNECT to this broker: the options', else those written in its URL (as MQTT.js reads one URL). */
  readonly username: string | undefined;
  readonly password: string | Buffer | undefined;
}

/**
 * An endpoint for `url`. MQTT.js parses the URL and picks the stream (TCP, TLS, WebSocket, Unix
 * socket) in `mqtt.connect`; a client made that way without connecting (`manualConnect`) is
 * used for its stream builder only, so each URL keeps its own parsed options: the TLS stream
 * writes the host into them as the certificate's expected name, which must not carry over
 * from one node to the next (what MQTT.js's own `servers` rotation does, besides dropping
 * each URL's path, so Unix sockets and WebSocket paths could not be in the list).
 */
function endpoint(url: string, options: IClientOptions): BrokerEndpoint {
  const parsed = mqtt.connect({ ...brokerUrlOptions(url), ...options, manualConnect: true, reconnectPeriod: 0 });
  // MQTT.js keeps the builder it made for the URL in a field its typings mark private.
  const builder = (parsed as unknown as { streamBuilder: StreamBuilder }).streamBuilder;
  return {
    label: redactBroker(url),
    open: (client) => builder(client),
    username: parsed.options.username,
    password: parsed.options.password,
  };
}

export class BrokerEndpoints {
  private readonly list: readonly BrokerEndpoint[];
  private index = 0;

  /** `options`: what every endpoint shares (credentials, TLS); the session's options stay on the client. */
  constructor(broker: string | readonly string[], options: IClientOptions) {
    this.list = brokerUrls(broker).map((url) => endpoint(url, options));
  }

  get size(): number {
    return this.list.length;
  }

  /** The endpoint the current (or next) attempt uses. */
  get current(): BrokerEndpoint {
    return this.list[this.index]!;
  }

  /** Moves to the next endpoint, the first after the last. */
  next(): BrokerEndpoint {
    this.index = (this.index + 1) % this.list.length;
    return this.current;
  }

  /**
   * A stream builder for the client: each attempt opens a socket to the current endpoint and
   * takes its credentials (MQTT.js writes the CONNECT from `client.options` right after).
   */
  builder(): StreamBuilder {
    return (client) => {
      const target = this.current;
      client.options.username = target.username;
      client.options.password = target.password;
      return target.open(client);
    };
  }
}
