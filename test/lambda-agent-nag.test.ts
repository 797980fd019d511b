import { App, Duration, RemovalPolicy, Stack, TimeZone } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import { expectNagClean } from './nag';
import { AgentAccess, AgentMemory, AgentModel, HermesLambdaAgent, KnowledgeBucket, McpServer, SlackSecrets, TelegramSecrets } from '../src';

const ENV = { account: '111111111111', region: 'us-east-1' };

// One App per test: nagFindings() re-synthesizes the whole app each time.

test('a default Lambda agent passes all four packs', () => {
  const stack = new Stack(new App(), 'Default', { env: ENV });
  new HermesLambdaAgent(stack, 'Agent', { access: AgentAccess.allowUsers({ telegram: ['123456789'] }) });

  // the stack really holds what the packs are meant to check
  const template = Template.fromStack(stack);
  template.resourceCountIs('AWS::Lambda::Function', 4); // ingress, worker, webhook registration, BucketDeployment handler
  template.resourceCountIs('AWS::Lambda::Url', 1);
  template.resourceCountIs('AWS::SQS::Queue', 2);
  template.resourceCountIs('AWS::DynamoDB::Table', 1);
  template.resourceCountIs('AWS::Backup::BackupSelection', 1);
  template.resourceCountIs('Custom::HermesTelegramWebhook', 1);
  template.resourceCountIs('AWS::Scheduler::ScheduleGroup', 1);
  template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);

  expectNagClean(stack);
});

test('a fully-featured Lambda agent (Telegram and Slack, scheduled jobs, AgentCore memory, budget, dashboard, webhook registration, backups) passes all four packs', () => {
  const stack = new Stack(new App(), 'Full', { env: ENV });
  const key = new kms.Key(stack, 'TeamKey', { enableKeyRotation: true });
  // The alarm topic is this test's own resource, configured as the packs
  // require: KMS-encrypted (with a key CloudWatch may use to publish) and TLS only.
  key.grant(new iam.ServicePrincipal('cloudwatch.amazonaws.com'), 'kms:Decrypt', 'kms:GenerateDataKey*');
  const alarmTopic = new sns.Topic(stack, 'Alarms', { masterKey: key, enforceSSL: true });

  new HermesLambdaAgent(stack, 'Agent', {
    access: AgentAccess.allowAll(),
    telegram: new TelegramSecrets(stack, 'Telegram', {
      botToken: secretsmanager.Secret.fromSecretNameV2(stack, 'Bot', 'team/telegram-bot'),
      encryptionKey: key,
    }),
    slack: new SlackSecrets(stack, 'Slack', {
      botToken: secretsmanager.Secret.fromSecretNameV2(stack, 'SlackBot', 'team/slack-bot'),
      encryptionKey: key,
    }),
    memory: new AgentMemory(stack, 'Memory', { encryptionKey: key, expiration: Duration.days(30) }),
    scheduledJobs: true,
    scheduleTimeZone: TimeZone.EUROPE_BERLIN,
    dailyTokenBudget: 500_000,
    tokenPrices: { inputPerMillion: 0.27, outputPerMillion: 1.1 },
    dashboard: true,
    model: AgentModel.openAiCompatible({
      baseUrl: 'https://api.deepseek.com/v1',
      modelName: 'deepseek-chat',
      apiKey: secretsmanager.Secret.fromSecretNameV2(stack, 'DeepSeek', 'team/deepseek'),
    }),
    settings: {
      soul: 'You are a terse personal assistant.',
      maxTurns: 20,
      disabledToolsets: ['image_gen'],
      mcpServers: [McpServer.http('docs', {
        url: 'https://mcp.example.com/mcp',
        secretHeaders: { Authorization: secretsmanager.Secret.fromSecretNameV2(stack, 'DocsToken', 'team/docs-mcp') },
      })],
    },
    knowledgeBucket: new KnowledgeBucket(stack, 'Knowledge', { encryptionKey: key }),
    sessionTtl: Duration.days(30),
    historyMaxMessages: 100,
    workerMemorySize: 3008,
    workerTimeout: Duration.minutes(10),
    maxReceiveCount: 5,
    workerReservedConcurrency: 5,
    logRetention: logs.RetentionDays.THREE_MONTHS,
    registerWebhook: true,
    alarmTopic,
    encryptionKey: key,
    removalPolicy: RemovalPolicy.DESTROY,
    backup: true,
  });

  const template = Template.fromStack(stack);
  template.resourceCountIs('Custom::HermesTelegramWebhook', 1);
  template.resourceCountIs('AWS::Backup::BackupSelection', 1);
  template.resourceCountIs('AWS::KMS::Key', 1);
  template.hasResourceProperties('AWS::Lambda::Function', { ReservedConcurrentExecutions: 5 });
  template.resourceCountIs('AWS::BedrockAgentCore::Memory', 1);
  template.resourceCountIs('AWS::Scheduler::ScheduleGroup', 1);
  template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
  template.hasResourceProperties('AWS::CloudWatch::Alarm', { AlarmActions: [{ Ref: stack.getLogicalId(alarmTopic.node.defaultChild as sns.CfnTopic) }] });

  expectNagClean(stack);
});

test('a Lambda agent using a KnowledgeBucket, TelegramSecrets, SlackSecrets and AgentMemory of another stack: no cycle, both stacks pass', () => {
  const app = new App();
  const shared = new Stack(app, 'Shared', { env: ENV });
  const knowledgeBucket = new KnowledgeBucket(shared, 'Knowledge');
  const telegram = new TelegramSecrets(shared, 'Telegram');
  const slack = new SlackSecrets(shared, 'Slack');
  const memory = new AgentMemory(shared, 'Memory');
  const agentStack = new Stack(app, 'AgentStack', { env: ENV });
  const agent = new HermesLambdaAgent(agentStack, 'Agent', {
    access: AgentAccess.allowUsers({ telegram: ['123456789'], slack: ['U012ABCDEF'] }),
    knowledgeBucket,
    telegram,
    slack,
    memory,
  });

  // a dependency cycle would throw here
  expect(() => app.synth()).not.toThrow();
  expect(shared.dependencies).toEqual([]);
  expect(agentStack.dependencies).toEqual([shared]);

  // the agent's grants stay on its side: nothing in the shared stack refers to it
  const sharedTemplate = JSON.stringify(Template.fromStack(shared).toJSON());
  expect(sharedTemplate).not.toContain('AgentStack');
  expect(sharedTemplate).not.toContain('Fn::ImportValue');
  // and the agent really uses the shared resources
  const agentTemplate = JSON.stringify(Template.fromStack(agentStack).toJSON());
  expect(agentTemplate).toContain('Fn::ImportValue');
  Template.fromStack(agentStack).resourceCountIs('AWS::S3::Bucket', 0);
  Template.fromStack(agentStack).resourceCountIs('AWS::SecretsManager::Secret', 0);
  expect(agent.knowledgeBucket).toBe(knowledgeBucket);

  expectNagClean(shared);
  expectNagClean(agentStack);
});
