/**
 * Token introspection (RFC 9200 §5.9) on the command line: `coapsec serve --ace rs.json` whose
 * rs.json has "introspect" (the AS's /introspect and the RS's own credentials towards it) and no
 * key of the AS, so it cannot open any token itself. A client's `get --ace-as` works unchanged:
 * the RS asks the AS about the posted token. When the AS does not know the RS (no OSCORE context
 * for it), the AS refuses the introspection and the RS refuses the token with 4.01.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { assertUsageError, coapsec, killChildren, startDaemon, type Daemon } from './support/cli-harness.js';

const dir = mkdtempSync(join(tmpdir(), 'coapsec-ace-introspect-'));
const env = process.env;
const daemons: Daemon[] = [];
let asPort: number;

const ALICE = { secret: '0a'.repeat(16), id: 'a1' };
const SENSOR = { secret: '5e'.repeat(16), id: '5e' };

before(async () => {
  process.env['COAPSEC_STATE_DIR'] = join(dir, 'state');
  writeFileSync(
    join(dir, 'as.json'),
    JSON.stringify({
      issuer: 'as',
      audiences: { sensor: { kid: '01', key: 'c0ffee00112233445566778899aabbcc', scopes: ['read'] }, stranger: { kid: '02', key: 'ff'.repeat(16), scopes: ['read'] } },
      clients: { alice: { grants: { sensor: ['read'], stranger: ['read'] } } },
    }),
  );
  // The AS's credentials name alice's context and the RS's: "sensor", its audience (RFC 9200 §5.9.1: the RS authenticates).
  writeFileSync(
    join(dir, 'as-credentials.json'),
    JSON.stringify({
      recipients: {
        [ALICE.id]: { name: 'alice', context: { masterSecret: ALICE.secret, senderId: '' } },
        [SENSOR.id]: { name: 'sensor', context: { masterSecret: SENSOR.secret, senderId: '' } },
      },
    }),
  );
  const as = await startDaemon(['as', '--config', join(dir, 'as.json'), '--credentials', join(dir, 'as-credentials.json'), '--bind', '127.0.0.1:0', '-v'], /serving on coap:\/\/127\.0\.0\.1:(\d+)/);
  daemons.push(as);
  asPort = as.port;
  const toAs = (who: { secret: string; id: string }): string => JSON.stringify({ oscore: [{ match: `coap://127.0.0.1:${asPort}/*`, context: { masterSecret: who.secret, senderId: who.id, recipientId: '' } }] });
  writeFileSync(join(dir, 'alice.json'), toAs(ALICE));
  writeFileSync(join(dir, 'rs-to-as.json'), toAs(SENSOR));
});

after(async () => {
  await Promise.all(daemons.map((d) => d.stop()));
  killChildren();
  process.env = env;
  rmSync(dir, { recursive: true, force: true });
});

/** An RS of `audience` that holds no key of the AS: every token is introspected. */
async function introspectingRs(audience: string): Promise<Daemon> {
  const file = join(dir, `rs-${audience}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      audience,
      as: `coap://127.0.0.1:${asPort}/token`,
      issuer: 'as',
      introspect: { uri: `coap://127.0.0.1:${asPort}/introspect`, credentials: 'rs-to-as.json' },
      resources: { '/hello': { GET: 'read' } },
    }),
  );
  const rs = await startDaemon(['serve', '--bind', '127.0.0.1:0', '--ace', file, '-v'], /serving on coap:\/\/127\.0\.0\.1:(\d+)/);
  daemons.push(rs);
  return rs;
}

test('serve --ace with "introspect" and no key of the AS: alice\'s token is introspected and her GET works', async () => {
  const rs = await introspectingRs('sensor');
  const r = await coapsec(['get', `coap://127.0.0.1:${rs.port}/hello`, '--ace-as', `coap://127.0.0.1:${asPort}/token`, '--credentials', join(dir, 'alice.json')]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'Hello from coapsec');
  await daemons[0]!.waitFor(/introspection by sensor: active/);
  // Its context with the AS is open in one process at a time (sequence numbers): stop it for the next RS.
  await rs.stop();
});

test('an RS the AS does not know: its introspection is refused, and so is the token (4.01, exit 6)', async () => {
  // "stranger" authenticates to the AS with the context the AS knows as "sensor": the AS answers only about sensor's tokens.
  const rs = await introspectingRs('stranger');
  const r = await coapsec(['get', `coap://127.0.0.1:${rs.port}/hello`, '--ace-as', `coap://127.0.0.1:${asPort}/token`, '--credentials', join(dir, 'alice.json'), '--ace-audience', 'stranger']);
  assert.equal(r.code, 6, r.stderr);
  assert.match(r.stderr, /refused the access token: 4\.01/);
  await rs.waitFor(/token refused: the AS says the token is not active/);
});

test('serve --ace: "introspect" needs uri and credentials; without it "tokenKey" is required', async () => {
  const bad = join(dir, 'rs-bad.json');
  writeFileSync(bad, JSON.stringify({ audience: 'sensor', introspect: { uri: `coap://127.0.0.1:${asPort}/introspect` }, resources: { '/hello': { GET: 'read' } } }));
  assertUsageError(await coapsec(['serve', '--bind', '127.0.0.1:0', '--ace', bad]), /introspect\.credentials/);
  writeFileSync(bad, JSON.stringify({ audience: 'sensor', resources: { '/hello': { GET: 'read' } } }));
  assertUsageError(await coapsec(['serve', '--bind', '127.0.0.1:0', '--ace', bad]), /"tokenKey" must be an object/);
});
