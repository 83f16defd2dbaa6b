/**
 * CoRE Link Format (RFC 6690): the application/link-format payload of /.well-known/core.
 *
 *   link-value-list = [ link-value *[ "," link-value ]]
 *   link-value      = "<" URI-Reference ">" *( ";" link-param )
 *   link-param      = parmname [ "=" ( ptoken / quoted-string ) ]     (RFC 6690 §2)
 *
 * Parsing accepts optional whitespace (including line breaks) around the separators, which many
 * servers emit to keep long listings readable; serializing emits none.
 */

export interface Link {
  /** The URI-Reference between "<" and ">", exactly as written (not resolved, not decoded). */
  href: string;
  /** In document order; repeated names are kept. `true` is a parameter without a value ("obs"). */
  attributes: Array<[string, string | true]>;
}

export class LinkFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LinkFormatError';
  }
}

const charSet = (chars: string): ReadonlySet<string> => new Set(chars);
const ALPHA_DIGIT = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** RFC 5987 §3.2.1 parmname (RFC 6690's link-extension names). */
const PARMNAME_CHARS = charSet(ALPHA_DIGIT + "!#$&+-.^_`|~");
/** RFC 6690 §2 ptokenchar: everything printable but SP, DQUOTE, "," , ";" and "\". */
const PTOKEN_CHARS = charSet(ALPHA_DIGIT + "!#$%&'()*+-./:<=>?@[]^_`{|}~");
/** Characters that can stand in a URI-Reference (RFC 3986 reserved, unreserved and "%"). */
const URI_CHARS = charSet(ALPHA_DIGIT + "-._~:/?#[]@!$&'()*+,;=%");
const WHITESPACE = charSet(' \t\r\n');

/**
 * Always written as quoted strings: RFC 6690 §2 gives title and anchor only the quoted form, and
 * relation-type lists (rel, rev, rt, if) need quotes as soon as they hold more than one value, so
 * they are quoted always, as in the RFC's examples.
 */
const ALWAYS_QUOTED = new Set(['rel', 'rev', 'rt', 'if', 'anchor', 'title']);

const isParmname = (name: string): boolean => name.length > 0 && [...name].every((c) => PARMNAME_CHARS.has(c));
const isPtoken = (value: string): boolean => value.length > 0 && [...value].every((c) => PTOKEN_CHARS.has(c));

function quote(value: string): string {
  // quoted-pair (RFC 2616 §2.2) escapes DQUOTE and "\"; control characters are not TEXT either.
  return `"${value.replace(/["\\\x00-\x1f\x7f]/g, (c) => `\\${c}`)}"`;
}

/** Characters that cannot appear in a URI-Reference are percent-encoded (UTF-8), like a browser would. */
function serializeHref(href: string): string {
  let out = '';
  for (const c of href) {
    out += URI_CHARS.has(c)
      ? c
      : [...new TextEncoder().encode(c)].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');
  }
  return out;
}

function serializeLink(link: Link): string {
  let out = `<${serializeHref(link.href)}>`;
  for (const [name, value] of link.attributes) {
    // ext-name-star ("title*") is only valid for ext-value, which has no quoted form.
    const baseName = name.endsWith('*') ? name.slice(0, -1) : name;
    if (!isParmname(baseName)) throw new LinkFormatError(`invalid link attribute name ${JSON.stringify(name)}`);
    if (value === true) {
      out += `;${name}`;
    } else if (name.endsWith('*')) {
      if (!isPtoken(value)) throw new LinkFormatError(`attribute ${name} needs an RFC 5987 ext-value, got ${JSON.stringify(value)}`);
      out += `;${name}=${value}`;
    } else if (ALWAYS_QUOTED.has(name.toLowerCase()) || !isPtoken(value)) {
      out += `;${name}=${quote(value)}`;
    } else {
      out += `;${name}=${value}`;
    }
  }
  return out;
}

/** The link-format document for these links ("," between links, no whitespace). */
export function serializeLinks(links: readonly Link[]): string {
  return links.map(serializeLink).join(',');
}

/** Parses an application/link-format document. Throws LinkFormatError with the offset of the problem. */
export function parseLinkFormat(text: string): Link[] {
  let pos = 0;
  const fail = (what: string): never => {
    const found = pos < text.length ? JSON.stringify(text[pos]) : 'end of input';
    throw new LinkFormatError(`malformed link-format at offset ${pos}: expected ${what}, found ${found}`);
  };
  const skipWhitespace = (): void => {
    while (pos < text.length && WHITESPACE.has(text[pos]!)) pos++;
  };
  const readWhile = (allowed: ReadonlySet<string>): string => {
    const start = pos;
    while (pos < text.length && allowed.has(text[pos]!)) pos++;
    return text.slice(start, pos);
  };
  const readQuotedString = (): string => {
    pos++; // opening DQUOTE
    let value = '';
    for (;;) {
      if (pos >= text.length) fail('closing \'"\'');
      const c = text[pos++]!;
      if (c === '"') return value;
      if (c === '\\') {
        if (pos >= text.length) fail('a character after "\\"');
        value += text[pos++];
      } else {
        value += c;
      }
    }
  };

  const links: Link[] = [];
  skipWhitespace();
  if (pos === text.length) return links;
  for (;;) {
    if (text[pos] !== '<') fail('"<"');
    const close = text.indexOf('>', pos + 1);
    if (close < 0) {
      pos = text.length;
      fail('">" closing the link target');
    }
    const href = text.slice(pos + 1, close);
    pos = close + 1;
    const attributes: Array<[string, string | true]> = [];
    for (;;) {
      skipWhitespace();
      if (text[pos] !== ';') break;
      pos++;
      skipWhitespace();
      let name = readWhile(PARMNAME_CHARS);
      if (name === '') fail('a link attribute name');
      if (text[pos] === '*') {
        name += '*';
        pos++;
      }
      skipWhitespace();
      if (text[pos] !== '=') {
        attributes.push([name, true]);
        continue;
      }
      pos++;
      skipWhitespace();
      if (text[pos] === '"') {
        attributes.push([name, readQuotedString()]);
      } else {
        const value = readWhile(PTOKEN_CHARS);
        if (value === '') fail(`a value for attribute ${name}`);
        attributes.push([name, value]);
      }
    }
    links.push({ href, attributes });
    if (pos === text.length) return links;
    if (text[pos] !== ',') fail('"," or ";"');
    pos++;
    skipWhitespace();
  }
}

interface LinkFilter {
  name: string;
  /** Absent: the attribute only has to be present. */
  pattern?: { value: string; prefix: boolean };
}

function parseFilter(query: string): LinkFilter {
  const eq = query.indexOf('=');
  if (eq < 0) return { name: query.toLowerCase() };
  const value = query.slice(eq + 1);
  const prefix = value.endsWith('*');
  return { name: query.slice(0, eq).toLowerCase(), pattern: { value: prefix ? value.slice(0, -1) : value, prefix } };
}

function linkMatches(link: Link, filter: LinkFilter): boolean {
  const values: string[] = filter.name === 'href'
    ? [link.href]
    : link.attributes.filter(([name]) => name.toLowerCase() === filter.name).map(([, v]) => (v === true ? '' : v));
  const pattern = filter.pattern;
  if (pattern === undefined) return values.length > 0;
  const matchesPattern = (candidate: string): boolean =>
    pattern.prefix ? candidate.startsWith(pattern.value) : candidate === pattern.value;
  // A space-separated list (rt="a b", ct="40 41") matches when any one of its values does.
  return values.some((v) => matchesPattern(v) || v.split(/\s+/).some((part) => part !== '' && matchesPattern(part)));
}

/**
 * RFC 6690 §4.1 query filtering of /.well-known/core. Each query argument is "name=value" (the
 * decoded Uri-Query value) and selects links whose attribute `name`, or the target for "href",
 * equals value; a value ending in "*" is a prefix match, so "rt=*" keeps links that have any rt.
 * A valueless attribute such as obs counts as the empty value, and an argument without "=" keeps
 * the links that have that attribute at all (an extension: §4.1 defines only name=value).
 * Every argument must match; empty arguments are ignored.
 */
export function filterLinks(links: readonly Link[], queries: readonly string[]): Link[] {
  const filters = queries.filter((q) => q !== '').map(parseFilter);
  return links.filter((link) => filters.every((f) => linkMatches(link, f)));
}
