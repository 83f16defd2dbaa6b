/**
 * V8 settings for the commands that serve traffic for a long time (`serve`, `proxy`), set when the
 * command starts, before any request has run (issue 21).
 *
 * `--no-allocation-site-pretenuring`: V8 watches the objects each allocation site makes and, once
 * most of a site's objects survive a young-generation GC, allocates the site's later objects
 * directly in the old generation. A server's per-request objects live exactly as long as the
 * request — shorter than a scavenge interval, but under load many are still in flight when a
 * scavenge comes, so a site on the request path can be judged long-lived. From then on each request
 * object it makes is born old and keeps the young objects it points to (the rest of the request)
 * alive through every scavenge, until a mark-compact frees them: the OSCORE server's CPU per
 * request rose by about a half when that happened (BENCHMARKS.md, issue 21, third pass). The
 * library avoids the sites it found (class instances instead of literals); this setting keeps any
 * other site from being tenured, in the processes where the request path is the workload. It is a
 * process-wide choice, so the library does not make it; BENCHMARKS.md (h21-oscore) has the A/B.
 */
import { setFlagsFromString } from 'node:v8';

export function tuneForServing(): void {
  setFlagsFromString('--no-allocation-site-pretenuring');
}
