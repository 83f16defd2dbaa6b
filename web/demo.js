// The demo page's script. Its OSCORE context comes from the URL fragment (never sent to any
// server): #context=<the "context" object of a coapsec client credentials file, as JSON, URI-encoded>
// &device=coap://HOST:PORT (the device behind the proxy), and &run=1 runs every action once.
import { BrowserCoapClient, openOscore, bytesToHex } from './coapsec.js';

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

async function start() {
  const context = params.get('context');
  const device = params.get('device');
  if (!context || !device) throw new Error('open this page with #context=...&device=coap://HOST:PORT');
  const oscore = await openOscore(JSON.parse(context));
  const client = new BrowserCoapClient({ server: `coap+ws://${location.host}`, origin: device, oscore, WebSocket: RecordingWebSocket });
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
  if (params.get('run') === '1') {
    for (const action of Object.values(actions)) await run(action);
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
