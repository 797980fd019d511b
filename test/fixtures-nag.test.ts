import { App } from 'aws-cdk-lib';
import { FIXTURES } from './fixtures/stacks';
import { expectNagClean } from './nag';

// The same stacks cfn-lint checks (scripts/cfn-lint.ts): every one must pass
// the four cdk-nag packs with nothing left unacknowledged.
test.each(FIXTURES.map((build) => [build.name, build] as const))('fixture %s has no unacknowledged cdk-nag finding', (_name, build) => {
  expectNagClean(build(new App()));
});
