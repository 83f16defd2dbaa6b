/**
 * CoAP codes (RFC 7252 §3, §12.1; RFC 8132 for FETCH/PATCH/iPATCH, 4.09 and 4.22).
 * A code is one byte: class (3 bits) "." detail (5 bits), written c.dd.
 */

export type Code = number;

export const code = (cls: number, detail: number): Code => (cls << 5) | detail;
export const codeClass = (c: Code): number => c >> 5;
export const codeDetail = (c: Code): number => c & 0x1f;

export const Method = {
  GET: code(0, 1),
  POST: code(0, 2),
  PUT: code(0, 3),
  DELETE: code(0, 4),
  FETCH: code(0, 5),
  PATCH: code(0, 6),
  IPATCH: code(0, 7),
} as const;
export type MethodName = keyof typeof Method;

export const EMPTY_CODE: Code = 0;

export const ResponseCode = {
  Created: code(2, 1),
  Deleted: code(2, 2),
  Valid: code(2, 3),
  Changed: code(2, 4),
  Content: code(2, 5),
  Continue: code(2, 31),
  BadRequest: code(4, 0),
  Unauthorized: code(4, 1),
  BadOption: code(4, 2),
  Forbidden: code(4, 3),
  NotFound: code(4, 4),
  MethodNotAllowed: code(4, 5),
  NotAcceptable: code(4, 6),
  RequestEntityIncomplete: code(4, 8),
  Conflict: code(4, 9),
  PreconditionFailed: code(4, 12),
  RequestEntityTooLarge: code(4, 13),
  UnsupportedContentFormat: code(4, 15),
  UnprocessableEntity: code(4, 22),
  TooManyRequests: code(4, 29),
  InternalServerError: code(5, 0),
  NotImplemented: code(5, 1),
  BadGateway: code(5, 2),
  ServiceUnavailable: code(5, 3),
  GatewayTimeout: code(5, 4),
  ProxyingNotSupported: code(5, 5),
  HopLimitReached: code(5, 8),
} as const;

const CODE_NAMES = new Map<Code, string>([
  [EMPTY_CODE, 'Empty'],
  [Method.GET, 'GET'],
  [Method.POST, 'POST'],
  [Method.PUT, 'PUT'],
  [Method.DELETE, 'DELETE'],
  [Method.FETCH, 'FETCH'],
  [Method.PATCH, 'PATCH'],
  [Method.IPATCH, 'iPATCH'],
  [ResponseCode.Created, 'Created'],
  [ResponseCode.Deleted, 'Deleted'],
  [ResponseCode.Valid, 'Valid'],
  [ResponseCode.Changed, 'Changed'],
  [ResponseCode.Content, 'Content'],
  [ResponseCode.Continue, 'Continue'],
  [ResponseCode.BadRequest, 'Bad Request'],
  [ResponseCode.Unauthorized, 'Unauthorized'],
  [ResponseCode.BadOption, 'Bad Option'],
  [ResponseCode.Forbidden, 'Forbidden'],
  [ResponseCode.NotFound, 'Not Found'],
  [ResponseCode.MethodNotAllowed, 'Method Not Allowed'],
  [ResponseCode.NotAcceptable, 'Not Acceptable'],
  [ResponseCode.RequestEntityIncomplete, 'Request Entity Incomplete'],
  [ResponseCode.Conflict, 'Conflict'],
  [ResponseCode.PreconditionFailed, 'Precondition Failed'],
  [ResponseCode.RequestEntityTooLarge, 'Request Entity Too Large'],
  [ResponseCode.UnsupportedContentFormat, 'Unsupported Content-Format'],
  [ResponseCode.UnprocessableEntity, 'Unprocessable Entity'],
  [ResponseCode.TooManyRequests, 'Too Many Requests'],
  [ResponseCode.InternalServerError, 'Internal Server Error'],
  [ResponseCode.NotImplemented, 'Not Implemented'],
  [ResponseCode.BadGateway, 'Bad Gateway'],
  [ResponseCode.ServiceUnavailable, 'Service Unavailable'],
  [ResponseCode.GatewayTimeout, 'Gateway Timeout'],
  [ResponseCode.ProxyingNotSupported, 'Proxying Not Supported'],
  [ResponseCode.HopLimitReached, 'Hop Limit Reached'],
]);

/** "2.05" */
export function codeToDotted(c: Code): string {
  return `${codeClass(c)}.${String(codeDetail(c)).padStart(2, '0')}`;
}

/** "2.05 Content", or just "2.05" for an unregistered code. */
export function codeToString(c: Code): string {
  const name = CODE_NAMES.get(c);
  return name ? `${codeToDotted(c)} ${name}` : codeToDotted(c);
}

export const isEmptyCode = (c: Code): boolean => c === EMPTY_CODE;
export const isRequestCode = (c: Code): boolean => codeClass(c) === 0 && c !== EMPTY_CODE;
export const isResponseCode = (c: Code): boolean => {
  const cls = codeClass(c);
  return cls >= 2 && cls <= 5;
};
/** Classes 1, 6 and 7 are reserved in CoAP over UDP (RFC 7252 §3; 7.xx is signaling over TCP, RFC 8323). */
export const isReservedCode = (c: Code): boolean => {
  const cls = codeClass(c);
  return cls === 1 || cls === 6 || cls === 7;
};
export const isSuccessCode = (c: Code): boolean => codeClass(c) === 2;

/** RFC 7252 §5.8 method properties, plus RFC 8132 §2–§3 for FETCH, PATCH and iPATCH. */
export const isSafeMethod = (c: Code): boolean => c === Method.GET || c === Method.FETCH;
export const isIdempotentMethod = (c: Code): boolean =>
  c === Method.GET || c === Method.FETCH || c === Method.PUT || c === Method.DELETE || c === Method.IPATCH;

const METHOD_BY_NAME = new Map<string, Code>(
  Object.entries(Method).map(([name, value]) => [name.toLowerCase(), value]),
);
export function methodFromName(name: string): Code | undefined {
  return METHOD_BY_NAME.get(name.toLowerCase());
}
export function methodName(c: Code): string {
  return CODE_NAMES.get(c) ?? codeToDotted(c);
}

/** Parses "2.05", "4.04" or a registered name ("Not Found"); undefined when it is neither. */
export function parseCode(text: string): Code | undefined {
  const m = /^([0-7])\.(\d{2})$/.exec(text.trim());
  if (m) {
    const detail = Number(m[2]);
    return detail < 32 ? code(Number(m[1]), detail) : undefined;
  }
  for (const [c, name] of CODE_NAMES) if (name.toLowerCase() === text.trim().toLowerCase()) return c;
  return undefined;
}
