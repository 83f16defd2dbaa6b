/** What a pub-sub threat row must show, in process or over the network: the attack works on the unprotected broker and not on protected publications, except the NOT REQUIRED rows. */
import assert from 'node:assert/strict';
import type { PubSubThreatRow } from '../../src/attack/pubsub-attacks.js';
import type { Outcome } from '../../src/attack/report.js';

export function assertPubSubRow(row: PubSubThreatRow, baseline: Outcome, protectedOutcome: Outcome): void {
  if (row.id === 'eavesdrop') {
    assert.equal(baseline.verdict, 'leaked', baseline.detail);
    assert.equal(protectedOutcome.verdict, 'protected', protectedOutcome.detail);
  } else if (row.required) {
    assert.equal(baseline.verdict, 'undetected', `the attack works without protection: ${baseline.detail}`);
    assert.equal(protectedOutcome.verdict, 'detected', protectedOutcome.detail);
  } else {
    // NR5.4/NR5.5: shown as undetected, honestly, with and without protection.
    assert.equal(baseline.verdict, 'undetected', baseline.detail);
    assert.equal(protectedOutcome.verdict, 'undetected', protectedOutcome.detail);
  }
}
