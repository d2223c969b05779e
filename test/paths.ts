/** The repository root, for tests that run the CLI or read guests (dist/test/... -> repo). */
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
