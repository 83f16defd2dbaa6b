/**
 * `serve --ace FILE`: the server is an ACE resource server with the OSCORE profile (RFC 9203):
 * /authz-info takes access tokens from the config's AS, and each resource the config lists
 * demands, per method, a scope token of the client's token (docs/ace.md). With the credentials'
 * EDHOC identity, also the EDHOC and OSCORE profile (draft-ietf-ace-edhoc-oscore-profile).
 */
import { AceConfigError, knownScopes, loadRsConfig, type RsConfig } from '../ace/config.js';
import type { IntrospectionOptions } from '../ace/introspection.js';
import { AceResourceServer } from '../ace/resource-server.js';
import { CoapClient } from '../client/client.js';
import { CredentialsError } from '../credentials/errors.js';
import { edhocResponderConfig, type EdhocCredentials } from '../credentials/edhoc-entries.js';
import type { CoapServer } from '../server/server.js';
import { UsageError } from './errors.js';

export const ACE_SERVE_USAGE = `  --ace FILE         an ACE resource server (RFC 9203): POST /authz-info takes tokens of the AS in
                     FILE, whose "resources" demand a scope per method (4.01 with AS Request
                     Creation Hints without a token, 4.03/4.05 outside its scope). With an
                     "edhoc" identity in --credentials, also the EDHOC and OSCORE profile: EDHOC
                     on /.well-known/edhoc with clients whose token names their credential.
                     With "introspect" in FILE, tokens the server cannot open are described by
                     the AS's /introspect (RFC 9200 §5.9), asked over OSCORE`;

export function loadAceServeConfig(file: string | undefined): RsConfig | undefined {
  if (file === undefined) return undefined;
  try {
    return loadRsConfig(file);
  } catch (error) {
    if (error instanceof AceConfigError) throw new UsageError(error.message);
    throw error;
  }
}

/** Call after every resource is added and every other security is in place. */
export function attachAceResourceServer(server: CoapServer, config: RsConfig, log?: (line: string) => void, edhoc?: EdhocCredentials): AceResourceServer {
  let responder;
  try {
    responder = edhoc && edhocResponderConfig(edhoc);
  } catch (error) {
    throw new UsageError(`--credentials: ${(error as Error).message}`);
  }
  const rs = AceResourceServer.attach(server, {
    // The EDHOC identity only: the peers are whoever a token names (edhoc.peers do not apply here).
    ...(responder ? { edhoc: { responder: { suites: responder.suites, credentials: responder.credentials, ...(responder.methods ? { methods: responder.methods } : {}) } } } : {}),
    audiences: [config.audience],
    tokenKeys: config.tokenKey !== undefined ? [config.tokenKey] : [],
    ...(config.introspection !== undefined ? { introspection: introspectionFor(server, config.introspection) } : {}),
    scopes: knownScopes(config),
    ...(config.asUri !== undefined ? { asUri: config.asUri } : {}),
    ...(config.issuer !== undefined ? { issuer: config.issuer } : {}),
    ...(config.maxTokens !== undefined ? { maxTokens: config.maxTokens } : {}),
    ...(log ? { log } : {}),
  });
  for (const [path, required] of config.resources) {
    if (!rs.protectResource(server, path, required)) throw new UsageError(`--ace: no resource at ${path} to protect`);
  }
  return rs;
}

/**
 * The introspection requests' client: one per process and credentials file (each listener's
 * resource server shares it, since a context's sequence numbers may be open once), closed with
 * the last server so the exact next sequence numbers are written back.
 */
const introspectionClients = new Map<string, { client: CoapClient; servers: number }>();

function introspectionFor(server: CoapServer, introspection: NonNullable<RsConfig['introspection']>): IntrospectionOptions {
  let shared = introspectionClients.get(introspection.credentials);
  if (shared === undefined) {
    try {
      shared = { client: new CoapClient({ credentials: introspection.credentials }), servers: 0 };
    } catch (error) {
      if (error instanceof CredentialsError) throw new UsageError(`--ace introspect.credentials: ${error.message}`);
      throw error;
    }
    introspectionClients.set(introspection.credentials, shared);
  }
  const entry = shared;
  entry.servers += 1;
  server.onClose(() => {
    entry.servers -= 1;
    if (entry.servers === 0) {
      introspectionClients.delete(introspection.credentials);
      void entry.client.close();
    }
  });
  return { client: entry.client, uri: introspection.uri };
}
