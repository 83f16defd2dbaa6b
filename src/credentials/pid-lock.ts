/**
 * A lock file holding the owner's process id, so that two processes never hand out Sender
 * Sequence Numbers from the same persisted counter (each would resume from the same reservation
 * and reuse nonces). Created with O_EXCL; a lock whose process is gone (crash, kill -9) is taken
 * over.
 *
 * Limits, by design: it is advisory and for one machine (a pid means nothing across hosts or
 * containers sharing a volume), and a recycled pid makes a stale lock look alive — then the error
 * says which file to remove once no coapsec process uses it.
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { CredentialsError } from './errors.js';
import { fsyncDirectory } from './durable-file.js';
import { dirname } from 'node:path';

export class PidLock {
  private released = false;

  private constructor(readonly path: string) {}

  /** Takes the lock or throws CredentialsError naming the holder. */
  static acquire(path: string): PidLock {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(path, 'wx', 0o600);
        try {
          writeSync(fd, `${process.pid}\n`);
        } finally {
          closeSync(fd);
        }
        fsyncDirectory(dirname(path));
        return new PidLock(path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new CredentialsError(`${path}: cannot create the lock file: ${(error as Error).message}`, path);
        }
      }
      const holder = readHolder(path);
      if (holder === process.pid) {
        throw new CredentialsError(`${path}: this process already has this sequence number store open`, path);
      }
      if (holder !== undefined && isAlive(holder)) {
        throw new CredentialsError(
          `${path}: locked by running process ${holder}; only one process may use a state directory. ` +
            'If no coapsec process uses it, remove the lock file.',
          path,
        );
      }
      // The holder is gone (or the file is garbage from a crash between create and write): take over.
      try {
        unlinkSync(path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    }
    throw new CredentialsError(`${path}: another process took the lock while we were taking over a stale one`, path);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    try {
      if (readHolder(this.path) === process.pid) unlinkSync(this.path);
    } catch {
      // Already gone: nothing to release.
    }
  }
}

function readHolder(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else — still alive.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
