/**
 * Issue 28: DTLS 1.2 session secrets in the NSS key log format, which Wireshark reads with
 * `tls.keylog_file` and applies to DTLS as well: "CLIENT_RANDOM <client random> <master secret>"
 * (both hex; the master secret is the same whether or not the extended master secret was used).
 *
 * Debugging only: anyone with the file decrypts the sessions. Written by the CLI's --keylog.
 */
import { appendFileSync, writeFileSync } from 'node:fs';
import type { DtlsSessionSecret } from '../dtls/index.js';

export function keyLogLine(secret: DtlsSessionSecret): string {
  return `CLIENT_RANDOM ${secret.clientRandom.toString('hex')} ${secret.masterSecret.toString('hex')}`;
}

/** A key log file: created (mode 0600) when opened, one line appended per session. */
export class KeyLogFile {
  constructor(readonly path: string) {
    writeFileSync(path, '# coapsec --keylog: DTLS session secrets (NSS key log format). CONTAINS SECRETS.\n', { mode: 0o600 });
  }

  readonly onSecret = (secret: DtlsSessionSecret): void => {
    appendFileSync(this.path, keyLogLine(secret) + '\n');
  };
}
