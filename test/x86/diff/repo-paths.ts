/** Where the harness finds its C sources and keeps its build cache. */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: the nearest ancestor of this module holding the vsmvisor package.json. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'vsmvisor') return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('The vsmvisor repository root (package.json) was not found above the diff harness.');
    dir = parent;
  }
}

/** Source directory of the native runner (C and assembly are not copied to dist/). */
export function nativeSourceDir(): string {
  return join(repoRoot(), 'test', 'x86', 'diff', 'native');
}

/** node_modules/.cache/vsmvisor-diff, or a directory under the OS temp dir if that cannot be created. */
export function cacheDir(): string {
  for (const dir of [join(repoRoot(), 'node_modules', '.cache', 'vsmvisor-diff'), join(tmpdir(), 'vsmvisor-diff')]) {
    try {
      mkdirSync(dir, { recursive: true });
      return dir;
    } catch {
      // fall through to the next candidate
    }
  }
  throw new Error('No writable cache directory for the diff harness (tried node_modules/.cache and the OS temp dir).');
}
