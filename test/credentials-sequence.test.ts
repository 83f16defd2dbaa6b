import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  MAX_SENDER_SEQUENCE_NUMBER,
  SequenceExhaustedError,
  SequenceNumberStore,
  sequenceFileName,
} from '../src/credentials/sequence-store.js';
import { CredentialsError } from '../src/credentials/errors.js';

const IDENTITY = { masterSecret: new Uint8Array(16).fill(7), senderId: new Uint8Array([0x01]) };
const CHILD_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'support', 'sequence-child.js');

// Removed after all tests, so each test's own t.after(() => store.close()) still finds its folder.
const directories: string[] = [];
after(() => directories.forEach((directory) => rmSync(directory, { recursive: true, force: true })));

function temporaryDirectory(_t?: unknown): string {
  const directory = mkdtempSync(join(tmpdir(), 'coapsec-ssn-'));
  directories.push(directory);
  return directory;
}

const storedValue = (store: SequenceNumberStore): number => Number(readFileSync(store.path, 'utf8').trim());

test('a fresh context starts at 0 with K reserved on disk before the first number', (t) => {
  const store = SequenceNumberStore.open(temporaryDirectory(t), IDENTITY, { reserve: 10 });
  t.after(() => store.close());
  assert.equal(storedValue(store), 10);
  assert.equal(store.next(), 0);
});

test('the reservation is extended (and persisted) before the first number beyond it', (t) => {
  const store = SequenceNumberStore.open(temporaryDirectory(t), IDENTITY, { reserve: 4 });
  t.after(() => store.close());
  const handedOut = [0, 1, 2, 3].map(() => store.next());
  assert.deepEqual(handedOut, [0, 1, 2, 3]);
  assert.equal(storedValue(store), 4, 'no write while inside the reservation');
  assert.equal(store.next(), 4);
  assert.equal(storedValue(store), 8);
  assert.equal(store.persistedReservation, 8);
  for (const number of [5, 6, 7, 8]) assert.equal(store.next(), number);
  assert.equal(storedValue(store), 12);
  assert.ok(store.peek() < store.persistedReservation);
});

test('after a crash (no close) the counter resumes at the reservation, beyond everything handed out', (t) => {
  const directory = temporaryDirectory(t);
  const first = SequenceNumberStore.open(directory, IDENTITY, { reserve: 16 });
  for (let i = 0; i < 20; i++) first.next(); // 0..19; reservation 32
  // Simulate the crash: forget the store without close(); drop its lock as a dead process would.
  rmSync(`${first.path}.lock`);
  const second = SequenceNumberStore.open(directory, IDENTITY, { reserve: 16 });
  t.after(() => second.close());
  assert.equal(second.next(), 32);
  assert.equal(storedValue(second), 48);
});

test('a clean close gives the unused reservation back', (t) => {
  const directory = temporaryDirectory(t);
  const first = SequenceNumberStore.open(directory, IDENTITY, { reserve: 100 });
  first.next();
  first.next();
  first.close();
  assert.equal(storedValue(first), 2);
  assert.throws(() => first.next(), /closed/);
  const second = SequenceNumberStore.open(directory, IDENTITY, { reserve: 100 });
  t.after(() => second.close());
  assert.equal(second.next(), 2);
});

test('the file name depends on the sender context and never contains the secret', () => {
  const name = sequenceFileName(IDENTITY);
  assert.match(name, /^sender-[0-9a-f]{32}\.ssn$/);
  assert.ok(!name.includes('0707070707'));
  assert.equal(sequenceFileName({ ...IDENTITY }), name, 'stable');
  assert.notEqual(sequenceFileName({ ...IDENTITY, senderId: new Uint8Array([0x02]) }), name);
  assert.notEqual(sequenceFileName({ ...IDENTITY, masterSecret: new Uint8Array(16).fill(8) }), name);
  assert.notEqual(sequenceFileName({ ...IDENTITY, masterSalt: new Uint8Array([1]) }), name);
  const emptyIdContext = sequenceFileName({ ...IDENTITY, idContext: new Uint8Array(0) });
  assert.notEqual(emptyIdContext, name, 'an empty ID Context differs from an absent one');
  assert.equal(sequenceFileName({ ...IDENTITY, masterSalt: new Uint8Array(0) }), name, 'absent salt is the default empty salt');
});

test('the 2^40-1 limit of RFC 8613 §7.2.1 is enforced', (t) => {
  const path = join(temporaryDirectory(t), 'seq');
  writeFileSync(path, `${MAX_SENDER_SEQUENCE_NUMBER - 1}\n`);
  const store = SequenceNumberStore.openFile(path, { reserve: 64 });
  t.after(() => store.close());
  assert.equal(store.next(), MAX_SENDER_SEQUENCE_NUMBER - 1);
  assert.equal(store.next(), MAX_SENDER_SEQUENCE_NUMBER);
  assert.equal(storedValue(store), 2 ** 40, 'the reservation is capped at 2^40');
  assert.throws(() => store.next(), (error: unknown) => error instanceof SequenceExhaustedError && /7\.2\.1/.test(error.message));
  assert.throws(() => store.next(), SequenceExhaustedError);
});

test('an exhausted or out-of-range stored value is refused or exhausted at once', (t) => {
  const directory = temporaryDirectory(t);
  const exhausted = join(directory, 'exhausted');
  writeFileSync(exhausted, `${2 ** 40}\n`);
  const store = SequenceNumberStore.openFile(exhausted, { reserve: 8 });
  assert.throws(() => store.next(), SequenceExhaustedError);
  store.close();
  const beyond = join(directory, 'beyond');
  writeFileSync(beyond, `${2 ** 40 + 1}\n`);
  assert.throws(() => SequenceNumberStore.openFile(beyond, { reserve: 8 }), /beyond 2\^40/);
  assert.ok(!existsSync(`${beyond}.lock`), 'a failed open releases its lock');
});

test('a corrupt sequence file is refused, naming the file', (t) => {
  const path = join(temporaryDirectory(t), 'seq');
  for (const content of ['', 'twelve\n', '-5\n', '1.5\n', '12 13\n']) {
    writeFileSync(path, content);
    assert.throws(
      () => SequenceNumberStore.openFile(path, { reserve: 8 }),
      (error: unknown) => error instanceof CredentialsError && error.message.startsWith(`${path}:1:`) && /corrupt/.test(error.message),
    );
  }
});

test('libcoap-style sequence files (one number) are read; the reservation must be positive', (t) => {
  const path = join(temporaryDirectory(t), 'client.seq');
  writeFileSync(path, '4711\n');
  assert.throws(() => SequenceNumberStore.openFile(path, { reserve: 0 }), /positive integer/);
  const store = SequenceNumberStore.openFile(path, { reserve: 1 });
  t.after(() => store.close());
  assert.equal(store.next(), 4711);
  assert.equal(storedValue(store), 4712);
  assert.equal(store.next(), 4712, 'reserve 1 writes before every number, as libcoap ssn_freq 1');
  assert.equal(storedValue(store), 4713);
});

test('a second open in the same process is refused while the first is open', (t) => {
  const directory = temporaryDirectory(t);
  const store = SequenceNumberStore.open(directory, IDENTITY, { reserve: 8 });
  assert.throws(() => SequenceNumberStore.open(directory, IDENTITY, { reserve: 8 }), /already has this sequence number store open/);
  store.close();
  const again = SequenceNumberStore.open(directory, IDENTITY, { reserve: 8 });
  again.close();
});

test('a lock held by another live process is refused with its pid; a dead one is taken over', async (t) => {
  const directory = temporaryDirectory(t);
  const lockPath = join(directory, `${sequenceFileName(IDENTITY)}.lock`);
  const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  t.after(() => sleeper.kill('SIGKILL'));
  writeFileSync(lockPath, `${sleeper.pid}\n`);
  assert.throws(
    () => SequenceNumberStore.open(directory, IDENTITY, { reserve: 8 }),
    (error: unknown) => error instanceof CredentialsError && error.message.includes(`locked by running process ${sleeper.pid}`),
  );
  const exited = new Promise((resolve) => sleeper.once('exit', resolve));
  sleeper.kill('SIGKILL');
  await exited;
  const store = SequenceNumberStore.open(directory, IDENTITY, { reserve: 8 });
  assert.equal(readFileSync(lockPath, 'utf8').trim(), String(process.pid));
  store.close();
  assert.ok(!existsSync(lockPath), 'close removes the lock');
});

interface ChildRun {
  printed: number[];
  pid: number;
}

/** Runs the child until it has printed something, then for a random while, then SIGKILLs it. */
function runChildAndKill(directory: string, reserve: number): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD_SCRIPT, directory, String(reserve)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let errors = '';
    let killTimer: NodeJS.Timeout | undefined;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      output += chunk;
      if (killTimer === undefined && output.includes('ready\n')) {
        killTimer = setTimeout(() => child.kill('SIGKILL'), 20 + Math.floor(Math.random() * 200));
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    child.on('error', reject);
    child.on('close', (_code, signal) => {
      if (signal !== 'SIGKILL') {
        reject(new Error(`the child ended without being killed (signal ${signal}): ${errors}`));
        return;
      }
      const lines = output.split('\n');
      lines.pop(); // a line cut by the kill has no newline; only whole lines were printed
      const printed = lines.filter((line) => line !== 'ready').map(Number);
      resolve({ printed, pid: child.pid! });
    });
  });
}

test('crash test: after kill -9 at a random moment, no sequence number is ever handed out twice', async (t) => {
  const directory = temporaryDirectory(t);
  const reserve = 32;
  let highestBefore = -1;
  for (let round = 0; round < 5; round++) {
    const { printed, pid } = await runChildAndKill(directory, reserve);
    assert.ok(printed.length > 0, `round ${round}: the child printed numbers before the kill`);
    printed.forEach((number, i) => {
      assert.ok(Number.isSafeInteger(number), `round ${round}: line ${i} is a number`);
      assert.ok(number > highestBefore, `round ${round}: ${number} was handed out before (highest so far ${highestBefore})`);
      if (i > 0) assert.equal(number, printed[i - 1]! + 1, 'consecutive within one run');
    });
    highestBefore = printed.at(-1)!;

    // The dead child's lock is still there and names it; opening takes it over.
    const lockFiles = readdirSync(directory).filter((name) => name.endsWith('.lock'));
    assert.equal(lockFiles.length, 1);
    assert.equal(readFileSync(join(directory, lockFiles[0]!), 'utf8').trim(), String(pid));
    const store = SequenceNumberStore.open(directory, IDENTITY, { reserve });
    const resumed = store.next();
    assert.ok(resumed > highestBefore, `round ${round}: resumed at ${resumed}, but ${highestBefore} was printed before the kill`);
    assert.ok(resumed - highestBefore <= 2 * reserve, 'at most about one reservation is skipped');
    highestBefore = resumed;
    store.close();
  }
});
