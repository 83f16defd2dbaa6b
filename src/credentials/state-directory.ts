/**
 * The common state directory: where Sender Sequence Numbers are kept when nothing else is said
 * (`--oscore-conf FILE` without a sequence file) and where every sender context is registered,
 * whichever file configured it — so one context has one counter and one lock on this machine.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';

/** $COAPSEC_STATE_DIR, else $XDG_STATE_HOME/coapsec, else ~/.local/state/coapsec. */
export function defaultStateDirectory(env: NodeJS.ProcessEnv = process.env): string {
  if (env['COAPSEC_STATE_DIR']) return env['COAPSEC_STATE_DIR'];
  return join(env['XDG_STATE_HOME'] || join(homedir(), '.local', 'state'), 'coapsec');
}
