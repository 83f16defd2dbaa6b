/**
 * Crash-safe replacement of a small file, synchronously: after writeFileDurably returns, a power
 * cut or kill -9 leaves either the old or the new content on disk, never a mix or nothing.
 *
 * The sequence: write a temporary file in the same folder, fsync it (the data is on disk), rename it
 * over the target (atomic on POSIX), fsync the folder (the rename itself is on disk). Skipping the
 * last step is the classic bug: the data is safe but the name may still point at the old file.
 */
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export function writeFileDurably(path: string, content: string | Uint8Array): void {
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fd = openSync(temporary, 'w', 0o600);
  try {
    const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : Buffer.from(content.buffer, content.byteOffset, content.byteLength);
    let written = 0;
    while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    unlinkSync(temporary);
    throw error;
  }
  closeSync(fd);
  renameSync(temporary, path);
  fsyncDirectory(dirname(path));
}

export function fsyncDirectory(directory: string): void {
  // Windows cannot open a folder for fsync; NTFS journals the rename metadata itself.
  if (process.platform === 'win32') return;
  const fd = openSync(directory, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
