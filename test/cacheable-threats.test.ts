/**
 * The caching scenario of the threat suite under cacheable OSCORE (src/attack/cacheable-threats.ts):
 * the proxy, as adversary, serves stale, altered or misdirected cached responses. Under cacheable
 * OSCORE the clients refuse them; on plain CoAP they accept them. A stale response to a client
 * with no history goes unnoticed under both: Deterministic Requests carry no freshness (§6).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CACHEABLE_THREATS_TEST, renderCacheableThreats, runCacheableThreats, type CacheThreatRow } from '../src/attack/cacheable-threats.js';
import { renderReport } from '../src/attack/report.js';

describe('cacheable OSCORE threat rows', () => {
  const rows = runCacheableThreats();
  const row = (id: string): CacheThreatRow => {
    const found = rows.find((r) => r.id === id);
    assert.ok(found, id);
    return found;
  };

  it(CACHEABLE_THREATS_TEST, () => {
    for (const id of ['cache-stale-replay', 'cache-altered', 'cache-wrong-request', 'cache-notification-rollback']) {
      assert.equal(row(id).outcomes.plain.verdict, 'undetected', `${id} succeeds on plain CoAP: ${row(id).outcomes.plain.detail}`);
      assert.equal(row(id).outcomes['cacheable-oscore'].verdict, 'detected', `${id} is refused under cacheable OSCORE: ${row(id).outcomes['cacheable-oscore'].detail}`);
    }
    assert.match(row('cache-stale-replay').outcomes['cacheable-oscore'].detail, /c1 .* refused it \(stale response: served 13 s after it was first received, past its Max-Age of 10 s\)/);
    assert.match(row('cache-stale-replay').outcomes['cacheable-oscore'].detail, /c2 .* refused it \(stale response: older \(Partial IV 0\) than one already accepted/);
    assert.match(row('cache-altered').outcomes.plain.detail, /accepted "firmware v9"/);
    assert.match(row('cache-wrong-request').outcomes['cacheable-oscore'].detail, /refused it \(Decryption failed\)/);
    assert.match(row('cache-notification-rollback').outcomes['cacheable-oscore'].detail, /c1 refused it \(stale response: older \(Partial IV \d+\) than one already accepted/);
    assert.match(row('cache-notification-rollback').outcomes.plain.detail, /c1 accepted "firmware v1"/);
    assert.equal(row('cache-stale-newcomer').outcomes['cacheable-oscore'].verdict, 'undetected', 'the limit of §6, stated');
  });

  it('the rows are in the generated threat model', () => {
    const section = renderCacheableThreats(rows).join('\n');
    assert.match(section, /## Caching proxy \(cacheable OSCORE\)/);
    assert.equal(section.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| Threat')).length, 5);
    assert.match(renderReport(new Map()), /## Caching proxy \(cacheable OSCORE\)/);
  });
});
