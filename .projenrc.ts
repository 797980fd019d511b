import { awscdk, javascript } from 'projen';
import { UpdateSnapshot } from 'projen/lib/javascript';

// aws-cdk-lib floor: 2.257.0 is the first release that has both the stable
// `aws-bedrockagentcore` L2s (graduated in 2.255.0) and the core `Validations`
// API that cdk-nag v3 plugs into (cdk-nag 3.x peer-depends on ^2.257.0).
// It also covers stable EventBridge Scheduler (2.186.0).
const CDK_VERSION = '2.257.0';

const project = new awscdk.AwsCdkConstructLibrary({
  name: 'cdk-hermes-agent',
  description:
    'AWS CDK constructs that run a production-grade Hermes Agent (NousResearch) on ECS Fargate, AWS Lambda or Bedrock AgentCore Runtime.',
  author: 'cdk-hermes-agent maintainers',
  authorAddress: 'maintainers@cdk-hermes-agent.invalid',
  repositoryUrl: 'https://github.com/cdk-hermes-agent/cdk-hermes-agent.git',
  defaultReleaseBranch: 'main',
  license: 'Apache-2.0',
  keywords: ['aws-cdk', 'cdk', 'hermes-agent', 'ai-agent', 'bedrock', 'agentcore', 'fargate', 'lambda', 'slack', 'telegram'],
  packageManager: javascript.NodePackageManager.NPM,
  projenrcTs: true,

  cdkVersion: CDK_VERSION,
  constructsVersion: '10.5.1', // cdk-nag 3 needs constructs ^10.5.1
  jsiiVersion: '~6.0.0',

  devDeps: [
    'cdk-nag@^3.0.2',
    '@aws-cdk/integ-tests-alpha@2.245.0-alpha.0',
    '@aws-cdk/integ-runner@2.197.10',
    'aws-cdk@3.0.0',
  ],

  publishToPypi: {
    distName: 'cdk-hermes-agent',
    module: 'cdk_hermes_agent',
  },
  publishToMaven: {
    javaPackage: 'io.github.cdkhermesagent',
    mavenGroupId: 'io.github.cdkhermesagent',
    mavenArtifactId: 'cdk-hermes-agent',
  },

  // No GitHub automation: CI is `.ci/run`.
  github: false,
  release: false,
  depsUpgrade: false,
  buildWorkflow: false,
  pullRequestTemplate: false,

  jestOptions: {
    // jest 30 resolves modules with unrs-resolver (see the resolver note below).
    jestVersion: '^29',
    // Snapshots are assertions: never rewrite them silently during `test`.
    updateSnapshot: UpdateSnapshot.NEVER,
    passWithNoTests: false,
    jestConfig: {
      testTimeout: 120_000,
      testMatch: ['<rootDir>/test/**/*.test.ts'],
    },
  },
  tsconfigDev: {
    include: ['../integ/**/*.ts', '../examples/**/*.ts', '../bench/**/*.ts', '../scripts/**/*.ts'],
    compilerOptions: {},
  },
  eslintOptions: {
    dirs: ['src'],
    devdirs: ['test', 'integ', 'examples', 'bench', 'scripts'],
  },
  gitignore: [
    '.venv/',
    'cdk.out/',
    'cdk.context.json',
    '.lint-templates/',
    '__pycache__/',
    '*.egg-info/',
    '.pytest_cache/',
    'integ/**/cdk-integ.out.*',
    'integ/**/*.snapshot/asset.*',
    '.bench/',
    '.venv-examples/',
    'examples/java/target/',
  ],
});

project.addPackageIgnore('/examples/');
for (const p of ['/bench/', '/integ/', '/scripts/', '/.ci/', '/assets/tests/', '.venv/', '/.venv-examples/', '__pycache__/', '/.bench/', '/.lint-templates/', '/cdk.out/', 'cdk.context.json', '*.egg-info/', '.pytest_cache/']) {
  project.addPackageIgnore(p);
}

// eslint-import-resolver-typescript 4.x pulls unrs-resolver, whose per-platform
// optional binaries the package registry here does not serve, so `npm ci`
// would reject the lock file. 3.6 resolves with enhanced-resolve instead.
project.deps.removeDependency('eslint-import-resolver-typescript');
project.addDevDeps('eslint-import-resolver-typescript@~3.6.3');
// ts-jest 29.4 requires jest-util as a peer; name it so npm puts it at the top level.
project.addDevDeps('jest-util@^29');

const tsNode = 'ts-node --transpile-only --project test/tsconfig.json';

// Python runtime: one venv from pinned requirements, created on demand.
const setupPython = project.addTask('setup:python', {
  description: 'Create/refresh .venv from assets/requirements (idempotent)',
  exec: 'bash scripts/setup-python.sh',
});

const pytest = project.addTask('test:python', {
  description: 'pytest for the Python runtime (moto server + stub model + real hermes-agent)',
});
pytest.spawn(setupPython);
pytest.exec('.venv/bin/python -m pytest assets/tests -q -p no:cacheprovider');

const cfnLint = project.addTask('test:cfn-lint', {
  description: 'Synthesize every fixture stack and the example app, then run cfn-lint over all templates',
});
cfnLint.spawn(setupPython);
cfnLint.exec(`${tsNode} scripts/cfn-lint.ts`);

const integ = project.addTask('test:integ', {
  description: 'Check committed integ-test snapshots (no AWS credentials needed)',
  exec: 'integ-runner --directory integ --language typescript --parallel-regions us-east-1',
});
project.addTask('integ:update', {
  description: 'Re-synthesize integ snapshots without deploying (review the diff!)',
  exec: 'integ-runner --directory integ --language typescript --dry-run --force --update-on-failed',
});

// Bindings and example apps (scripts/bindings/): jsii-pacmak builds the Python
// and Java packages from the compiled library; the example apps in
// examples/{typescript,python,java} are synthesized with each, and every
// Python/Java template must equal the TypeScript one apart from asset hashes
// and metadata. Each step is a task of its own; `test:bindings` runs them all
// (the Java chain in the background) and is part of `test`.
const bindingsPython = project.addTask('bindings:python', {
  description: 'Build the Python package (dist/python) with jsii-pacmak; skipped when nothing packed changed',
  exec: 'bash scripts/bindings/build.sh python',
});
const bindingsJava = project.addTask('bindings:java', {
  description: 'Build the Java package (dist/java) with jsii-pacmak; skipped when nothing packed changed',
  exec: 'bash scripts/bindings/build.sh java',
});
// projen's package:* tasks rebuild unconditionally; reuse the stamped build.
project.tasks.tryFind('package:python')?.reset();
project.tasks.tryFind('package:python')?.spawn(bindingsPython);
project.tasks.tryFind('package:java')?.reset();
project.tasks.tryFind('package:java')?.spawn(bindingsJava);
project.addTask('examples:typescript', {
  description: 'Synthesize the TypeScript example apps into cdk.out/examples/typescript (with their cdk-nag findings)',
  exec: `${tsNode} scripts/bindings/synth-typescript.ts`,
  receiveArgs: true,
});
project.addTask('examples:python', {
  description: 'Synthesize the Python example apps with the built wheel (venv .venv-examples) into cdk.out/examples/python',
  exec: 'bash scripts/bindings/python-examples.sh',
  receiveArgs: true,
});
project.addTask('examples:java', {
  description: 'Synthesize the Java example apps with the built jar (Maven) into cdk.out/examples/java',
  exec: 'bash scripts/bindings/java-examples.sh',
  receiveArgs: true,
});
project.addTask('examples:compare', {
  description: 'Check the Python and Java example templates equal the TypeScript ones (asset hashes and metadata aside) and cdk-nag findings are empty',
  exec: `${tsNode} scripts/bindings/compare-templates.ts python java`,
});
const testBindings = project.addTask('test:bindings', {
  description: 'Build both bindings, synthesize every example app in TypeScript, Python and Java, compare the templates (needs `compile` first)',
  exec: 'bash scripts/bindings/test.sh',
});

project.testTask.spawn(cfnLint);
project.testTask.spawn(integ);
project.testTask.spawn(pytest);
project.testTask.spawn(testBindings);

project.addTask('example', {
  description: 'Main job: synthesize the example app with every shape and print its summary',
  exec: `${tsNode} scripts/example-summary.ts`,
});

const bench = project.addTask('bench', {
  description: 'Run the benchmarks under bench/ (prints figures; never asserts timings)',
});
bench.exec(`${tsNode} bench/synth.bench.ts`);
bench.exec(`${tsNode} bench/idle-cost.ts`);
bench.spawn(setupPython);
bench.exec('.venv/bin/python bench/image_deps.py');
bench.exec('.venv/bin/python bench/ingress_latency.py');
bench.exec('.venv/bin/python bench/worker_init.py');

project.addTask('cost', {
  description: 'Fixed monthly cost of synthesized templates, resource by resource: npx projen cost [cdk.out | x.template.json...] [--markdown]',
  exec: `${tsNode} scripts/cost/cli.ts`,
  receiveArgs: true,
});

project.synth();
