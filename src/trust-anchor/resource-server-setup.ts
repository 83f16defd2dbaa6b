/**
 * Wiring of the resource-server side for `coapsec serve`: DTLS server credentials from the flags,
 * `--acl FILE` and `--trust-anchor ID=KEY`, window persistence, and the /ta/revoke resource.
 */
import { existsSync, readFileSync } from 'node:fs';
import { ResponseCode } from '../coap/codes.js';
import { ContentFormat } from '../coap/content-format.js';
import type { CoapServer } from '../server/server.js';
import type { DtlsServerCredentials } from '../transport/dtls.js';
import type { PskStore } from '../dtls/connection.js';
import { writeFileDurably } from '../credentials/durable-file.js';
import type { ResourceServerAcl } from './config.js';
import { TrustAnchorVerifier, type RejectReason, type TrustAnchorEntry } from './resource-server.js';
import { REVOCATION_PATH } from './revocation.js';
import type { WindowState } from './window.js';

export interface ResourceServerSetup {
  dtls: DtlsServerCredentials | undefined;
  verifier: TrustAnchorVerifier | undefined;
}

function loadWindows(file: string): Record<string, WindowState> | undefined {
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, WindowState>;
  } catch (e) {
    throw new Error(`${file}: unreadable window state: ${(e as Error).message}`);
  }
}

/**
 * Merges flags, ACL and trust anchors into one credential set. The trust anchors' DK identities
 * are looked up first; other identities go to the PSK table of the flags and the ACL. The key of
 * --rpk (or the ACL's rpk.privateKey) is also the key of the AuthorizedPublicKey mode.
 */
export function resourceServerSetup(
  base: DtlsServerCredentials | undefined,
  acl: ResourceServerAcl | undefined,
  anchors: readonly TrustAnchorEntry[],
  options: { windowFile?: string; onReject?: (reason: RejectReason, detail: string) => void } = {},
): ResourceServerSetup {
  const all = [...(acl?.trustAnchors ?? []), ...anchors];
  const creds: DtlsServerCredentials = { ...(base ?? {}) };
  if (acl) {
    if (acl.privateKey && !creds.rpk) creds.rpk = { privateKey: acl.privateKey, trustedPeerKeys: acl.trustedPublicKeys };
    if (acl.x509 && !creds.x509) creds.x509 = acl.x509;
    if (acl.trustedPublicKeys.length > 0 || (acl.x509?.roots.length ?? 0) > 0) creds.requireClientAuth = true;
  }
  // One PSK table: flags first, then the ACL.
  const table = new Map<string, Buffer>();
  const basePsk = base?.psk;
  const fallbackFn: PskStore | undefined = typeof basePsk === 'function' ? basePsk : undefined;
  if (basePsk && typeof basePsk !== 'function')
    for (const p of Array.isArray(basePsk) ? basePsk : [basePsk]) table.set(Buffer.from(p.identity).toString('latin1'), Buffer.from(p.key));
  for (const p of acl?.psk ?? []) if (!table.has(p.identity)) table.set(Buffer.from(p.identity, 'utf8').toString('latin1'), p.key);
  const fallback: PskStore = (id) => table.get(id.toString('latin1')) ?? fallbackFn?.(id);
  let verifier: TrustAnchorVerifier | undefined;
  if (all.length > 0) {
    const windowFile = options.windowFile ?? acl?.windowFile;
    const initialState = windowFile ? loadWindows(windowFile) : undefined;
    verifier = new TrustAnchorVerifier(all, {
      ...(initialState ? { initialState } : {}),
      ...(windowFile ? { onWindowChange: (state) => writeFileDurably(windowFile, JSON.stringify(state) + '\n') } : {}),
      ...(options.onReject ? { onReject: options.onReject } : {}),
    });
    creds.psk = verifier.pskStore(fallback);
    const key = creds.rpk?.privateKey ?? creds.x509?.privateKey;
    if (key) creds.authz = verifier.authz(key);
  } else if (table.size > 0 || fallbackFn) {
    creds.psk = fallback;
  }
  const any = creds.psk || creds.rpk || creds.x509 || creds.authz;
  return { dtls: any ? creds : undefined, verifier };
}

/** POST /ta/revoke: a revocation message (src/trust-anchor/revocation.ts), authenticated by its MAC. */
export function addRevocationResource(server: CoapServer, verifier: TrustAnchorVerifier): void {
  server.resource(
    REVOCATION_PATH,
    {
      POST: (req) => {
        const result = verifier.handleRevocation(req.payload);
        const code =
          result === 'revoked' || result === 'already-used'
            ? ResponseCode.Changed
            : result === 'unknown-ta'
              ? ResponseCode.NotFound
              : result === 'bad-mac'
                ? ResponseCode.Unauthorized
                : ResponseCode.BadRequest;
        return { code, contentFormat: ContentFormat.TextPlain, payload: result };
      },
    },
    { title: 'trust-anchor revocations' },
  );
}
