/**
 * A child process for the OSCORE crash test: `server PORT CREDENTIALS` serves the plugtest
 * resources; `client URI CREDENTIALS` GETs the URI in a loop and prints "ok" or "err …" per request.
 */
import { CoapClient } from '../../src/client/client.js';
import { OscoreClientSecurity } from '../../src/client/oscore.js';
import { loadCredentials, matchClientContext } from '../../src/credentials/credentials-file.js';
import { openSecurityContext, openServerContexts } from '../../src/credentials/runtime.js';
import { addPlugtestResources } from '../../src/demo/plugtest.js';
import { OscoreServerSecurity } from '../../src/server/oscore.js';
import { CoapServer } from '../../src/server/server.js';

const [mode, target, credentialsPath] = process.argv.slice(2);
const credentials = loadCredentials(credentialsPath!);

if (mode === 'server') {
  const contexts = openServerContexts(credentials.recipients, { stateDirectory: credentials.stateDirectory });
  const server = await CoapServer.listen({ host: '127.0.0.1', port: Number(target), security: new OscoreServerSecurity(contexts.map((c) => c.context)) });
  addPlugtestResources(server);
  process.stdout.write('ready\n');
} else {
  const entry = matchClientContext(credentials, target!)!;
  const opened = openSecurityContext(entry.context, { stateDirectory: credentials.stateDirectory });
  const security = new OscoreClientSecurity(opened.context);
  const client = new CoapClient({ security: () => security, parameters: { ackTimeout: 300, maxRetransmit: 2 } });
  for (let i = 0; i < 1_000_000; i++) {
    try {
      const response = await client.get(target!, { timeout: 1500 });
      process.stdout.write(response.ok ? 'ok\n' : `err ${response.status}\n`);
    } catch (error) {
      process.stdout.write(`err ${(error as Error).message}\n`);
    }
  }
}
