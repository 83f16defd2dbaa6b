/**
 * The resources `coapsec serve` offers: small, but each exercises a part of the protocol —
 * text, echo of every method with a body, Max-Age 0, validation with 4.00 diagnostics,
 * FETCH/PATCH/iPATCH with ETags (RFC 8132), a changing resource, a large one, files.
 */
import { ResponseCode } from '../coap/codes.js';
import { ContentFormat } from '../coap/content-format.js';
import { OptionNumber } from '../coap/options.js';
import type { CoapRequest, CoapResponse, ResourceDefinition } from '../server/resource.js';
import type { CoapServer } from '../server/server.js';
import { fileResource } from './files.js';

export interface DemoOptions {
  /** Serve the files below this folder, read-only. */
  dir?: string;
  /** Clock for /time; tests pass a fixed one. */
  now?: () => Date;
  /** Notify /time's observers every second. Default true; lockstep tests call server.changed themselves. */
  tick?: boolean;
}

export const LARGE_SIZE = 8192;

/** How long the Echo value of a /valve challenge stays fresh. */
export const VALVE_FRESHNESS_MS = 10_000;

/** 8 KiB of numbered lines: easy to check for a lost or reordered block. */
export function largeText(): string {
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < LARGE_SIZE; i++) {
    const line = `${String(i).padStart(4, '0')} coapsec large resource: block-wise transfers slice this text.\n`;
    lines.push(line);
    size += line.length;
  }
  return lines.join('').slice(0, LARGE_SIZE);
}

export function addDemoResources(server: CoapServer, options: DemoOptions = {}): void {
  const now = options.now ?? (() => new Date());
  server.add({
    path: '/hello',
    title: 'Hello',
    rt: 'demo.hello',
    ct: ContentFormat.TextPlain,
    handlers: { GET: () => ({ code: ResponseCode.Content, contentFormat: ContentFormat.TextPlain, payload: 'Hello from coapsec' }) },
  });
  server.add(echoResource());
  server.add(alarmResource());
  server.add(valveResource());
  server.add(configResource());
  server.add({
    path: '/time',
    title: 'Current time',
    rt: 'demo.time',
    ct: ContentFormat.TextPlain,
    // Changes every second: NON notifications, with the periodic CON of RFC 7641 §4.5.
    observable: { notifications: 'non' },
    handlers: {
      // Changes every second, so it is fresh for one second.
      GET: () => ({ code: ResponseCode.Content, contentFormat: ContentFormat.TextPlain, maxAge: 1, payload: now().toISOString().replace(/\.\d+Z$/, 'Z') }),
    },
  });
  if (options.tick !== false) {
    const timer = setInterval(() => server.changed('/time'), 1000);
    timer.unref();
    server.onClose(() => clearInterval(timer));
  }
  const large = largeText();
  server.add({
    path: '/large',
    title: 'Large resource',
    rt: 'demo.large',
    ct: ContentFormat.TextPlain,
    sz: LARGE_SIZE,
    handlers: { GET: () => ({ code: ResponseCode.Content, contentFormat: ContentFormat.TextPlain, payload: large }) },
  });
  if (options.dir !== undefined) server.add(fileResource(options.dir));
}

function echoResource(): ResourceDefinition {
  const echo = (code: number) => (request: CoapRequest): CoapResponse => ({
    code,
    payload: request.payload,
    ...(request.contentFormat !== undefined ? { contentFormat: request.contentFormat } : {}),
  });
  return {
    path: '/echo',
    title: 'Echo',
    rt: 'demo.echo',
    handlers: { POST: echo(ResponseCode.Changed), PUT: echo(ResponseCode.Changed), FETCH: echo(ResponseCode.Content) },
  };
}

function alarmResource(): ResourceDefinition {
  let state = { alarm: false, since: new Date().toISOString() };
  return {
    path: '/alarm',
    title: 'Alarm status',
    rt: 'demo.alarm',
    ct: ContentFormat.Json,
    handlers: {
      // Max-Age 0: an alarm status must never be served from a cache.
      GET: () => ({ code: ResponseCode.Content, contentFormat: ContentFormat.Json, maxAge: 0, payload: JSON.stringify(state) }),
      PUT: (request) => {
        const text = request.text().trim();
        if (text !== 'on' && text !== 'off') return { code: ResponseCode.BadRequest, payload: 'alarm state must be "on" or "off"' };
        state = { alarm: text === 'on', since: new Date().toISOString() };
        return { code: ResponseCode.Changed };
      },
    },
  };
}

function valveResource(): ResourceDefinition {
  let level = 0;
  return {
    path: '/valve',
    title: 'Valve level 0-10',
    rt: 'demo.valve',
    ct: ContentFormat.TextPlain,
    // An actuator: a PUT held back by an intermediary and released later must not act (RFC 9175
    // §2.3, seed 002 §2.1.1.2 "Delaying"). A PUT without a fresh Echo gets 4.01 + Echo first.
    freshness: { maxAgeMs: VALVE_FRESHNESS_MS },
    handlers: {
      GET: () => ({ code: ResponseCode.Content, contentFormat: ContentFormat.TextPlain, maxAge: 0, payload: String(level) }),
      PUT: (request) => {
        if (request.contentFormat !== undefined && request.contentFormat !== ContentFormat.TextPlain) {
          return { code: ResponseCode.UnsupportedContentFormat, payload: 'send the level as text/plain' };
        }
        const text = request.text().trim();
        const value = /^\d{1,2}$/.test(text) ? Number(text) : NaN;
        if (!(value >= 0 && value <= 10)) return { code: ResponseCode.BadRequest, payload: `level must be an integer from 0 to 10, got "${text.slice(0, 20)}"` };
        level = value;
        return { code: ResponseCode.Changed };
      },
    },
  };
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

type JsonObject = { [key: string]: Json };

/**
 * RFC 7396 JSON Merge Patch. Every object it builds has a null prototype: member names such as
 * "__proto__", "constructor" or "prototype" are plain data, so a patch can neither replace the
 * document's prototype (`result["__proto__"] = …` on an ordinary object would) nor read inherited
 * members as if they were the document's.
 */
function mergePatch(target: Json, patch: Json): Json {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const result: JsonObject = Object.create(null) as JsonObject;
  if (isJsonObject(target)) for (const [key, value] of Object.entries(target)) result[key] = value;
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(Object.hasOwn(result, key) ? result[key]! : null, value);
  }
  return result;
}

function isJsonObject(value: Json): value is JsonObject {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * A JSON configuration document for RFC 8132: FETCH selects keys, PATCH and iPATCH apply a JSON
 * Merge Patch (Content-Format 52, idempotent, so both methods fit), If-Match guards against lost
 * updates (4.12), a read-only key gives 4.09 Conflict, a patch leaving a non-object gives 4.22.
 */
function configResource(): ResourceDefinition {
  let config = mergePatch(null, { id: 'coapsec-demo', interval: 10, unit: 'celsius' }) as JsonObject;
  let version = 1;
  const etag = (): Uint8Array => Uint8Array.of(version >> 8, version & 0xff);
  const read = (): CoapResponse => ({ code: ResponseCode.Content, contentFormat: ContentFormat.Json, etag: etag(), payload: JSON.stringify(config) });

  const patch = (request: CoapRequest): CoapResponse => {
    if (request.contentFormat !== ContentFormat.MergePatchJson) {
      return { code: ResponseCode.UnsupportedContentFormat, payload: 'send application/merge-patch+json (52)' };
    }
    const ifMatch = request.options.filter((o) => o.number === OptionNumber.IfMatch);
    if (ifMatch.length > 0 && !ifMatch.some((o) => Buffer.from(o.value).equals(Buffer.from(etag())))) {
      return { code: ResponseCode.PreconditionFailed, payload: 'the configuration changed since that ETag' };
    }
    let document: Json;
    try {
      document = JSON.parse(request.text()) as Json;
    } catch {
      return { code: ResponseCode.BadRequest, payload: 'patch is not valid JSON' };
    }
    if (isJsonObject(document) && Object.hasOwn(document, 'id')) {
      return { code: ResponseCode.Conflict, payload: '"id" is read-only' };
    }
    const next = mergePatch(config, document);
    if (!isJsonObject(next)) {
      return { code: ResponseCode.UnprocessableEntity, payload: 'the patched configuration must stay a JSON object' };
    }
    config = next;
    version = (version + 1) & 0xffff;
    return { code: ResponseCode.Changed, etag: etag() };
  };

  return {
    path: '/config',
    title: 'Configuration',
    rt: 'demo.config',
    ct: ContentFormat.Json,
    handlers: {
      GET: read,
      FETCH: (request) => {
        if (request.contentFormat !== ContentFormat.Json) return { code: ResponseCode.UnsupportedContentFormat, payload: 'send a JSON array of keys' };
        let keys: unknown;
        try {
          keys = JSON.parse(request.text());
        } catch {
          return { code: ResponseCode.BadRequest, payload: 'FETCH body is not valid JSON' };
        }
        if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string')) return { code: ResponseCode.BadRequest, payload: 'FETCH body must be a JSON array of keys' };
        const selected = Object.fromEntries(keys.filter((k) => Object.hasOwn(config, k)).map((k) => [k, config[k]!]));
        return { code: ResponseCode.Content, contentFormat: ContentFormat.Json, payload: JSON.stringify(selected) };
      },
      PATCH: patch,
      IPATCH: patch,
    },
  };
}
