/**
 * Child process for the crash test in test/credentials-sequence.test.ts: opens a sequence number
 * store and prints every number it hands out, one per line, as fast as it can, until killed.
 * Usage: node sequence-child.js STATE_DIR RESERVE
 */
import { writeSync } from 'node:fs';
import { SequenceNumberStore } from '../../src/credentials/sequence-store.js';

const [directory, reserveText] = process.argv.slice(2);
if (directory === undefined || reserveText === undefined) {
  process.stderr.write('usage: sequence-child STATE_DIR RESERVE\n');
  process.exit(2);
}

const CRASH_TEST_IDENTITY = {
  masterSecret: new Uint8Array(16).fill(7),
  senderId: new Uint8Array([0x01]),
};

const store = SequenceNumberStore.open(directory, CRASH_TEST_IDENTITY, { reserve: Number(reserveText) });
writeSync(1, 'ready\n');
for (;;) {
  // Print each number only after next() returned it, i.e. after its reservation was fsync'd.
  // Synchronous writes: a number is either fully in the pipe or was never printed.
  let batch = '';
  for (let i = 0; i < 8; i++) batch += `${store.next()}\n`;
  writeSync(1, batch);
}
