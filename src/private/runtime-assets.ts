import * as path from 'path';
import { IgnoreMode } from 'aws-cdk-lib';

/**
 * The Docker build context and Python package shipped with this library
 * (`assets/` at the package root; this file is two levels below it in both
 * `src/` and the compiled `lib/`).
 */
export const RUNTIME_ASSET_DIR = path.join(__dirname, '..', '..', 'assets');

/** Docker build targets of assets/Dockerfile, one per shape. */
export enum RuntimeTarget {
  GATEWAY = 'gateway',
  LAMBDA = 'lambda',
  AGENTCORE = 'agentcore',
}

/** Options shared by every image asset built from the runtime context. */
export const RUNTIME_ASSET_OPTIONS = {
  // Honour assets/.dockerignore (tests, caches) so hashing stays fast and
  // the image only changes when runtime code does.
  ignoreMode: IgnoreMode.DOCKER,
};
