/**
 * Where and how the request and observe commands show responses:
 *   --json        one JSON object per response (output.ts responseToJson)
 *   -v            code and options on stderr
 *   -o FILE       the payload (or the JSON) to FILE instead of stdout
 *   --pretty      JSON, CBOR and link-format pretty-printed (the default on a terminal)
 *   --raw         the payload bytes as received, also on a terminal
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { codeClass, codeToString } from '../coap/codes.js';
import type { ClientResponse } from '../client/client.js';
import { ExitCode, UsageError } from './errors.js';
import { printVerbose, responseToJson } from './output.js';
import { prettyPayload } from './present.js';

export const OUTPUT_FLAGS = {
  json: { type: 'boolean' },
  verbose: { type: 'boolean', short: 'v' },
  output: { type: 'string', short: 'o' },
  pretty: { type: 'boolean' },
  raw: { type: 'boolean' },
} as const;

export const OUTPUT_USAGE = `  --json                  print each response as one JSON object ("payload", and "decoded" for JSON/CBOR)
  -v, --verbose           print code and options to stderr
  -o, --output FILE       write the payload (or --json output) to FILE instead of stdout
  --pretty                show JSON, CBOR (diagnostic notation) and link-format payloads readably
                          (the default when stdout is a terminal)
  --raw                   the payload bytes exactly as received, also on a terminal`;

export interface OutputFlagValues {
  json?: boolean | undefined;
  verbose?: boolean | undefined;
  output?: string | undefined;
  pretty?: boolean | undefined;
  raw?: boolean | undefined;
}

type Shown = Pick<ClientResponse, 'code' | 'options' | 'payload' | 'contentFormat' | 'text' | 'wire' | 'ok'>;

export interface Output {
  /** -v: code and options on stderr. */
  verbose(response: Shown): void;
  /** The response itself: JSON, pretty or raw payload; a failure status on stderr. */
  response(response: Shown): void;
  close(): void;
}

export function exitCodeOf(code: number): number {
  const cls = codeClass(code);
  return cls === 2 ? ExitCode.Ok : cls === 4 ? ExitCode.ClientError : cls === 5 ? ExitCode.ServerError : ExitCode.Failure;
}

export interface OutputSettings {
  /**
   * A stream of responses (observe): each raw payload ends with a line break, also in a file or a
   * pipe, so one notification never runs into the next.
   */
  linePerResponse?: boolean;
}

/** Opens -o FILE up front, so a bad path is a usage error before anything is sent. */
export function openOutput(values: OutputFlagValues, settings: OutputSettings = {}): Output {
  if (values.pretty && values.raw) throw new UsageError('use either --pretty or --raw, not both');
  let fd = 1;
  if (values.output !== undefined && values.output !== '-') {
    try {
      fd = openSync(values.output, 'w', 0o644);
    } catch (error) {
      throw new UsageError(`-o: cannot open "${values.output}": ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  }
  const toTerminal = fd === 1 && process.stdout.isTTY === true;
  const pretty = values.raw ? false : (values.pretty ?? toTerminal);
  const write = (data: string | Uint8Array): void => {
    if (fd === 1) {
      process.stdout.write(data);
      return;
    }
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    try {
      let written = 0;
      while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written);
    } catch (error) {
      throw new Error(`cannot write to ${values.output}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  };
  return {
    verbose(response) {
      if (values.verbose) printVerbose(response);
    },
    response(response) {
      if (values.json) write(JSON.stringify(responseToJson(response)) + '\n');
      else if (response.payload.length > 0) {
        const shown = pretty ? prettyPayload(response.payload, response.contentFormat) : undefined;
        if (shown !== undefined) write(shown + '\n');
        else {
          write(response.payload);
          if ((toTerminal || settings.linePerResponse) && response.payload[response.payload.length - 1] !== 0x0a) write('\n');
        }
      } else if (settings.linePerResponse) write('\n');
      if (!response.ok && !values.verbose && !values.json) process.stderr.write(`${codeToString(response.code)}\n`);
    },
    close() {
      if (fd !== 1) closeSync(fd);
      fd = 1;
    },
  };
}
