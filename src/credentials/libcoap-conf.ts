/**
 * libcoap's OSCORE configuration file, coap-oscore-conf(5) (libcoap 4.3.x): one
 * `keyword,encoding,value` entry per line, `#` comment lines and blank lines. coapsec reads it
 * (`--oscore-conf FILE[,SEQFILE]`) so one file configures both stacks, and writes it so coapsec can
 * hand libcoap a context.
 *
 * We accept a little more than libcoap (whitespace around commas and values, unquoted values,
 * algorithm names beyond libcoap's two) but write only what libcoap itself parses: no spaces, hex
 * values in quotes, algorithms as integers, and a newline after the last line (libcoap drops a
 * final line without one).
 */
import { readFileSync } from 'node:fs';
import { CredentialsError } from './errors.js';
import {
  type OscoreContextConfig,
  OSCORE_DEFAULTS,
  aeadAlgorithmId,
  bytesToHex,
  checkOscoreContext,
  describeKnownAeadAlgorithms,
  describeKnownHkdfAlgorithms,
  hkdfAlgorithmId,
  parseHex,
} from './oscore-params.js';

type Encoding = 'hex' | 'ascii' | 'integer' | 'text' | 'bool';
const ENCODINGS: readonly Encoding[] = ['hex', 'ascii', 'integer', 'text', 'bool'];

interface KeywordRule {
  encodings: readonly Encoding[];
  repeatable?: boolean;
  /** libcoap test hooks that deliberately corrupt keys: read, warned about, never applied. */
  ignored?: boolean;
}

/** The keyword table of libcoap 4.3.x (src/coap_oscore.c, `oscore_config[]`). */
const KEYWORDS: Readonly<Record<string, KeywordRule>> = {
  master_secret: { encodings: ['hex', 'ascii'] },
  master_salt: { encodings: ['hex', 'ascii'] },
  id_context: { encodings: ['hex', 'ascii'] },
  sender_id: { encodings: ['hex', 'ascii'] },
  recipient_id: { encodings: ['hex', 'ascii'], repeatable: true },
  replay_window: { encodings: ['integer'] },
  ssn_freq: { encodings: ['integer'] },
  aead_alg: { encodings: ['integer', 'text'] },
  hkdf_alg: { encodings: ['integer', 'text'] },
  rfc8613_b_1_2: { encodings: ['bool'] },
  rfc8613_b_2: { encodings: ['bool'] },
  break_sender_key: { encodings: ['bool'], ignored: true },
  break_recipient_key: { encodings: ['bool'], ignored: true },
};

/** Keywords whose values are secret or identifying: their text never appears in an error. */
const FIELD_OF_KEYWORD: Readonly<Record<string, keyof OscoreContextConfig>> = {
  master_secret: 'masterSecret',
  master_salt: 'masterSalt',
  id_context: 'idContext',
  sender_id: 'senderId',
  recipient_id: 'recipientIds',
  replay_window: 'replayWindow',
  ssn_freq: 'sequenceSaveInterval',
  aead_alg: 'aead',
  hkdf_alg: 'hkdf',
  rfc8613_b_1_2: 'echoOnRestart',
  rfc8613_b_2: 'rederivation',
};

export interface LibcoapConfParseResult {
  config: OscoreContextConfig;
  /** Things we read but do not apply (the libcoap key-breaking test hooks). */
  warnings: string[];
}

type Value = Uint8Array | number | boolean;

/**
 * Parses the text of a coap-oscore-conf(5) file. `fileName` is only used in messages. Throws
 * CredentialsError with `fileName:line: ...`.
 */
export function parseLibcoapConf(text: string, fileName = 'oscore.conf'): LibcoapConfParseResult {
  const seen = new Map<string, number>();
  const values = new Map<string, Value[]>();
  const lineOf = new Map<string, number[]>();
  const warnings: string[] = [];
  const lines = text.split('\n');

  lines.forEach((rawLine, index) => {
    const lineNumber = index + 1;
    const fail = (message: string): never => {
      throw new CredentialsError(`${fileName}:${lineNumber}: ${message}`, fileName, lineNumber);
    };
    const line = rawLine.replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) return;

    const firstComma = line.indexOf(',');
    const secondComma = firstComma < 0 ? -1 : line.indexOf(',', firstComma + 1);
    if (secondComma < 0) fail('expected "keyword,encoding,value"');
    const keyword = line.slice(0, firstComma).trim();
    const encodingText = line.slice(firstComma + 1, secondComma).trim();
    const rawValue = line.slice(secondComma + 1).trim();

    const rule = KEYWORDS[keyword];
    if (rule === undefined) fail(`unknown keyword "${keyword}"; known: ${Object.keys(KEYWORDS).join(', ')}`);
    if (!(ENCODINGS as readonly string[]).includes(encodingText)) {
      fail(`${keyword}: unknown encoding "${encodingText}"; known: ${ENCODINGS.join(', ')}`);
    }
    const encoding = encodingText as Encoding;
    if (!rule!.encodings.includes(encoding)) {
      fail(`${keyword}: encoding "${encoding}" is not allowed here; use ${rule!.encodings.join(' or ')}`);
    }
    const previous = seen.get(keyword);
    if (previous !== undefined && !rule!.repeatable) fail(`${keyword} is given twice (first on line ${previous})`);
    seen.set(keyword, previous ?? lineNumber);

    const value = decodeValue(keyword, encoding, unquote(rawValue, keyword, fail), fail);
    if (rule!.ignored) {
      warnings.push(`${fileName}:${lineNumber}: ${keyword} is a libcoap test option; coapsec ignores it`);
      return;
    }
    values.set(keyword, [...(values.get(keyword) ?? []), value]);
    lineOf.set(keyword, [...(lineOf.get(keyword) ?? []), lineNumber]);
  });

  const missing = (keyword: string): never => {
    throw new CredentialsError(`${fileName}: ${keyword} is missing (required by RFC 8613 §3.2)`, fileName, undefined, keyword);
  };
  const single = <T extends Value>(keyword: string): T | undefined => values.get(keyword)?.[0] as T | undefined;

  const config: OscoreContextConfig = {
    masterSecret: single<Uint8Array>('master_secret') ?? missing('master_secret'),
    masterSalt: single<Uint8Array>('master_salt') ?? OSCORE_DEFAULTS.masterSalt,
    senderId: single<Uint8Array>('sender_id') ?? missing('sender_id'),
    recipientIds: (values.get('recipient_id') as Uint8Array[] | undefined) ?? missing('recipient_id'),
    aead: single<number>('aead_alg') ?? OSCORE_DEFAULTS.aead,
    hkdf: single<number>('hkdf_alg') ?? OSCORE_DEFAULTS.hkdf,
    replayWindow: single<number>('replay_window') ?? OSCORE_DEFAULTS.replayWindow,
    echoOnRestart: single<boolean>('rfc8613_b_1_2') ?? OSCORE_DEFAULTS.echoOnRestart,
    rederivation: single<boolean>('rfc8613_b_2') ?? OSCORE_DEFAULTS.rederivation,
    // libcoap's own default is 1 (a write per message); ours trades that for fewer fsyncs.
    sequenceSaveInterval: single<number>('ssn_freq') ?? OSCORE_DEFAULTS.sequenceSaveInterval,
  };
  const idContext = single<Uint8Array>('id_context');
  if (idContext !== undefined) config.idContext = idContext;

  const [problem] = checkOscoreContext(config);
  if (problem !== undefined) {
    const keyword = Object.keys(FIELD_OF_KEYWORD).find((k) => FIELD_OF_KEYWORD[k] === problem.field) ?? problem.field;
    const line = lineOf.get(keyword)?.[problem.index ?? 0];
    const where = line === undefined ? fileName : `${fileName}:${line}`;
    throw new CredentialsError(`${where}: ${keyword}: ${problem.message}`, fileName, line, keyword);
  }
  return { config, warnings };
}

/** A value may be in double quotes; inside them everything is literal (no escapes, as in libcoap). */
function unquote(rawValue: string, keyword: string, fail: (message: string) => never): string {
  if (!rawValue.startsWith('"')) return rawValue;
  const close = rawValue.indexOf('"', 1);
  if (close < 0) fail(`${keyword}: the value's closing double quote is missing`);
  if (rawValue.slice(close + 1).trim() !== '') fail(`${keyword}: unexpected text after the quoted value`);
  return rawValue.slice(1, close);
}

function decodeValue(keyword: string, encoding: Encoding, text: string, fail: (message: string) => never): Value {
  switch (encoding) {
    case 'hex': {
      const bytes = parseHex(text);
      if (!(bytes instanceof Uint8Array)) fail(`${keyword}: ${bytes.problem}`);
      return bytes as Uint8Array;
    }
    case 'ascii':
      for (let i = 0; i < text.length; i++) {
        if (text.charCodeAt(i) > 0x7e) fail(`${keyword}: ascii value has a non-ASCII character at position ${i + 1}`);
      }
      return new Uint8Array(Buffer.from(text, 'latin1'));
    case 'integer': {
      if (!/^[+-]?\d+$/.test(text)) fail(`${keyword}: "${text}" is not an integer`);
      const number = Number(text);
      if (!Number.isSafeInteger(number)) fail(`${keyword}: ${text} is out of range`);
      if (keyword === 'aead_alg' && aeadAlgorithmId(number) === undefined) {
        fail(`aead_alg: unknown AEAD algorithm ${number}; known: ${describeKnownAeadAlgorithms()}`);
      }
      if (keyword === 'hkdf_alg' && hkdfAlgorithmId(number) === undefined) {
        fail(`hkdf_alg: unknown HKDF algorithm ${number}; known: ${describeKnownHkdfAlgorithms()}`);
      }
      return number;
    }
    case 'text': {
      const id = keyword === 'aead_alg' ? aeadAlgorithmId(text) : hkdfAlgorithmId(text);
      if (id === undefined) {
        const known = keyword === 'aead_alg' ? describeKnownAeadAlgorithms() : describeKnownHkdfAlgorithms();
        fail(`${keyword}: unknown algorithm name "${text}"; known: ${known}`);
      }
      return id!;
    }
    case 'bool':
      if (text === 'true') return true;
      if (text === 'false') return false;
      return fail(`${keyword}: "${text}" is not a bool (true or false)`);
  }
}

/** Reads and parses a coap-oscore-conf(5) file; warnings go to `onWarning` when given. */
export function loadLibcoapConf(path: string, onWarning?: (warning: string) => void): OscoreContextConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new CredentialsError(`${path}: cannot read the OSCORE configuration: ${(error as Error).message}`, path);
  }
  const { config, warnings } = parseLibcoapConf(text, path);
  if (onWarning) warnings.forEach(onWarning);
  return config;
}

/**
 * Writes a context in the form libcoap 4.3.x parses. `name` has no libcoap keyword and is left
 * out; everything else round-trips through parseLibcoapConf. The output contains the master
 * secret: write it to a file only the owner can read.
 */
export function formatLibcoapConf(config: OscoreContextConfig): string {
  const hex = (keyword: string, bytes: Uint8Array): string => `${keyword},hex,"${bytesToHex(bytes)}"`;
  const lines = [
    '# OSCORE security context (libcoap coap-oscore-conf(5) format), written by coapsec',
    hex('master_secret', config.masterSecret),
    hex('master_salt', config.masterSalt),
    ...(config.idContext === undefined ? [] : [hex('id_context', config.idContext)]),
    hex('sender_id', config.senderId),
    ...config.recipientIds.map((id) => hex('recipient_id', id)),
    `replay_window,integer,${config.replayWindow}`,
    `ssn_freq,integer,${config.sequenceSaveInterval}`,
    `aead_alg,integer,${config.aead}`,
    `hkdf_alg,integer,${config.hkdf}`,
    `rfc8613_b_1_2,bool,${config.echoOnRestart}`,
    `rfc8613_b_2,bool,${config.rederivation}`,
  ];
  return lines.join('\n') + '\n';
}

/** `--oscore-conf FILE[,SEQFILE]`, split like libcoap's `-E` (at the first comma). */
export interface OscoreConfArgument {
  confPath: string;
  /** Where the Sender Sequence Number is kept; see SequenceNumberStore.openFile. */
  sequenceFile?: string;
}

export function parseOscoreConfArgument(argument: string): OscoreConfArgument {
  const comma = argument.indexOf(',');
  const confPath = comma < 0 ? argument : argument.slice(0, comma);
  const sequenceFile = comma < 0 ? undefined : argument.slice(comma + 1);
  if (confPath === '') throw new CredentialsError('--oscore-conf: the configuration file name is empty');
  if (sequenceFile === '') throw new CredentialsError('--oscore-conf: the sequence number file name after "," is empty');
  return sequenceFile === undefined ? { confPath } : { confPath, sequenceFile };
}
