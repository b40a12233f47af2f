// The wire protocol between the control server and proxies (docs/control-protocol.md).
// It lives on the proxy's side because the proxy defines what it accepts; the control
// server imports it, as it imports the TrafficPolicy decoder.

export const SUBSCRIBE_PATH = '/v1/subscribe';
export const PROTOCOL_VERSION = 1;

/** proxy -> server, first message after the WebSocket opens. */
export interface HelloMessage {
  readonly type: 'hello';
  readonly protocol: number;
  readonly proxyId: string;
  readonly service: string;
  /** Destination services this proxy calls; absent means all of them. */
  readonly egress?: readonly string[];
  /** The version the proxy already runs (from its cache), informational. */
  readonly version?: number;
}

/** server -> proxy: the whole set of TrafficPolicy documents this proxy needs at `version`. */
export interface ConfigMessage {
  readonly type: 'config';
  readonly version: number;
  readonly documents: readonly unknown[];
}

/** proxy -> server: `version` is validated and in force. */
export interface AckMessage {
  readonly type: 'ack';
  readonly version: number;
}

/** proxy -> server: `version` was refused; the previous one stays in force. */
export interface NackMessage {
  readonly type: 'nack';
  readonly version: number;
  readonly reason: string;
}

/** server -> proxy, just before the server closes a connection it cannot serve. */
export interface ErrorMessage {
  readonly type: 'error';
  readonly reason: string;
}

export type ProxyToServer = HelloMessage | AckMessage | NackMessage;
export type ServerToProxy = ConfigMessage | ErrorMessage;

/** WebSocket close codes the server uses (4000-4999 are free for applications). */
export const CLOSE_PROTOCOL_ERROR = 4400;
/** Another connection with the same proxy id took over. */
export const CLOSE_REPLACED = 4409;

/** The longest a NACK reason may be on the wire; longer ones are cut. */
export const MAX_REASON_LENGTH = 2000;
