/**
 * The request commands' ACE flags (RFC 9203, docs/ace.md):
 *   --ace-as URI        get an access token from this AS token endpoint (over the OSCORE context
 *                       --credentials has for it), post it to the RS and protect the request with
 *                       the context derived from it
 *   --ace-audience AUD  the audience to ask for (default: the one the RS's Creation Hints name)
 *   --ace-scope SCOPE   the scope to ask for (default: what the AS grants)
 */
import { AceClientSecurity } from '../ace/client.js';
import type { CoapClient } from '../client/client.js';
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
                          derived from it; again when it expires or the server no longer knows it
  --ace-audience NAME     the audience to ask for (default: the server's AS Request Creation Hints)
  --ace-scope SCOPE       the scope to ask for (default: all the AS grants this client)`;

export interface AceClientFlagValues {
  'ace-as'?: string | undefined;
  'ace-audience'?: string | undefined;
  'ace-scope'?: string | undefined;
  verbose?: boolean | boolean[] | undefined;
}

/**
 * The flags checked now; the ACE security for requests to `uri` made by the function returned,
 * once the client exists (undefined without --ace-as).
 */
export function aceSecurity(values: AceClientFlagValues, uri: string): (client: CoapClient) => AceClientSecurity | undefined {
  const asUri = values['ace-as'];
  if (asUri === undefined) {
    if (values['ace-audience'] !== undefined || values['ace-scope'] !== undefined) throw new UsageError('--ace-audience and --ace-scope go with --ace-as');
    return () => undefined;
  }
  checkUri(asUri);
  const target = new URL(uri);
  return (client) => new AceClientSecurity({
    client,
    asUri,
    rsOrigin: `${target.protocol}//${target.host}`,
    ...(values['ace-audience'] !== undefined ? { audience: values['ace-audience'] } : {}),
    ...(values['ace-scope'] !== undefined ? { scope: values['ace-scope'] } : {}),
    ...(values.verbose ? { log: (line: string) => void process.stderr.write(`ace: ${line}\n`) } : {}),
  });
}
