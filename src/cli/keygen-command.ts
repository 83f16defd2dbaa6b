/**
 * coapsec keygen --name NAME [--curve C | --suite N [--method 0|3]] [--kid HEX] [--out-dir DIR] [--force]
 * Writes an EDHOC identity: the private key (PKCS#8 PEM, mode 0600), its CCS (RFC 9528 §3.5.2) and
 * a credentials file whose "edhoc" section uses them (docs/credentials.md).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { toHex } from '../cose/index.js';
import { loadCredentials } from '../credentials/credentials-file.js';
import { writeFileDurably } from '../credentials/durable-file.js';
import { CredentialsError } from '../credentials/errors.js';
import { curveForSuite, EDHOC_KEY_CURVES, generateEdhocIdentity, type EdhocKeyCurve } from '../credentials/edhoc-keygen.js';
import { KeyTextError, parseFileKeyString } from '../util/key-text.js';
import { parse } from './args.js';
import { ExitCode, UsageError } from './errors.js';

export const KEYGEN_USAGE = `usage: coapsec keygen --name NAME [--curve ed25519|x25519|p-256 | --suite N [--method 0|3]] [--kid HEX] [--out-dir DIR] [--force]
  writes an EDHOC identity (RFC 9528):
    DIR/NAME.key    the private key, PKCS#8 PEM, mode 0600 (never printed)
    DIR/NAME.ccs    its CWT Claims Set: sub NAME and the public COSE_Key with the kid, in cnf
    DIR/NAME.json   a credentials file whose "edhoc" identity uses both (add the peers you trust)
  and prints the "edhoc.peers" entry with which a peer trusts NAME.
  --curve C               ed25519 (signatures, method 0), x25519 (static DH, method 3) or p-256 (either)
  --suite N               the key cipher suite N needs: its DH curve for --method 3 (default), its
                          signature key for --method 0 (default: --suite 0 --method 3, an X25519 key)
  --kid HEX               the credential's kid (default: 2 random bytes; one byte 00-17 or 20-37
                          travels as a one-byte integer, RFC 9528 §3.5.3.2)
  --out-dir DIR           where to write (default: the current folder; created if missing)
  --force                 overwrite existing files`;

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export async function keygenCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    { name: { type: 'string' }, curve: { type: 'string' }, suite: { type: 'string' }, method: { type: 'string' }, kid: { type: 'string' }, 'out-dir': { type: 'string' }, force: { type: 'boolean' } },
    { min: 0, max: 0, names: '' },
  );
  const name = values.name;
  if (name === undefined) throw new UsageError('keygen needs --name NAME (the CCS subject and the file names)');
  if (!NAME.test(name)) throw new UsageError(`--name must be 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit, got "${name}"`);
  const curve = chooseCurve(values.curve, values.suite, values.method);
  const kid = values.kid === undefined ? randomBytes(2) : parseKid(values.kid);
  const dir = values['out-dir'] ?? '.';
  const files = { key: join(dir, `${name}.key`), ccs: join(dir, `${name}.ccs`), json: join(dir, `${name}.json`) };
  if (!values.force) {
    const existing = Object.values(files).filter((f) => existsSync(f));
    if (existing.length > 0) throw new UsageError(`${existing.join(', ')} exists already (--force overwrites)`);
  }

  const identity = generateEdhocIdentity(curve, name, kid);
  const credentials = {
    $comment: `EDHOC identity ${name} made by coapsec keygen; list the peers you trust in edhoc.peers`,
    edhoc: { identity: { privateKey: `${name}.key`, ccs: `${name}.ccs`, idCred: 'kid' }, peers: [] },
  };
  try {
    mkdirSync(dir, { recursive: true });
    writeFileDurably(files.key, identity.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string);
    writeFileDurably(files.ccs, identity.ccs);
    writeFileDurably(files.json, JSON.stringify(credentials, null, 2) + '\n');
    // What was written must load: the checks of every --credentials apply.
    loadCredentials(files.json);
  } catch (error) {
    if (error instanceof CredentialsError) throw new Error(`the identity written does not load back: ${error.message}`);
    throw new UsageError(`cannot write the identity in ${dir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const peerEntry = { name, ccs: `${name}.ccs`, resources: ['coap://127.0.0.1/*'] };
  process.stdout.write(
    `wrote ${files.key} (private, mode 0600), ${files.ccs} and ${files.json}: ${curve} key, kid ${toHex(kid)}\n` +
      `a peer trusts ${name} with this entry in its "edhoc.peers" (copy ${name}.ccs beside its credentials file; set the resources):\n` +
      `${JSON.stringify(peerEntry)}\n`,
  );
  return ExitCode.Ok;
}

function chooseCurve(curve: string | undefined, suite: string | undefined, method: string | undefined): EdhocKeyCurve {
  if (curve !== undefined) {
    if (suite !== undefined || method !== undefined) throw new UsageError('give --curve, or --suite (with --method), not both');
    const lower = curve.toLowerCase();
    if (!(EDHOC_KEY_CURVES as readonly string[]).includes(lower)) throw new UsageError(`--curve must be one of ${EDHOC_KEY_CURVES.join(', ')}, got "${curve}"`);
    return lower as EdhocKeyCurve;
  }
  if (method !== undefined && method !== '0' && method !== '3') {
    throw new UsageError(`--method must be 0 (signature) or 3 (static DH), got "${method}"; methods 1 and 2 use one key of each kind: make two with --curve`);
  }
  const suiteId = suite === undefined ? 0 : Number(suite);
  if (!Number.isInteger(suiteId)) throw new UsageError(`--suite needs a cipher suite number, got "${suite}"`);
  const chosen = curveForSuite(suiteId, method === '0' ? 'signature' : 'static-dh');
  if (chosen === undefined) throw new UsageError(`--suite ${suiteId}${method === undefined ? '' : ` --method ${method}`}: keygen writes ${EDHOC_KEY_CURVES.join(', ')} keys, which cipher suite ${suiteId} does not use (or it is not supported)`);
  return chosen;
}

function parseKid(text: string): Uint8Array {
  let kid: Uint8Array;
  try {
    kid = parseFileKeyString(text);
  } catch (error) {
    if (error instanceof KeyTextError) throw new UsageError(`--kid: ${error.message}`);
    throw error;
  }
  if (kid.length === 0 || kid.length > 8) throw new UsageError(`--kid needs 1 to 8 bytes in hex, got ${kid.length}`);
  return kid;
}
