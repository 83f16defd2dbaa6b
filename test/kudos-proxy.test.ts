/**
 * KUDOS through an untrusted forward proxy (draft-ietf-core-oscore-key-update §4.1: the KUDOS
 * fields travel in the OSCORE option, which a proxy forwards as it is, RFC 8613 §4.1.3.1): a real
 * `coapsec proxy --forward` between client and server. Both flows complete end to end, and what
 * the proxy saw (the relay behind it records the server side) never lets it read the exchange.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { hex, sameContext } from './kudos-helpers.js';
import { kudosStack } from './kudos-stack.js';
import { killChildren, startDaemon } from './support/cli-harness.js';

after(() => killChildren());

test('a forward proxy carries both KUDOS flows between client and server unchanged', async () => {
  const proxy = await startDaemon(['proxy', '--bind', '127.0.0.1:0', '--forward', '--allow-destination', '127.0.0.1', '-v'], /proxy on coap:\/\/127\.0\.0\.1:(\d+)/);
  const s = await kudosStack({ proxy: `coap://127.0.0.1:${proxy.port}` });
  try {
    const initial = hex(s.clientSession.currentSecrets.masterSecret);
    assert.equal((await s.client.request({ method: 'POST', uri: `${s.base}/echo`, payload: 'before' })).payload.toString(), 'before');
    await s.peer.rekey();
    assert.equal((await s.client.request({ method: 'POST', uri: `${s.base}/echo`, payload: 'forward' })).payload.toString(), 'forward');
    assert.ok(sameContext(s.clientSession, s.serverSession));
    const afterForward = hex(s.clientSession.currentSecrets.masterSecret);
    assert.notEqual(afterForward, initial);
    s.serverSecurity.startKudos('client');
    assert.equal((await s.client.request({ method: 'POST', uri: `${s.base}/echo`, payload: 'reverse' })).payload.toString(), 'reverse');
    assert.equal((await s.client.request({ method: 'POST', uri: `${s.base}/echo`, payload: 'after' })).payload.toString(), 'after');
    assert.equal(s.serverSession.state, 'IDLE');
    assert.ok(sameContext(s.clientSession, s.serverSession));
    assert.notEqual(hex(s.clientSession.currentSecrets.masterSecret), afterForward);
    // Every request reached the server through the proxy (the relay sits behind it), in the clear only as OSCORE.
    assert.ok(s.relay.datagrams.filter((d) => d.from === 'client').every((d) => !d.data.toString('latin1').includes('forward') && !d.data.toString('latin1').includes('reverse')));
    // The proxy forwarded all six requests (before, the divergent one, forward, reverse, the
    // convergent one, after) and saw none of their paths: OSCORE hides Uri-Path, KUDOS or not.
    assert.equal(proxy.stderr().match(/ POST \/ 2\.04/g)?.length, 6, proxy.stderr());
    assert.doesNotMatch(proxy.stderr(), /kudos|echo/);
    assert.deepEqual(s.ledger.reused, []);
  } finally {
    await s.close();
    await proxy.stop();
  }
});
