/**
 * coapsec ta-request --ta URI --rs NAME --credentials FILE --out FILE [--mode dk|apk] [--key KEYFILE]
 * coapsec ta-request --ta URI --rs NAME --credentials FILE --revoke SEQ
 * Asks a trust anchor (over OSCORE) for a credential for resource server NAME and writes it to a
 * file usable with `coapsec get --ta-credential FILE coaps://…` (docs/trust-anchor-modes.md).
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { CoapClient } from '../client/client.js';
import { ContentFormat } from '../coap/content-format.js';
import { writeTaCredential, type TaCredential } from '../trust-anchor/credential-file.js';
import { checkUri, parse } from './args.js';
import { ExitCode, UsageError, noResponse } from './errors.js';
import { KEY_EXPORT_FLAGS, KEY_EXPORT_USAGE, keyExport } from './keylog-args.js';
import { clientOscore } from './oscore-args.js';
import { generatePrivateKey, CoseCurve } from '../cose/index.js';

export const TA_REQUEST_USAGE = `usage: coapsec ta-request --ta URI --rs NAME --credentials FILE --out FILE [--mode dk|apk] [--key KEYFILE]
       coapsec ta-request --ta URI --rs NAME --credentials FILE --revoke SEQ
  --ta URI                the trust anchor (coap://host:port), reached over OSCORE
  --rs NAME               the resource server to get a credential for
  --credentials FILE      OSCORE credentials for the trust anchor
  --out FILE              where to write the credential (mode 0600); use with --ta-credential
  --mode dk|apk           DerivedKey (default) or AuthorizedPublicKey
  --key KEYFILE           apk: our EC P-256 private key (PEM); default: a new key, stored in --out
  --revoke SEQ            ask the trust anchor to revoke sequence number SEQ at NAME (administrators)
${KEY_EXPORT_USAGE}`;

function privateKeyOf(file: string): KeyObject {
  let k: KeyObject;
  try {
    k = createPrivateKey(readFileSync(file));
  } catch (error) {
    throw new UsageError(`--key: cannot read a PEM private key from "${file}": ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  if (k.asymmetricKeyType !== 'ec' || k.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new UsageError('--key: only EC P-256 keys are supported');
  return k;
}

export async function taRequestCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      ta: { type: 'string' },
      rs: { type: 'string' },
      credentials: { type: 'string' },
      out: { type: 'string' },
      mode: { type: 'string' },
      key: { type: 'string' },
      revoke: { type: 'string' },
      ...KEY_EXPORT_FLAGS,
    },
    { min: 0, max: 0, names: '' },
  );
  if (values.ta === undefined || values.rs === undefined || values.credentials === undefined) throw new UsageError('ta-request needs --ta URI, --rs NAME and --credentials FILE');
  const base = checkUri(values.ta).replace(/\/+$/, '');
  const mode = values.mode ?? 'dk';
  if (mode !== 'dk' && mode !== 'apk') throw new UsageError('--mode must be dk or apk');
  let body: Record<string, unknown> = { rs: values.rs };
  let path: string;
  let privateKey: KeyObject | undefined;
  if (values.revoke !== undefined) {
    if (values.out !== undefined || values.mode !== undefined || values.key !== undefined) throw new UsageError('--revoke takes no --out, --mode or --key');
    if (!/^[1-9][0-9]{0,9}$/.test(values.revoke) || Number(values.revoke) > 0xffffffff) throw new UsageError('--revoke: a sequence number 1..4294967295');
    body.sequence = Number(values.revoke);
    path = '/ta/revoke';
  } else {
    if (values.out === undefined) throw new UsageError('ta-request needs --out FILE');
    if (mode === 'apk') {
      privateKey = values.key !== undefined ? privateKeyOf(values.key) : generatePrivateKey(CoseCurve.P256);
      body = { ...body, spki: createPublicKey(privateKey).export({ type: 'spki', format: 'der' }).toString('base64') };
      path = '/ta/apk';
    } else {
      if (values.key !== undefined) throw new UsageError('--key is for --mode apk');
      path = '/ta/dk';
    }
  }
  const keys = keyExport(values);
  const oscore = clientOscore({ credentials: values.credentials });
  const uri = base + path;
  if (!oscore.security?.(uri)) {
    oscore.close();
    throw new UsageError(`--credentials: no OSCORE context matches ${uri}`);
  }
  const client = new CoapClient({ security: keys.clientSecurity(oscore.security) });
  try {
    const response = await client.request({ method: 'POST', uri, payload: JSON.stringify(body), contentFormat: ContentFormat.Json, timeout: 20_000 });
    if (!response.ok) {
      process.stderr.write(`coapsec: trust anchor refused: ${response.status}${response.payload.length ? `: ${response.text()}` : ''}\n`);
      return response.code >> 5 === 4 ? ExitCode.ClientError : ExitCode.ServerError;
    }
    const r = JSON.parse(response.text()) as Record<string, unknown>;
    if (values.revoke !== undefined) {
      process.stdout.write(`revoked ${String(r['rs'])} sequence ${String(r['sequence'])}: ${String(r['result'])}\n`);
      return ExitCode.Ok;
    }
    const credential: TaCredential =
      mode === 'dk'
        ? { mode: 'DerivedKey', ta: String(r['ta']), rs: String(r['rs']), sequence: Number(r['sequence']), identity: String(r['identity']), key: String(r['key']) }
        : {
            mode: 'AuthorizedPublicKey',
            ta: String(r['ta']),
            rs: String(r['rs']),
            sequence: Number(r['sequence']),
            macCert: String(r['macCert']),
            privateKey: privateKey!.export({ type: 'pkcs8', format: 'pem' }).toString(),
            serverPublicKey: String(r['serverPublicKey']),
          };
    writeTaCredential(values.out!, credential);
    process.stdout.write(
      `wrote ${values.out}: ${credential.mode} for ${credential.rs}, trust anchor ${credential.ta}, sequence ${credential.sequence}` +
        (credential.mode === 'DerivedKey' ? `, psk_identity ${credential.identity}` : '') +
        '\n',
    );
    return ExitCode.Ok;
  } catch (error) {
    return noResponse(error);
  } finally {
    await client.close();
    oscore.close();
  }
}
