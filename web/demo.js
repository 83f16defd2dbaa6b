// The demo page's script. Its security comes from the URL fragment (never sent to any server):
// either #context=<the "context" object of a coapsec client credentials file, as JSON, URI-encoded>
// (a configured OSCORE context), or #edhoc=<{"ccs": hex, "key": hex, "peer": hex} as JSON,
// URI-encoded> (EDHOC mode: this page's CCS and raw private key and the device's CCS, as `coapsec
// keygen` makes them; method 3 with suite 2 by default, "method"/"suite" to change), then
// &device=coap://HOST:PORT (the device behind the proxy). &run=1 runs every action once,
// &run=read,valve the ones named.
import { BrowserCoapClient, openOscore, bytesToHex, hexToBytes, edhocOverCoap, ccsOwnCredential, ccsPeer, pinnedPeers, CoseCurve } from './coapsec.js';

const params = new URLSearchParams(location.hash.slice(1));
const status = document.getElementById('status');
const log = document.getElementById('log');

/** A WebSocket that keeps every binary message in each direction: exactly what the proxy sees. */
const frames = [];
class RecordingWebSocket extends WebSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener('message', (event) => {
      if (event.data instanceof ArrayBuffer) frames.push({ direction: '←', bytes: new Uint8Array(event.data) });
    });
  }
  send(data) {
    frames.push({ direction: '→', bytes: new Uint8Array(data instanceof ArrayBuffer ? data : data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)) });
    super.send(data);
  }
}

function row(action, decrypted) {
  const relayed = frames.splice(0).map((f) => `${f.direction} ${bytesToHex(f.bytes)}`).join('\n');
  const tr = document.createElement('tr');
  for (const [text, cls] of [[action, ''], [relayed, 'hex'], [decrypted, '']]) {
    const td = document.createElement('td');
    td.textContent = text;
    td.style.whiteSpace = 'pre-wrap';
    if (cls) td.className = cls;
    tr.append(td);
  }
  log.append(tr);
}

const result = { actions: [], error: undefined, done: false };
window.coapsecDemo = result;

/**
 * EDHOC mode: the handshake through the proxy (message_1 and message_2 in the clear, as EDHOC
 * sends them; message_3 inside the first OSCORE request, RFC 9668), then the App. A.1 context.
 */
async function runEdhoc(identity, device) {
  const suite = identity.suite ?? 2;
  const crv = suite === 0 || suite === 1 ? (identity.method === 0 ? CoseCurve.Ed25519 : CoseCurve.X25519) : CoseCurve.P256;
  const plain = new BrowserCoapClient({ server: `coap+ws://${location.host}`, origin: device, WebSocket: RecordingWebSocket });
  try {
    const connectionId = crypto.getRandomValues(new Uint8Array(1));
    const edhoc = await edhocOverCoap(
      plain,
      { method: identity.method ?? 3, suites: [suite], credential: ccsOwnCredential(hexToBytes(identity.ccs), { crv, d: hexToBytes(identity.key) }), peers: pinnedPeers([ccsPeer(hexToBytes(identity.peer))]) },
      { connectionId, combined: true },
    );
    const { senderId, recipientId } = edhoc.oscore.context;
    const peer = edhoc.session.peer;
    row(
      'EDHOC message_1, message_2',
      `authenticated the device${peer.subject ? ` "${peer.subject}"` : ''} (CCS ${bytesToHex(peer.cred).slice(0, 16)}…); OSCORE Sender ID ${bytesToHex(senderId)}, Recipient ID ${bytesToHex(recipientId)}; message_3 goes with the first request, the keys never leave this page`,
    );
    result.actions.push({ action: 'edhoc', status: 'ok', text: bytesToHex(peer.cred) });
    return edhoc;
  } finally {
    await plain.close();
  }
}

async function start() {
  const context = params.get('context');
  const edhocIdentity = params.get('edhoc');
  const device = params.get('device');
  if ((!context && !edhocIdentity) || !device) throw new Error('open this page with #context=...&device=coap://HOST:PORT or #edhoc=...&device=coap://HOST:PORT');
  const edhoc = edhocIdentity ? await runEdhoc(JSON.parse(edhocIdentity), device) : undefined;
  const oscore = edhoc ? edhoc.oscore : await openOscore(JSON.parse(context));
  const client = new BrowserCoapClient({ server: `coap+ws://${location.host}`, origin: device, oscore, WebSocket: RecordingWebSocket, ...(edhoc?.message3 ? { edhocMessage3: edhoc.message3 } : {}) });
  const actions = {
    read: async () => {
      const r = await client.get('/hello');
      row('GET /hello', `${r.status}: ${r.text}`);
      result.actions.push({ action: 'read', status: r.status, text: r.text });
    },
    observe: async () => {
      let n = 0;
      for await (const note of client.observe('/time', { count: 11, lifetime: 30_000 })) {
        row(n === 0 ? 'Observe /time' : `notification ${n}`, `${note.status}: ${note.text} (Partial IV ${note.partialIv ?? '—'})`);
        result.actions.push({ action: 'observe', status: note.status, text: note.text });
        n++;
      }
    },
    valve: async () => {
      const level = document.getElementById('level').value;
      const put = await client.put('/valve', level, { contentFormat: 0 });
      const sent = frames.filter((f) => f.direction === '→').length;
      row(`PUT /valve ${level}`, `${put.status} after ${sent} request(s): a device may first answer 4.01 with an Echo to repeat (RFC 9175)`);
      const now = await client.get('/valve');
      row('GET /valve', `${now.status}: ${now.text}`);
      result.actions.push({ action: 'valve', status: put.status, text: now.text });
    },
  };
  for (const [id, action] of Object.entries(actions)) {
    document.getElementById(id).addEventListener('click', () => run(action));
  }
  const chosen = params.get('run');
  if (chosen) {
    for (const [id, action] of Object.entries(actions)) if (chosen === '1' || chosen.split(',').includes(id)) await run(action);
    result.done = true;
  }
}

async function run(action) {
  status.textContent = 'working…';
  try {
    await action();
    status.textContent = 'ok';
  } catch (error) {
    result.error = String(error?.stack ?? error);
    status.textContent = `error: ${error?.message ?? error}`;
    row('error', String(error?.message ?? error));
  }
}

start().catch((error) => {
  result.error = String(error?.stack ?? error);
  result.done = true;
  status.textContent = `error: ${error.message}`;
});
