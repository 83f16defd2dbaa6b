/**
 * Issue 28: OSCORE security contexts as Wireshark's OSCORE preference "oscore_contexts" (a UAT
 * file in the profile directory, or `-o 'uat:oscore_contexts:…'` lines for tshark). One record per
 * (context, recipient), fields as Wireshark 4.0's packet-oscore.c declares them, in order:
 *   "Sender ID","Recipient ID","Master Secret","Master Salt","ID Context","Algorithm"
 * IDs and secrets as hex; Algorithm as the value-string Wireshark shows (it only knows CCM*).
 * Wireshark derives the request key from "Sender ID", so a record is always written from the
 * client's point of view: a server's context is written with its IDs swapped.
 *
 * Debugging only: the file holds master secrets. Written by the CLI's --oscore-export, never logged.
 */
import { appendFileSync, writeFileSync } from 'node:fs';
import { AeadId } from './algorithms.js';
import type { OscoreSecurityContext } from './security-context.js';

export const WIRESHARK_CCM_STAR = 'AES-CCM-16-64-128 (CCM*)';

export interface WiresharkOscoreRecord {
  /** The client's Sender ID (the kid of requests). */
  clientSenderId: Uint8Array;
  /** The server's Sender ID (the client's Recipient ID). */
  serverSenderId: Uint8Array;
  masterSecret: Uint8Array;
  masterSalt?: Uint8Array | undefined;
  idContext?: Uint8Array | undefined;
}

const hex = (b: Uint8Array | undefined) => (b ? Buffer.from(b).toString('hex') : '');

/** One UAT line (a trailing newline not included). */
export function wiresharkOscoreLine(r: WiresharkOscoreRecord): string {
  return [hex(r.clientSenderId), hex(r.serverSenderId), hex(r.masterSecret), hex(r.masterSalt), hex(r.idContext), WIRESHARK_CCM_STAR].map((f) => `"${f}"`).join(',');
}

/** The records of a context: one per recipient; `role` says which side holds it. */
export function wiresharkOscoreRecords(context: OscoreSecurityContext, role: 'client' | 'server'): WiresharkOscoreRecord[] {
  const p = context.exportParameters();
  if ((p.aead ?? AeadId.AES_CCM_16_64_128) !== AeadId.AES_CCM_16_64_128) return [];
  return p.recipientIds.map((recipientId) => ({
    clientSenderId: role === 'client' ? p.senderId : recipientId,
    serverSenderId: role === 'client' ? recipientId : p.senderId,
    masterSecret: p.masterSecret,
    masterSalt: p.masterSalt,
    idContext: p.idContext,
  }));
}

/**
 * Appends each context in use to the file once (contexts derived later, e.g. by the Appendix B.2
 * procedure, are appended when they appear). Wireshark refuses an empty Sender or Recipient ID;
 * such records are reported through `skipped` instead of written.
 */
export class WiresharkOscoreExport {
  private readonly written = new Set<string>();

  constructor(
    readonly path: string,
    private readonly skipped: (reason: string) => void = () => {},
  ) {
    writeFileSync(path, '# coapsec --oscore-export: Wireshark OSCORE contexts (uat:oscore_contexts). CONTAINS MASTER SECRETS.\n', { mode: 0o600 });
  }

  add(context: OscoreSecurityContext, role: 'client' | 'server'): void {
    if ((context.exportParameters().aead ?? AeadId.AES_CCM_16_64_128) !== AeadId.AES_CCM_16_64_128) {
      this.skipped(`context "${context.name}": Wireshark decrypts only AES-CCM-16-64-128`);
      return;
    }
    for (const record of wiresharkOscoreRecords(context, role)) {
      if (record.clientSenderId.length === 0 || record.serverSenderId.length === 0) {
        this.skipped(`context "${context.name}": Wireshark cannot use an empty Sender/Recipient ID`);
        continue;
      }
      const line = wiresharkOscoreLine(record);
      if (this.written.has(line)) continue;
      this.written.add(line);
      appendFileSync(this.path, line + '\n');
    }
  }
}
