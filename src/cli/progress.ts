/**
 * A one-line progress bar on stderr for block-wise transfers, only on a terminal and only once a
 * transfer has taken longer than `after` ms (a quick transfer leaves no trace).
 */
export function progressBar(stream: NodeJS.WriteStream = process.stderr, after = 1000): { update(bytes: number, total: number | undefined): void; done(): void } {
  if (!stream.isTTY) return { update() {}, done() {} };
  const started = Date.now();
  let shown = false;
  let last = 0;
  return {
    update(bytes, total) {
      const now = Date.now();
      if (now - started < after) return;
      if (now - last < 50 && (total === undefined || bytes < total)) return;
      last = now;
      shown = true;
      const width = 30;
      const line =
        total && total > 0
          ? `[${'#'.repeat(Math.round((width * Math.min(bytes, total)) / total)).padEnd(width, ' ')}] ${bytes}/${total} bytes`
          : `${bytes} bytes`;
      stream.write(`\r${line}\x1b[K`);
    },
    done() {
      if (shown) stream.write('\r\x1b[K');
    },
  };
}
