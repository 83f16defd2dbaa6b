/**
 * A private network for multicast tests: network namespaces made by the test (root and iproute2
 * needed), one per host, each with a veth into a bridge that lives in a hub namespace of its own.
 * Hosts get 192.0.2.N/24 and 2001:db8::N/64 (documentation ranges: they never leave the bridge),
 * with 224.0.0.0/4 routed to their eth0. Nothing is ever sent to a group from the host's own
 * namespace. Names carry the test process's pid, so parallel runs do not collide; teardown()
 * removes every namespace (and with it every veth and the bridge) and kills the children.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NetHost {
  readonly name: string;
  readonly ns: string;
  readonly v4: string;
  readonly v6: string;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const CLI = new URL('../../src/cli/main.js', import.meta.url).pathname;
/** Every child is killed by then: a hung command fails its test instead of hanging the run. */
const CHILD_LIMIT_MS = 30_000;

export class GroupNet {
  readonly hosts: NetHost[] = [];
  readonly stateDir = mkdtempSync(join(tmpdir(), 'coapsec-group-'));
  readonly #hub: string;
  readonly #namespaces: string[] = [];
  readonly #children = new Set<ChildProcess>();

  /** Creates the hub and one namespace per name; fails with what it needs when it cannot. */
  constructor(names: readonly string[]) {
    const prefix = `cs${process.pid}`;
    this.#hub = `${prefix}hub`;
    try {
      this.#ip(['netns', 'add', this.#hub]);
      this.#namespaces.push(this.#hub);
      this.#ip(['-n', this.#hub, 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0']);
      this.#ip(['-n', this.#hub, 'link', 'set', 'br0', 'up']);
      names.forEach((name, i) => {
        const n = i + 1;
        const ns = `${prefix}${name}`;
        const veth = `${prefix}v${n}`;
        this.#ip(['netns', 'add', ns]);
        this.#namespaces.push(ns);
        this.#ip(['-n', this.#hub, 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
        this.#ip(['-n', this.#hub, 'link', 'set', veth, 'master', 'br0', 'up']);
        this.#ip(['-n', ns, 'link', 'set', 'lo', 'up']);
        this.#ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
        this.#ip(['-n', ns, 'addr', 'add', `192.0.2.${n}/24`, 'dev', 'eth0']);
        this.#ip(['-n', ns, 'addr', 'add', `2001:db8::${n}/64`, 'dev', 'eth0', 'nodad']);
        this.#ip(['-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0']);
        this.hosts.push({ name, ns, v4: `192.0.2.${n}`, v6: `2001:db8::${n}` });
      });
    } catch (error) {
      this.teardown();
      throw new Error(
        `multicast tests need network namespaces they create themselves: run them as root (or with CAP_NET_ADMIN and CAP_SYS_ADMIN) on Linux with iproute2's "ip" and veth/bridge support. Failed: ${(error as Error).message}`,
      );
    }
  }

  host(name: string): NetHost {
    const host = this.hosts.find((h) => h.name === name);
    if (host === undefined) throw new Error(`no host ${name}`);
    return host;
  }

  /** `coapsec ARGS` (or another Node script) inside the host's namespace, running until stopped (a server). */
  start(host: string, args: readonly string[], script = CLI): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.host(host).ns, process.execPath, script, ...args], { env: { ...process.env, COAPSEC_STATE_DIR: join(this.stateDir, host) }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.#children.add(child);
    const limit = setTimeout(() => child.kill('SIGKILL'), CHILD_LIMIT_MS * 4);
    limit.unref();
    child.on('exit', () => {
      clearTimeout(limit);
      this.#children.delete(child);
    });
    return child;
  }

  /** Starts a server and resolves once it says it serves (its stderr names the address). */
  async serve(host: string, args: readonly string[], script?: string): Promise<ChildProcess> {
    const child = script === undefined ? this.start(host, ['serve', ...args]) : this.start(host, args, script);
    let stderr = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server on ${host} did not start: ${stderr}`)), 10_000);
      child.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (/coapsec serving on/.test(stderr)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`server on ${host} exited (${code}): ${stderr}`));
      });
    });
    return child;
  }

  /** `coapsec ARGS` inside the host's namespace, to completion. */
  run(host: string, args: readonly string[], script?: string): Promise<RunResult> {
    const child = this.start(host, args, script);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    return new Promise((resolve) => {
      const limit = setTimeout(() => child.kill('SIGKILL'), CHILD_LIMIT_MS);
      child.on('close', (code) => {
        clearTimeout(limit);
        resolve({ code, stdout, stderr });
      });
    });
  }

  async stopChildren(): Promise<void> {
    const exits = [...this.#children].map((child) => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 3000).unref();
    }));
    await Promise.all(exits);
  }

  /** Removes every namespace this net made (their veths and the bridge go with them). Safe to call twice. */
  teardown(): void {
    for (const child of this.#children) child.kill('SIGKILL');
    for (const ns of this.#namespaces.splice(0).reverse()) {
      try {
        this.#ip(['netns', 'del', ns]);
      } catch {
        // Already gone.
      }
    }
    rmSync(this.stateDir, { recursive: true, force: true });
  }

  #ip(args: string[]): void {
    execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
  }
}
