import { App, Duration, RemovalPolicy, Stack, TimeZone, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import { expectNagClean } from './nag';
import { AgentAccess, AgentMemory, AgentModel, KnowledgeBucket, McpServer, SlackSecrets, TelegramSecrets } from '../src';
import { HermesAgentCoreAgent } from '../src/agentcore';

const ENV = { account: '111111111111', region: 'us-east-1' };

// One App per test: nagFindings() re-synthesizes the whole app each time.

test('a default AgentCore agent passes all four packs', () => {
  const stack = new Stack(new App(), 'Default', { env: ENV });
  new HermesAgentCoreAgent(stack, 'Agent', { access: AgentAccess.allowUsers({ telegram: ['123456789'] }) });

  // the stack really holds what the packs are meant to check
  const template = Template.fromStack(stack);
  template.resourceCountIs('AWS::BedrockAgentCore::Runtime', 1);
  template.resourceCountIs('AWS::Lambda::Function', 4); // ingress, dispatcher, webhook registration, BucketDeployment handler
  template.resourceCountIs('AWS::Lambda::Url', 1);
  template.resourceCountIs('AWS::SQS::Queue', 2);
  template.resourceCountIs('AWS::DynamoDB::Table', 1);
  template.resourceCountIs('AWS::Scheduler::ScheduleGroup', 1);
  template.resourceCountIs('AWS::Logs::Delivery', 3); // traces, application and usage logs

  expectNagClean(stack);
});

test('a fully-featured AgentCore agent (VPC, memory, Slack, budgets, alarms) passes all four packs', () => {
  const stack = new Stack(new App(), 'Full', { env: ENV });
  const key = new kms.Key(stack, 'TeamKey', { enableKeyRotation: true });
  key.grant(new iam.ServicePrincipal('cloudwatch.amazonaws.com'), 'kms:Decrypt', 'kms:GenerateDataKey*');
  const alarmTopic = new sns.Topic(stack, 'Alarms', { masterKey: key, enforceSSL: true });
  // The test's own VPC (the user's, in real life): private subnets reaching AWS through endpoints only.
  const vpc = new ec2.Vpc(stack, 'Vpc', {
    natGateways: 0,
    subnetConfiguration: [{ name: 'Private', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }],
    flowLogs: { all: { trafficType: ec2.FlowLogTrafficType.ALL, destination: ec2.FlowLogDestination.toCloudWatchLogs(new logs.LogGroup(stack, 'FlowLogs', { encryptionKey: key })) } },
  });
  Validations.of(vpc).acknowledge(...['NIST.800.53.R5', 'HIPAA.Security'].flatMap((pack) => [
    { id: `${pack}-VPCDefaultSecurityGroupClosed`, reason: 'Test fixture: the VPC a user passes, not part of the construct.' },
    { id: `${pack}-IAMNoInlinePolicy`, reason: 'Test fixture: the flow log role of the user\'s VPC.' },
  ]));

  new HermesAgentCoreAgent(stack, 'Agent', {
    access: AgentAccess.allowUsers({ telegram: ['123456789'], slack: ['U012ABCDEF'] }),
    telegram: new TelegramSecrets(stack, 'Telegram', {
      botToken: secretsmanager.Secret.fromSecretNameV2(stack, 'Bot', 'team/telegram-bot'),
      encryptionKey: key,
    }),
    slack: new SlackSecrets(stack, 'Slack', { encryptionKey: key }),
    model: AgentModel.openAiCompatible({
      baseUrl: 'https://api.deepseek.com/v1',
      modelName: 'deepseek-chat',
      apiKey: secretsmanager.Secret.fromSecretNameV2(stack, 'DeepSeek', 'team/deepseek'),
    }),
    settings: {
      soul: 'You are a terse personal assistant.',
      mcpServers: [McpServer.http('docs', { url: 'https://mcp.example.com/mcp' })],
    },
    knowledgeBucket: new KnowledgeBucket(stack, 'Knowledge', { encryptionKey: key }),
    memory: new AgentMemory(stack, 'Memory', { encryptionKey: key }),
    runtimeName: 'hermes_full',
    idleTimeout: Duration.minutes(5),
    maxLifetime: Duration.hours(2),
    environment: { HERMES_LOG_LEVEL: 'INFO' },
    vpc,
    vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
    turnTimeout: Duration.minutes(10),
    scheduledJobs: true,
    scheduleTimeZone: TimeZone.EUROPE_BERLIN,
    dailyTokenBudget: 200_000,
    tokenPrices: { inputPerMillion: 0.27, outputPerMillion: 1.1 },
    dashboard: true,
    sessionTtl: Duration.days(30),
    historyMaxMessages: 100,
    maxReceiveCount: 5,
    registerWebhook: true,
    logRetention: logs.RetentionDays.THREE_MONTHS,
    alarmTopic,
    encryptionKey: key,
    removalPolicy: RemovalPolicy.DESTROY,
    backup: true,
  });

  const template = Template.fromStack(stack);
  template.hasResourceProperties('AWS::BedrockAgentCore::Runtime', { NetworkConfiguration: { NetworkMode: 'VPC' } });
  template.resourceCountIs('AWS::BedrockAgentCore::Memory', 1);
  template.resourceCountIs('Custom::HermesTelegramWebhook', 1);
  template.hasResourceProperties('AWS::CloudWatch::Alarm', { AlarmActions: [{ Ref: stack.getLogicalId(alarmTopic.node.defaultChild as sns.CfnTopic) }] });

  expectNagClean(stack);
});
