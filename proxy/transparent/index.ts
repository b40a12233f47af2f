// Transparent mode: recovering where an iptables-redirected connection was going
// (SO_ORIGINAL_DST through a small N-API addon built by `npm install`).
import type { Socket } from 'node:net';
import type { Endpoint } from '../config';
import { loadOriginalDstAddon, OriginalDstAddon } from './addon';

export interface TransparentSupport {
  readonly available: boolean;
  /** Why not, when unavailable (shown in /config_dump). */
  readonly reason: string | undefined;
}

// Loaded once: a failed build or a non-Linux platform is a fact of this process's life.
let loaded: { addon: OriginalDstAddon | undefined; reason: string | undefined } | undefined;

function addon(): OriginalDstAddon | undefined {
  loaded ??= loadOriginalDstAddon();
  return loaded.addon;
}

export function transparentSupport(): TransparentSupport {
  addon();
  return { available: loaded!.addon !== undefined, reason: loaded!.reason };
}

/**
 * The address the client dialled before iptables redirected it to us, or undefined when
 * the connection was not redirected (explicit mode) or the addon is unavailable.
 * One getsockopt per call: callers cache it per connection.
 */
export function originalDestination(socket: Socket): Endpoint | undefined {
  const native = addon();
  if (!native) return undefined;
  const fd = socketFd(socket);
  if (fd === undefined) return undefined;
  let answer: ReturnType<OriginalDstAddon['getOriginalDst']>;
  try {
    answer = native.getOriginalDst(fd);
  } catch {
    return undefined;
  }
  if (!('address' in answer)) return undefined; // ENOENT: conntrack has no NAT for it
  const host = unmapIPv4(answer.address);
  // Conntrack answers for any tracked connection; one that was not rewritten reports the
  // address it was accepted on, which is no original destination at all.
  if (answer.port === socket.localPort && host === unmapIPv4(socket.localAddress ?? '')) return undefined;
  return { host, port: answer.port };
}

/** The kernel descriptor behind a net.Socket (libuv exposes it on the TCP handle). */
export function socketFd(socket: Socket): number | undefined {
  const handle = (socket as unknown as { _handle?: { fd?: unknown } })._handle;
  const fd = handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** `::ffff:10.0.0.1` (IPv4 on a dual-stack socket) as the plain IPv4 address. */
function unmapIPv4(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
