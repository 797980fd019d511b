/**
 * What a platform team writes: two Slack assistants with different
 * personalities in the team's existing network, reading the team's existing
 * knowledge bucket, with Slack tokens that already live in Secrets Manager,
 * alarms going to the on-call topic, and cdk-nag's four packs run over the
 * whole app (the app exits non-zero on any unacknowledged finding).
 *
 *   npx cdk synth --app 'npx ts-node --transpile-only platform-team.ts'
 *
 * The same app exists in Python (examples/python/platform_team.py); the test
 * command checks both templates are identical.
 */
import { App, Stack, StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import { AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks, ServerlessChecks } from 'cdk-nag';
import { Construct } from 'constructs';
import { AgentAccess, AgentModel, HermesFargateGateway, KnowledgeBucket, SlackSecrets } from '../../src';

/** The account and region the platform team deploys to. */
const ENV = { account: '123456789012', region: 'eu-west-1' };

/** Two gateways sharing the team's VPC, ECS cluster and knowledge bucket. */
export class PlatformAgentsStack extends Stack {
  public readonly assistant: HermesFargateGateway;
  public readonly reviewer: HermesFargateGateway;

  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);

    // The network team's VPC (private subnets route through their NAT).
    const vpc = ec2.Vpc.fromVpcAttributes(this, 'Vpc', {
      vpcId: 'vpc-0a1b2c3d4e5f60718',
      availabilityZones: ['eu-west-1a', 'eu-west-1b'],
      privateSubnetIds: ['subnet-0a1b2c3d4e5f60001', 'subnet-0a1b2c3d4e5f60002'],
      privateSubnetRouteTableIds: ['rtb-0a1b2c3d4e5f60001', 'rtb-0a1b2c3d4e5f60002'],
    });

    // The team's documentation bucket, SSE-KMS with the team's key.
    const knowledge = KnowledgeBucket.fromBucket(this, 'Knowledge',
      s3.Bucket.fromBucketName(this, 'DocsBucket', 'acme-platform-knowledge'),
      kms.Key.fromKeyArn(this, 'DocsKey', 'arn:aws:kms:eu-west-1:123456789012:key/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b'));

    const onCall = sns.Topic.fromTopicArn(this, 'OnCall', 'arn:aws:sns:eu-west-1:123456789012:platform-on-call');

    // One Slack app per gateway: two Socket Mode connections of one app would split its events.
    this.assistant = new HermesFargateGateway(this, 'PlatformAssistant', {
      vpc,
      knowledgeBucket: knowledge,
      alarmTopic: onCall,
      access: AgentAccess.allowUsers({ slack: ['U012ABCDEF', 'U034GHIJKL', 'U056MNOPQR'] }),
      slack: new SlackSecrets(this, 'AssistantSlack', {
        botToken: secretsmanager.Secret.fromSecretNameV2(this, 'AssistantBotToken', 'platform/hermes-assistant/slack-bot-token'),
        appToken: secretsmanager.Secret.fromSecretNameV2(this, 'AssistantAppToken', 'platform/hermes-assistant/slack-app-token'),
        signingSecret: secretsmanager.Secret.fromSecretNameV2(this, 'AssistantSigning', 'platform/hermes-assistant/slack-signing-secret'),
      }),
      settings: {
        soul: 'You are the platform team\'s friendly assistant. Explain how our ECS platform works, '
          + 'answer from knowledge/ and projects/, and say plainly when they do not cover a question.',
        projectContext: 'Payments and search run on ECS in eu-west-1; deploys happen on Tuesdays.',
      },
    });

    this.reviewer = new HermesFargateGateway(this, 'SecurityReviewer', {
      vpc,
      cluster: this.assistant.cluster,
      knowledgeBucket: knowledge,
      alarmTopic: onCall,
      access: AgentAccess.allowUsers({ slack: ['U078STUVWX'] }),
      model: AgentModel.bedrock('us.anthropic.claude-opus-4-1'),
      slack: new SlackSecrets(this, 'ReviewerSlack', {
        botToken: secretsmanager.Secret.fromSecretCompleteArn(this, 'ReviewerBotToken',
          'arn:aws:secretsmanager:eu-west-1:123456789012:secret:platform/hermes-reviewer/slack-bot-token-AbCdEf'),
        appToken: secretsmanager.Secret.fromSecretCompleteArn(this, 'ReviewerAppToken',
          'arn:aws:secretsmanager:eu-west-1:123456789012:secret:platform/hermes-reviewer/slack-app-token-GhIjKl'),
        signingSecret: secretsmanager.Secret.fromSecretCompleteArn(this, 'ReviewerSigning',
          'arn:aws:secretsmanager:eu-west-1:123456789012:secret:platform/hermes-reviewer/slack-signing-secret-MnOpQr'),
      }),
      settings: {
        soul: 'You are a sceptical security reviewer. Point out risks in designs and changes, cite the '
          + 'policy in knowledge/ you rely on, and never approve anything yourself.',
      },
    });
  }
}

/** Adds the example's stacks to `app`. */
export function platformTeamExample(app: App): Stack[] {
  return [new PlatformAgentsStack(app, 'PlatformAgents', { env: ENV })];
}

/**
 * Runs cdk-nag's AwsSolutions, Serverless, NIST 800-53 R5 and HIPAA packs over
 * the whole (synthesized) app; returns the unacknowledged findings as
 * `Rule @ construct/path`. (cdk-nag 3 packs run as CDK validation plugins
 * only on an aws-cdk-lib that hands them the construct tree; 2.257 does not,
 * so they are called directly.)
 */
export function nagFindings(app: App): string[] {
  const findings = new Set<string>();
  for (const pack of [new AwsSolutionsChecks(), new ServerlessChecks(), new NIST80053R5Checks(), new HIPAASecurityChecks()]) {
    for (const violation of pack.validateScope(app).violations) {
      for (const resource of violation.violatingResources) findings.add(`${violation.ruleName} @ ${resource.constructPath}`);
    }
  }
  return [...findings].sort();
}

if (require.main === module) {
  const app = new App();
  platformTeamExample(app);
  app.synth();
  const findings = nagFindings(app);
  findings.forEach((f) => console.error(`cdk-nag: ${f}`));
  process.exit(findings.length > 0 ? 1 : 0);
}
