/**
 * RFC 7641 §3.4: is an incoming notification (V2 received at T2) newer than the freshest so far
 * (V1 at T1)? 24-bit serial number arithmetic, and anything after 128 s of silence counts as newer.
 */
const HALF = 1 << 23;
export const FRESHNESS_WINDOW_MS = 128_000;

export function isNewerNotification(v1: number, t1: number, v2: number, t2: number): boolean {
  return (v1 < v2 && v2 - v1 < HALF) || (v1 > v2 && v1 - v2 > HALF) || t2 > t1 + FRESHNESS_WINDOW_MS;
}
