// Transparent mode: recovering where an iptables-redirected connection was going.
// (Stub until the SO_ORIGINAL_DST addon lands: explicit mode only.)
import type { Socket } from 'node:net';
import type { Endpoint } from '../config';

export interface TransparentSupport {
  readonly available: boolean;
  /** Why not, when unavailable (shown in /config_dump). */
  readonly reason: string | undefined;
}

export function transparentSupport(): TransparentSupport {
  return { available: false, reason: 'SO_ORIGINAL_DST addon not built' };
}

/**
 * The address the client dialled before iptables redirected it to us, or undefined when
 * the connection was not redirected (explicit mode) or the addon is unavailable.
 */
export function originalDestination(_socket: Socket): Endpoint | undefined {
  return undefined;
}
