/** /whoami tells a client how the server authenticated it: DTLS identity, OSCORE layers and EDHOC peers. */
import { ResponseCode } from '../coap/codes.js';
import { ContentFormat } from '../coap/content-format.js';
import type { CoapServer } from '../server/server.js';

/** GET /whoami → "coaps psk client-1 TLS_PSK_WITH_AES_128_CCM_8" (or "coap anonymous"). */
export function addWhoamiResource(server: CoapServer): void {
  server.resource(
    '/whoami',
    {
      GET: (req) => {
        const s = req.context.security;
        return {
          code: ResponseCode.Content,
          contentFormat: ContentFormat.TextPlain,
          payload:
            (s ? `${req.context.scheme} ${s.mode} ${s.identity} ${s.cipherSuite}` : `${req.context.scheme} anonymous`) +
            // An EDHOC-made context names its peer "edhoc NAME" (edhoc-coap/responder.ts).
            (req.context.oscore ?? []).map((layer) => (layer.peer.startsWith('edhoc ') ? ` ${layer.peer}` : ` oscore ${layer.peer}`)).join(''),
        };
      },
    },
    { title: 'how the requester was authenticated (DTLS, OSCORE)' },
  );
}
