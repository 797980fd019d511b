// The cross-language template check (scripts/bindings/compare-templates.ts):
// what it ignores, what it reports, and that it notices missing examples and
// cdk-nag findings.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { REQUIRED_EXAMPLES, compareExamples, normalizeTemplate, templateDifferences } from '../scripts/bindings/compare-templates';
import { Language, NAG_FINDINGS_FILE, examplesOutdir } from '../scripts/bindings/layout';

const HASH_A = 'a'.repeat(48) + '0123456789abcdef';
const HASH_B = 'b'.repeat(48) + 'fedcba9876543210';

/** A template as one language's app would synthesize it. */
function template(hash: string, language: string, overrides: Record<string, unknown> = {}): Record<string, any> {
  return {
    Metadata: { 'aws:cdk:path': 'Stack' },
    Parameters: { BootstrapVersion: { Type: 'AWS::SSM::Parameter::Value<String>', Default: '/cdk-bootstrap/hnb659fds/version' } },
    Rules: { CheckBootstrapVersion: { Assertions: [] } },
    Conditions: { CDKMetadataAvailable: { 'Fn::Or': [] } },
    Resources: {
      CDKMetadata: { Type: 'AWS::CDK::Metadata', Properties: { Analytics: `v2:deflate64:${language}` } },
      Worker: {
        Type: 'AWS::Lambda::Function',
        Metadata: { 'aws:asset:path': `asset.${hash}`, 'aws:cdk:path': `Stack/Worker (${language})` },
        Properties: {
          Code: { ImageUri: { 'Fn::Sub': `\${AWS::AccountId}.dkr.ecr.\${AWS::Region}.\${AWS::URLSuffix}/cdk-hnb659fds-container-assets:${hash}` } },
          MemorySize: 2048,
          Environment: { Variables: { SETTINGS: '/.hermes-aws/settings/4a9641ad14931cb0.json' } },
        },
      },
      Handler: { Type: 'AWS::Lambda::Function', Properties: { Code: { S3Key: `${hash}.zip` }, Layers: ['one', 'two'] } },
      ...overrides,
    },
  };
}

describe('normalizeTemplate', () => {
  test('ignores asset hashes, Metadata, CDKMetadata and the bootstrap check', () => {
    const ts = normalizeTemplate(template(HASH_A, 'typescript'));
    expect(ts).toEqual(normalizeTemplate(template(HASH_B, 'python')));
    expect(JSON.stringify(ts)).not.toMatch(/Metadata|BootstrapVersion|[0-9a-f]{64}/);
    expect(ts).toEqual({
      Resources: {
        Worker: {
          Type: 'AWS::Lambda::Function',
          Properties: {
            Code: { ImageUri: { 'Fn::Sub': '${AWS::AccountId}.dkr.ecr.${AWS::Region}.${AWS::URLSuffix}/cdk-hnb659fds-container-assets:<asset-hash>' } },
            MemorySize: 2048,
            // a short content hash of the settings is not an asset hash: it must match
            Environment: { Variables: { SETTINGS: '/.hermes-aws/settings/4a9641ad14931cb0.json' } },
          },
        },
        Handler: { Type: 'AWS::Lambda::Function', Properties: { Code: { S3Key: '<asset-hash>.zip' }, Layers: ['one', 'two'] } },
      },
    });
  });

  test('keeps user Parameters, Conditions and Outputs', () => {
    const t = template(HASH_A, 'typescript');
    t.Parameters.Env = { Type: 'String' };
    t.Conditions.IsProd = { 'Fn::Equals': ['a', 'b'] };
    t.Outputs = { Url: { Value: 'x' } };
    const n = normalizeTemplate(t) as any;
    expect(n.Parameters).toEqual({ Env: { Type: 'String' } });
    expect(n.Conditions).toEqual({ IsProd: { 'Fn::Equals': ['a', 'b'] } });
    expect(n.Outputs).toEqual({ Url: { Value: 'x' } });
  });
});

describe('templateDifferences', () => {
  test('names the path of every changed, missing and unexpected value', () => {
    const expected = normalizeTemplate(template(HASH_A, 'typescript', { Queue: { Type: 'AWS::SQS::Queue' } }));
    const changed = template(HASH_B, 'python', { Topic: { Type: 'AWS::SNS::Topic' } });
    changed.Resources.Worker.Properties.MemorySize = 1024;
    changed.Resources.Handler.Properties.Layers = ['one'];
    expect(templateDifferences(expected, normalizeTemplate(changed))).toEqual([
      'Resources.Handler.Properties.Layers[1]: missing (expected "two")',
      'Resources.Queue: missing (expected {"Type":"AWS::SQS::Queue"})',
      'Resources.Topic: unexpected {"Type":"AWS::SNS::Topic"}',
      'Resources.Worker.Properties.MemorySize: expected 2048, got 1024',
    ]);
  });

  test('reports a type change and shortens long values', () => {
    const diffs = templateDifferences({ A: { B: 'x'.repeat(500) } }, { A: ['y'] });
    expect(diffs).toHaveLength(1);
    expect(diffs[0]).toMatch(/^A: expected \{"B":"x+\.\.\., got \["y"\]$/);
    expect(diffs[0].length).toBeLessThan(220);
  });

  test('equal templates have no differences', () => {
    expect(templateDifferences(normalizeTemplate(template(HASH_A, 'java')), normalizeTemplate(template(HASH_B, 'typescript')))).toEqual([]);
  });
});

describe('compareExamples', () => {
  let root: string;
  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'template-equality-'));
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  function synthesized(language: Language, example: string, templates: Record<string, unknown>, nag: string[] | undefined = []): void {
    const dir = examplesOutdir(language, example, root);
    fs.mkdirSync(dir, { recursive: true });
    for (const [stack, t] of Object.entries(templates)) fs.writeFileSync(path.join(dir, `${stack}.template.json`), JSON.stringify(t));
    if (nag) fs.writeFileSync(path.join(dir, NAG_FINDINGS_FILE), JSON.stringify(nag));
  }

  function allSynthesized(language: Language, hash: string): void {
    for (const example of REQUIRED_EXAMPLES[language]) synthesized(language, example, { [`${example}-stack`]: template(hash, language) });
  }

  test('passes when every language matches typescript', () => {
    allSynthesized('typescript', HASH_A);
    allSynthesized('python', HASH_B);
    allSynthesized('java', HASH_B);
    expect(compareExamples(['python', 'java'], root)).toEqual([]);
  });

  test('every shape is required in every language, composites in TypeScript and Python', () => {
    expect(REQUIRED_EXAMPLES.java).toEqual(expect.arrayContaining(['fargate-gateway', 'lambda-agent', 'agentcore-agent']));
    expect(REQUIRED_EXAMPLES.python).toEqual(expect.arrayContaining([...REQUIRED_EXAMPLES.java, 'platform-team']));
    expect(REQUIRED_EXAMPLES.typescript).toEqual(REQUIRED_EXAMPLES.python);
  });

  test('reports a missing example, a missing stack, a difference and nag findings', () => {
    allSynthesized('typescript', HASH_A);
    allSynthesized('python', HASH_B);
    fs.rmSync(examplesOutdir('python', 'platform-team', root), { recursive: true });
    const changed = template(HASH_B, 'python');
    changed.Resources.Worker.Properties.MemorySize = 512;
    synthesized('python', 'lambda-agent', { 'lambda-agent-stack': changed, 'extra-stack': changed }, ['AwsSolutions-L1 @ Stack/Fn']);
    synthesized('typescript', 'fargate-gateway', { 'fargate-gateway-stack': template(HASH_A, 'typescript') }, undefined);
    fs.rmSync(path.join(examplesOutdir('typescript', 'fargate-gateway', root), NAG_FINDINGS_FILE));

    const problems = compareExamples(['python'], root);
    expect(problems).toEqual([
      `typescript/fargate-gateway: cdk-nag no ${NAG_FINDINGS_FILE} written`,
      'python/lambda-agent: cdk-nag AwsSolutions-L1 @ Stack/Fn',
      'python/lambda-agent: stacks extra-stack.template.json, lambda-agent-stack.template.json, typescript has lambda-agent-stack.template.json',
      expect.stringMatching(/^python\/lambda-agent\/lambda-agent-stack\.template\.json differs from typescript in 1 place\(s\)/),
      '    Resources.Worker.Properties.MemorySize: expected 2048, got 512',
      'python/platform-team: not synthesized (no cdk.out/examples/python/platform-team)',
    ]);
    // the normalized templates are saved for `diff -u`
    const saved = path.join(root, 'cdk.out', 'examples', 'normalized', 'python', 'lambda-agent', 'lambda-agent-stack.template.json');
    expect(JSON.parse(fs.readFileSync(saved, 'utf-8')).Resources.Worker.Properties.MemorySize).toBe(512);
  });
});
