/**
 * The resources of the OSCORE test specification (shared/specs/oscore-interop-test-spec.txt §2,
 * "Resources"), for `coapsec serve --plugtest`. Every resource but /oscore/hello/coap requires OSCORE.
 * The observable ones notify on the server's scheduler, one second apart, after each registration.
 */
import { ResponseCode } from '../coap/codes.js';
import { ContentFormat } from '../coap/content-format.js';
import { OptionNumber } from '../coap/options.js';
import { getUintOption } from '../coap/message.js';
import type { CoapRequest, CoapResponse } from '../server/resource.js';
import type { CoapServer } from '../server/server.js';

const HELLO = 'Hello World!';
const text = (payload: string | Uint8Array, extra: Partial<CoapResponse> = {}): CoapResponse => ({
  code: ResponseCode.Content,
  contentFormat: ContentFormat.TextPlain,
  payload,
  ...extra,
});

export const NOTIFICATION_INTERVAL_MS = 1000;

export function addPlugtestResources(server: CoapServer): void {
  server.resource('/oscore/hello/coap', { GET: () => text(HELLO) });
  server.add({ path: '/oscore/hello/1', requireOscore: true, handlers: { GET: () => text(HELLO) } });
  // TEST_3: ETag 0x2b (the request carries Uri-Query first=1).
  server.add({ path: '/oscore/hello/2', requireOscore: true, handlers: { GET: () => text(HELLO, { etag: Uint8Array.of(0x2b) }) } });
  // TEST_4: Accept 0 and Max-Age 5.
  server.add({ path: '/oscore/hello/3', requireOscore: true, handlers: { GET: () => text(HELLO, { maxAge: 5 }) } });

  // TEST_8: POST changes the value and returns it.
  let value6: Uint8Array = new Uint8Array(0);
  server.add({
    path: '/oscore/hello/6',
    requireOscore: true,
    handlers: {
      POST: (request) => {
        value6 = Buffer.from(request.payload);
        return { code: ResponseCode.Changed, contentFormat: ContentFormat.TextPlain, payload: value6 };
      },
    },
  });

  // TEST_9/10: PUT with If-Match 0x7b succeeds; If-None-Match on the existing resource gets 4.12.
  const etag7 = Uint8Array.of(0x7b);
  let value7: Uint8Array = new Uint8Array(0);
  server.add({
    path: '/oscore/hello/7',
    requireOscore: true,
    handlers: {
      PUT: (request: CoapRequest) => {
        const ifMatch = request.options.filter((o) => o.number === OptionNumber.IfMatch);
        const ifNoneMatch = request.options.some((o) => o.number === OptionNumber.IfNoneMatch);
        // RFC 7252 §5.10.8: preconditions on the current representation.
        if (ifNoneMatch || (ifMatch.length > 0 && !ifMatch.some((o) => Buffer.from(o.value).equals(Buffer.from(etag7))))) {
          return { code: ResponseCode.PreconditionFailed };
        }
        value7 = Buffer.from(request.payload);
        return { code: ResponseCode.Changed, contentFormat: ContentFormat.TextPlain, payload: value7 };
      },
    },
  });

  // TEST_6 and TEST_7: "one", "two"; observe1 then ends with 5.00 "Terminate Observe".
  addCountingObservable(server, '/oscore/observe1', true);
  addCountingObservable(server, '/oscore/observe2', false);

  // TEST_11: DELETE.
  server.add({ path: '/oscore/test', requireOscore: true, handlers: { DELETE: () => ({ code: ResponseCode.Deleted }) } });
}

function addCountingObservable(server: CoapServer, path: string, terminate: boolean): void {
  const states = ['one', 'two'];
  let step = 0;
  server.add({
    path,
    requireOscore: true,
    observable: true,
    handlers: {
      GET: (request) => {
        if (!request.notification && getUintOption(request, OptionNumber.Observe) === 0) {
          step = 0;
          const scheduler = server.endpoint.scheduler;
          scheduler.schedule(NOTIFICATION_INTERVAL_MS, () => {
            step = 1;
            server.changed(path);
            if (terminate) {
              scheduler.schedule(NOTIFICATION_INTERVAL_MS, () => {
                step = 2;
                server.changed(path);
              });
            }
          });
        }
        if (step >= states.length) return { code: ResponseCode.InternalServerError, contentFormat: ContentFormat.TextPlain, payload: 'Terminate Observe' };
        return text(states[step]!);
      },
    },
  });
}
