// npm's prepack and postpack hooks (`node scripts/pack.mjs prepack|postpack`).
//
// prepack builds what the tarball ships (dist/src, from a clean folder so no stale module of an
// earlier build slips in) and takes the `prepare` script out of package.json while npm packs it;
// postpack puts package.json back as it was.
//
// Why: `prepare` exists for git installs and fresh clones, where npm runs it to build from source.
// In a tarball it has no purpose (the build is inside, and src/ and tsc are not), yet npm lists it as
// an install script for every non-registry install (`npm install ./coapsec-x.tgz`) and asks the
// user to approve it: a build warning for a package that needs no build.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const manifest = join(root, 'package.json');
const backup = join(root, 'package.json.before-pack');

function restore() {
  if (existsSync(backup)) renameSync(backup, manifest);
}

const step = process.argv[2];
if (step === 'prepack') {
  // A pack that failed before its postpack left the backup: that is the real package.json.
  restore();
  rmSync(join(root, 'dist', 'src'), { recursive: true, force: true });
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
  copyFileSync(manifest, backup);
  const packed = JSON.parse(readFileSync(manifest, 'utf8'));
  delete packed.scripts.prepare;
  writeFileSync(manifest, JSON.stringify(packed, null, 2) + '\n');
} else if (step === 'postpack') {
  restore();
} else {
  console.error('usage: node scripts/pack.mjs prepack|postpack');
  process.exit(2);
}
