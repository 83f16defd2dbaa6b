/**
 * The request commands' ACE flags (RFC 9203, draft-ietf-ace-edhoc-oscore-profile, docs/ace.md):
 *   --ace-as URI        get an access token from this AS token endpoint (over the OSCORE context
 *                       --credentials has for it), post it to the RS and protect the request with
 *                       the context derived from it; when --credentials has an "edhoc" identity,
 *                       the EDHOC and OSCORE profile: the token is bound to that credential and
 *                       EDHOC with the RS makes the context
 *   --ace-audience AUD  the audience to ask for (default: the one the RS's Creation Hints name)
 *   --ace-scope SCOPE   the scope to ask for (default: what the AS grants)
 */
import { AceClientSecurity } from '../ace/client.js';
import { AceEdhocClientSecurity } from '../ace/edhoc-client.js';
import type { CoapClient } from '../client/client.js';
import type { MessageSecurity } from '../client/security.js';
import { loadCredentials } from '../credentials/credentials-file.js';
import { edhocInitiatorConfig } from '../credentials/edhoc-entries.js';
import { CredentialsError } from '../credentials/errors.js';
import { checkUri } from './args.js';
import { UsageError } from './errors.js';

export const ACE_CLIENT_FLAGS = {
  'ace-as': { type: 'string' },
  'ace-audience': { type: 'string' },
  'ace-scope': { type: 'string' },
} as const;

export const ACE_CLIENT_USAGE = `  ACE (RFC 9200, OSCORE profile RFC 9203):
  --ace-as URI            get an access token from this AS token endpoint (OSCORE to it from
                          --credentials), post it to the server's /authz-info and use the context
                          derived from it; again when it expires or the server no longer knows it.
                          With an "edhoc" identity in --credentials: the EDHOC and OSCORE profile
                          (the token names that credential; EDHOC with the server, token in EAD_3)
  --ace-audience NAME     the audience to ask for (default: the server's AS Request Creation Hints)
  --ace-scope SCOPE       the scope to ask for (default: all the AS grants this client)`;

export interface AceClientFlagValues {
  'ace-as'?: string | undefined;
  'ace-audience'?: string | undefined;
  'ace-scope'?: string | undefined;
  verbose?: boolean | boolean[] | undefined;
  credentials?: string | undefined;
}

/**
 * The flags checked now; the ACE security for requests to `uri` made by the function returned,
 * once the client exists (undefined without --ace-as).
 */
export function aceSecurity(values: AceClientFlagValues, uri: string): (client: CoapClient) => MessageSecurity | undefined {
  const asUri = values['ace-as'];
  if (asUri === undefined) {
    if (values['ace-audience'] !== undefined || values['ace-scope'] !== undefined) throw new UsageError('--ace-audience and --ace-scope go with --ace-as');
    return () => undefined;
  }
  checkUri(asUri);
  const target = new URL(uri);
  const identity = edhocIdentity(values.credentials, uri);
  const common = {
    asUri,
    rsOrigin: `${target.protocol}//${target.host}`,
    ...(values['ace-audience'] !== undefined ? { audience: values['ace-audience'] } : {}),
    ...(values['ace-scope'] !== undefined ? { scope: values['ace-scope'] } : {}),
    ...(values.verbose ? { log: (line: string) => void process.stderr.write(`ace: ${line}\n`) } : {}),
  };
  if (identity !== undefined) return (client) => new AceEdhocClientSecurity({ client, identity, ...common });
  return (client) => new AceClientSecurity({ client, ...common });
}

/** The credentials file's EDHOC identity (credential, method, suites) as an Initiator towards `uri`, if it has one. */
function edhocIdentity(file: string | undefined, uri: string): ConstructorParameters<typeof AceEdhocClientSecurity>[0]['identity'] | undefined {
  if (file === undefined) return undefined;
  try {
    const edhoc = loadCredentials(file).edhoc;
    if (edhoc === undefined) return undefined;
    const { credential, method, suites } = edhocInitiatorConfig(edhoc, uri);
    return { credential, method, suites };
  } catch (error) {
    if (error instanceof CredentialsError || error instanceof RangeError) throw new UsageError(error.message);
    throw error;
  }
}
