// The composite example a platform team would write (examples/typescript/platform-team.ts):
// it must use what exists (VPC, bucket, secrets, topic), share one cluster between two
// gateways with different personalities, and pass cdk-nag's four packs as a whole app.
import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { TYPESCRIPT_EXAMPLES } from '../examples/typescript';
import { nagFindings, platformTeamExample } from '../examples/typescript/platform-team';
import { COMPOSITE_EXAMPLES, SHAPE_EXAMPLES } from '../scripts/bindings/layout';

describe('platform-team example', () => {
  const app = new App();
  const [stack] = platformTeamExample(app);
  const template = Template.fromStack(stack);

  /** The settings document a gateway's container receives. */
  function settingsOf(gatewayId: string): any {
    const defs = template.findResources('AWS::ECS::TaskDefinition');
    const [def] = Object.entries(defs).filter(([id]) => id.startsWith(`${gatewayId}TaskDefinition`)).map(([, r]) => r);
    const env: Array<{ Name: string; Value: string }> = def.Properties.ContainerDefinitions[0].Environment;
    return JSON.parse(env.find((e) => e.Name === 'HERMES_AWS_SETTINGS')!.Value);
  }

  test('creates no network, bucket or chat secrets: it uses the existing ones', () => {
    template.resourceCountIs('AWS::EC2::VPC', 0);
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.resourceCountIs('AWS::S3::Bucket', 0);
    // the only secrets created are the two gateways' generated API server keys
    const secrets = Object.keys(template.findResources('AWS::SecretsManager::Secret'));
    expect(secrets).toHaveLength(2);
    expect(secrets.every((id) => /ApiServerKey/.test(id))).toBe(true);
  });

  test('two services in one cluster, in the existing private subnets', () => {
    template.resourceCountIs('AWS::ECS::Cluster', 1);
    const services = Object.values(template.findResources('AWS::ECS::Service'));
    expect(services).toHaveLength(2);
    const [cluster] = Object.keys(template.findResources('AWS::ECS::Cluster'));
    for (const service of services) {
      expect(service.Properties.Cluster).toEqual({ Ref: cluster });
      expect(service.Properties.NetworkConfiguration.AwsvpcConfiguration.Subnets).toEqual(['subnet-0a1b2c3d4e5f60001', 'subnet-0a1b2c3d4e5f60002']);
    }
  });

  test('the gateways have different personalities, models, users and Slack apps', () => {
    const assistant = settingsOf('PlatformAssistant');
    const reviewer = settingsOf('SecurityReviewer');
    expect(assistant.soul).toMatch(/friendly assistant/);
    expect(reviewer.soul).toMatch(/sceptical security reviewer/);
    expect(assistant.projectContext).toMatch(/Tuesdays/);
    expect(reviewer.projectContext ?? null).toBeNull();
    expect(assistant.config.model.default).toBe('us.anthropic.claude-sonnet-4-6');
    expect(reviewer.config.model.default).toBe('us.anthropic.claude-opus-4-1');

    const secretsOf = (gatewayId: string) => Match.objectLike({
      ContainerDefinitions: [Match.objectLike({
        Environment: Match.arrayWith([{ Name: 'HERMES_AWS_GATEWAY_ID', Value: `PlatformAgents/${gatewayId}` }]),
        Secrets: Match.arrayWith([Match.objectLike({ Name: 'SLACK_BOT_TOKEN' })]),
      })],
    });
    const json = (gatewayId: string) => JSON.stringify(Object.values(template.findResources('AWS::ECS::TaskDefinition', { Properties: secretsOf(gatewayId) })));
    expect(json('PlatformAssistant')).toContain('secret:platform/hermes-assistant/slack-bot-token');
    expect(json('PlatformAssistant')).not.toContain('hermes-reviewer');
    expect(json('SecurityReviewer')).toContain('secret:platform/hermes-reviewer/slack-bot-token-AbCdEf');
    expect(json('SecurityReviewer')).not.toContain('hermes-assistant');
  });

  test('both gateways read the existing bucket and alarm to the on-call topic', () => {
    const defs = Object.values(template.findResources('AWS::ECS::TaskDefinition'));
    for (const def of defs) {
      expect(def.Properties.ContainerDefinitions[0].Environment).toContainEqual({ Name: 'HERMES_AWS_KNOWLEDGE_BUCKET', Value: 'acme-platform-knowledge' });
    }
    const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm'));
    expect(alarms.length).toBeGreaterThanOrEqual(4);
    for (const alarm of alarms) expect(alarm.Properties.AlarmActions).toEqual(['arn:aws:sns:eu-west-1:123456789012:platform-on-call']);
    // both task roles may decrypt with the bucket's key
    const decryptsDocs = template.findResources('AWS::IAM::Policy', {
      Properties: {
        PolicyDocument: {
          Statement: Match.arrayWith([Match.objectLike({
            Action: 'kms:Decrypt',
            Resource: 'arn:aws:kms:eu-west-1:123456789012:key/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b',
          })]),
        },
      },
    });
    expect(Object.keys(decryptsDocs).map((id) => id.replace(/TaskDefinition.*/, '')).sort()).toEqual(['PlatformAssistant', 'SecurityReviewer']);
  });

  test('the whole app is cdk-nag clean (AwsSolutions, Serverless, NIST 800-53 R5, HIPAA)', () => {
    app.synth();
    expect(nagFindings(app)).toEqual([]);
  });
});

test('nagFindings reports findings of every pack, by rule and construct path', () => {
  const app = new App();
  const plain = new Stack(app, 'Plain');
  new sqs.Queue(plain, 'Queue');
  new s3.Bucket(plain, 'Bucket');
  app.synth();
  const findings = nagFindings(app);
  expect(findings).toEqual(expect.arrayContaining([
    'AwsSolutions-SQS3 @ Plain/Queue/Resource', // no dead-letter queue
    'Serverless-SQSRedrivePolicy @ Plain/Queue/Resource',
    'NIST.800.53.R5-S3BucketLoggingEnabled @ Plain/Bucket/Resource',
    'HIPAA.Security-S3BucketLoggingEnabled @ Plain/Bucket/Resource',
  ]));
});

test('every example named in scripts/bindings/layout.ts exists in TypeScript', () => {
  expect(Object.keys(TYPESCRIPT_EXAMPLES).sort()).toEqual([...SHAPE_EXAMPLES, ...COMPOSITE_EXAMPLES].sort());
});
