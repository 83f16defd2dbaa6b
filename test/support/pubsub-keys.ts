/** A topic's security group made with the `coapsec pubsub-keys` command line, for the multi-process pub-sub tests. */
import assert from 'node:assert/strict';

type Run = (args: string[]) => Promise<{ code: number | null; stderr: string }>;

/** Creates the group in `kdc` with one publisher and the subscribers, and issues each member's key file to `keyFile(name)`. */
export async function issueTopicKeys(run: Run, kdc: string, publisher: string, subscribers: readonly string[], keyFile: (name: string) => string): Promise<void> {
  const ok = async (args: string[]): Promise<void> => {
    const r = await run(args);
    assert.equal(r.code, 0, `coapsec ${args.join(' ')}: ${r.stderr}`);
  };
  await ok(['pubsub-keys', 'create', kdc, '--topic', 'kitchen']);
  await ok(['pubsub-keys', 'add-publisher', kdc, publisher]);
  for (const name of subscribers) await ok(['pubsub-keys', 'add-subscriber', kdc, name]);
  for (const name of [publisher, ...subscribers]) await ok(['pubsub-keys', 'issue', kdc, name, keyFile(name)]);
}
