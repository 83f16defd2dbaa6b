/** `coapsec serve` flags for the per-peer and total state limits (docs/security.md "## Limits"). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SERVE_USAGE, serveCommand } from '../src/cli/serve-command.js';
import { UsageError } from '../src/cli/errors.js';

test('the limit flags are documented in the usage text', () => {
  for (const flag of ['--max-observers', '--max-observers-per-peer', '--max-uploads-per-peer']) assert.ok(SERVE_USAGE.includes(flag), flag);
});

for (const flag of ['--max-observers', '--max-observers-per-peer', '--max-uploads-per-peer']) {
  test(`${flag} refuses anything but a positive whole number, before binding`, async () => {
    for (const bad of ['0', '-1', '2.5', 'many']) {
      await assert.rejects(serveCommand([`${flag}=${bad}`, '--bind', '127.0.0.1:0']), (error: unknown) => error instanceof UsageError && error.message.includes(flag) && error.message.includes(bad));
    }
  });
}
