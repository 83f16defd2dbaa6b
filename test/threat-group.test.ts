/**
 * Issue 20, threat suite: the group scenario. Under Group OSCORE a member answering in another's
 * name, a replayed group request and a removed member's injection are refused; on plain CoAP the
 * same attacks succeed. Dropping one server's response is undetected under both (honestly: the
 * client only knows who answered). The threat report shows these rows.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GROUP_THREATS_TEST, renderGroupThreats, runGroupThreats, type GroupThreatRow } from '../src/attack/group-threats.js';

describe('group threat rows', () => {
  const rows = runGroupThreats();
  const row = (id: string): GroupThreatRow => {
    const found = rows.find((r) => r.id === id);
    assert.ok(found, `row ${id} ran`);
    return found;
  };

  it(GROUP_THREATS_TEST, () => {
    for (const id of ['group-impersonation', 'group-replay', 'group-removed-member']) {
      assert.equal(row(id).outcomes.plain.verdict, 'undetected', `${id} succeeds on plain CoAP: ${row(id).outcomes.plain.detail}`);
      assert.equal(row(id).outcomes['group-oscore'].verdict, 'detected', `${id} is refused under Group OSCORE: ${row(id).outcomes['group-oscore'].detail}`);
    }
    assert.equal(row('group-drop').outcomes.plain.verdict, 'undetected');
    assert.equal(row('group-drop').outcomes['group-oscore'].verdict, 'undetected');
  });

  it('the refusals are the ones the spec names: the countersignature, the replay window, the retired Gid', () => {
    const impersonation = row('group-impersonation').outcomes['group-oscore'].detail;
    assert.match(impersonation, /refused a response from s3 \(Decryption failed\)/);
    assert.match(impersonation, /s3: "s3 toggled"/, 's3\'s genuine answer is still accepted after the forgery');
    assert.match(row('group-impersonation').outcomes.plain.detail, /s3: "off \(forged by s2\)"/);
    assert.match(row('group-replay').outcomes['group-oscore'].detail, /s1: Replay detected, s2: Replay detected, s3: Replay detected/);
    assert.match(row('group-replay').outcomes['group-oscore'].detail, /s1 ×1, s2 ×1, s3 ×1/);
    assert.match(row('group-replay').outcomes.plain.detail, /s1 ×2, s2 ×2, s3 ×2/);
    assert.match(row('group-removed-member').outcomes['group-oscore'].detail, /s1: Security context not found, s2: Security context not found/);
  });

  it('a dropped response: both servers that answered are accepted, authenticated by member under Group OSCORE', () => {
    const drop = row('group-drop').outcomes['group-oscore'].detail;
    assert.match(drop, /accepted s1: "s1 toggled", s2: "s2 toggled";/);
    assert.match(drop, /s3 toggled: ×1/);
  });

  it('the report section has one line per row with both columns', () => {
    const section = renderGroupThreats(rows).join('\n');
    assert.match(section, /## Group communication \(Group OSCORE\)/);
    assert.equal(section.split('\n').filter((l) => /^\| (a server|a forwarder|dropping|a removed)/.test(l)).length, 4);
  });
});
