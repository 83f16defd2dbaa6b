import { randomBytes } from 'node:crypto';
import { CoapClient, CoapServer, ResponseCode } from 'coapsec';
import { TrustAnchorVerifier, deriveKey, formatNonce } from 'coapsec/trust-anchor';

// K_RS-TA: the key the resource server shares with trust anchor "ta1" (from its config file).
const kRsTa = randomBytes(16);

// The resource server trusts ta1 and holds no list of client keys.
const verifier = new TrustAnchorVerifier([{ id: 'ta1', key: kRsTa }]);
const server = await CoapServer.listen({ host: '127.0.0.1', port: 0, dtls: { psk: verifier.pskStore() } });
server.resource('/whoami', { GET: (request) => ({ code: ResponseCode.Content, payload: `${request.context.security?.identity}` }) });

// What ta1 hands client "alice" (`coapsec ta-request` fetches it over OSCORE): a fresh nonce as
// the PSK identity and the key derived from it. The RS derives the same key from the nonce alone.
const identity = formatNonce({ taId: 'ta1', clientId: 'alice', sequence: 1, random: randomBytes(16).toString('hex') });
const client = new CoapClient({ dtls: { psk: { identity, key: deriveKey(kRsTa, identity) } } });
const response = await client.get(`coaps://127.0.0.1:${server.address().port}/whoami`);
console.log(response.status, response.text()); // 2.05 Content DK.ta1.alice.1.<random>: the nonce is the identity
await client.close();
await server.close();
