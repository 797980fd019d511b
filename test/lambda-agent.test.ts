import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { App, CfnParameter, Duration, RemovalPolicy, Stack, TimeZone } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import { IConstruct } from 'constructs';
import {
  AgentAccess, AgentEncryptionKey, AgentMemory, AgentModel, HermesLambdaAgent, HermesLambdaAgentProps, HermesSettings, KnowledgeBucket,
  McpServer, SecretPlaceholder, SlackSecrets, TelegramSecrets,
} from '../src';
import { BuiltAgent, acknowledgement, agentBuilder, expectPropError } from './construct-assertions';
import { lazyTemplate, lid, resourcesOf } from './util';

const ENV = { account: '111111111111', region: 'us-east-1' };
/** Logical id of the stack's shared key (construct id `HermesAgentKey` directly under the stack). */
const SHARED_KEY = 'HermesAgentKey2DBA7C9F';
const SHARED_KEY_ARN = { 'Fn::GetAtt': [SHARED_KEY, 'Arn'] };
const TELEGRAM_USERS = ['123456789', '42'];
const LAMBDA_DISABLED_TOOLSETS = ['terminal', 'browser', 'code_execution', 'delegation', 'computer_use'];

// ---------------------------------------------------------------------------
// One App for every synthesized stack of this file: the runtime asset
// directory is staged once, and the first Template.fromStack synthesizes all
// stacks in one go. Stacks are therefore all built while jest collects the
// tests, before any template is read; the app cannot change after its first
// synthesis.
// ---------------------------------------------------------------------------
const app = new App();

type Built = BuiltAgent<HermesLambdaAgent>;
const build = agentBuilder(app, ENV, { access: AgentAccess.allowUsers({ telegram: TELEGRAM_USERS }) } as HermesLambdaAgentProps,
  (stack, props) => new HermesLambdaAgent(stack, 'Agent', props));


function resource(built: Built, construct: IConstruct): any {
  const r = built.template().toJSON().Resources[lid(construct)];
  expect(r).toBeDefined();
  return r;
}

function functionProps(built: Built, fn: lambda.IFunction): any {
  return resource(built, fn).Properties;
}

function environment(built: Built, fn: lambda.IFunction): { [name: string]: any } {
  return functionProps(built, fn).Environment.Variables;
}

function workerEnv(built: Built): { [name: string]: any } {
  return environment(built, built.agent.workerFunction);
}

/** Statements of the default policy attached to `role`. */
function roleStatements(template: Template, roleLogicalId: string): any[] {
  const policies = resourcesOf(template, 'AWS::IAM::Policy')
    .filter((p) => JSON.stringify(p.props.Roles) === JSON.stringify([{ Ref: roleLogicalId }]));
  expect(policies).toHaveLength(1);
  return policies[0].props.PolicyDocument.Statement;
}

function functionRoleStatements(built: Built, fn: lambda.Function): any[] {
  return roleStatements(built.template(), lid(fn.role!));
}

function asArray<T>(value: T | T[]): T[] {
  return Array.isArray(value) ? value : [value];
}

function actionsOf(statements: any[]): string[] {
  return statements.flatMap((s) => asArray(s.Action));
}

/** Statements that allow `action`. */
function allowing(statements: any[], action: string): any[] {
  return statements.filter((s) => s.Effect === 'Allow' && asArray(s.Action).includes(action));
}

/**
 * Evaluates a (possibly Fn::Join'ed) template value to a string, with the
 * partition as `aws` and every other reference as `<LogicalId>`.
 */
function evaluate(value: any): string {
  if (typeof value === 'string') return value;
  if (value['Fn::Join']) return value['Fn::Join'][1].map(evaluate).join(value['Fn::Join'][0]);
  if (value.Ref === 'AWS::Partition') return 'aws';
  if (value.Ref) return `<${value.Ref}>`;
  if (value['Fn::GetAtt']) return `<${value['Fn::GetAtt'].join('.')}>`;
  throw new Error(`cannot evaluate ${JSON.stringify(value)}`);
}

/** The settings key (without leading slash) the worker is pointed at. */
function settingsKey(built: Built): string {
  const value = evaluate(workerEnv(built).HERMES_AWS_SETTINGS_S3);
  const prefix = `s3://<${lid(built.agent.knowledgeBucket.bucket)}>/`;
  expect(value.startsWith(prefix)).toBe(true);
  return value.slice(prefix.length);
}

/** The BucketDeployment resource that uploads the agent's settings. */
function settingsDeployment(built: Built): { id: string; props: any } {
  const bucket = { Ref: lid(built.agent.knowledgeBucket.bucket) };
  const deployments = resourcesOf(built.template(), 'Custom::CDKBucketDeployment')
    .filter((d) => JSON.stringify(d.props.DestinationBucketName) === JSON.stringify(bucket));
  expect(deployments).toHaveLength(1);
  return deployments[0];
}

/** The uploaded settings document (the one marker of the data source), unparsed. */
function settingsDocumentText(built: Built): any {
  const markers = settingsDeployment(built).props.SourceMarkers;
  expect(markers).toHaveLength(1);
  const values = Object.values(markers[0]);
  expect(values).toHaveLength(1);
  return values[0];
}

function settingsDocument(built: Built): any {
  const text = settingsDocumentText(built);
  expect(typeof text).toBe('string');
  return JSON.parse(text);
}

function listFiles(dir: string, base = dir): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    return entry.isDirectory() ? listFiles(full, base) : [path.relative(base, full).split(path.sep).join('/')];
  }).sort();
}

// ---------------------------------------------------------------------------
// Stacks (built at collection time, see above)
// ---------------------------------------------------------------------------

const defaults = build('Defaults');

const allowAll = build('AllowAll', { access: AgentAccess.allowAll() });

let teamTelegram: TelegramSecrets;
let teamBotToken: secretsmanager.ISecret;
const telegramPassed = build('TelegramPassed', {}, (stack) => {
  teamBotToken = secretsmanager.Secret.fromSecretNameV2(stack, 'Bot', 'team/telegram-bot');
  teamTelegram = new TelegramSecrets(stack, 'TeamTelegram', { botToken: teamBotToken });
  return { telegram: teamTelegram };
});

const openAi = build('OpenAi', {}, (stack) => ({
  model: AgentModel.openAiCompatible({
    baseUrl: 'https://api.deepseek.com/v1',
    modelName: 'deepseek-chat',
    apiKey: secretsmanager.Secret.fromSecretNameV2(stack, 'DeepSeekKey', 'team/deepseek'),
  }),
}));

const SOUL = 'You are Ada, a terse personal assistant.';
const configured = build('Configured', { settings: { soul: SOUL, maxTurns: 20, disabledToolsets: ['image_gen', 'terminal'] } });

let teamKnowledge: KnowledgeBucket;
const knowledgePassed = build('KnowledgePassed', {}, (stack) => {
  teamKnowledge = new KnowledgeBucket(stack, 'TeamKnowledge');
  return { knowledgeBucket: teamKnowledge };
});

let alarmTopic: sns.Topic;
const tuned = build('Tuned', {
  sessionTtl: Duration.days(30),
  historyMaxMessages: 100,
  workerMemorySize: 3008,
  workerTimeout: Duration.minutes(10),
  maxReceiveCount: 5,
  workerReservedConcurrency: 5,
  logRetention: logs.RetentionDays.THREE_MONTHS,
  registerWebhook: false,
  removalPolicy: RemovalPolicy.DESTROY,
}, (stack) => {
  alarmTopic = new sns.Topic(stack, 'Alarms');
  return { alarmTopic };
});

let ownKey: kms.Key;
const ownKeyNoBackup = build('OwnKey', { backup: false }, (stack) => {
  ownKey = new kms.Key(stack, 'TeamKey', { enableKeyRotation: true });
  return { encryptionKey: ownKey };
});

// A model endpoint known only at deploy time: the settings document holds a token.
const deployTimeUrl = build('DeployTimeUrl', {}, (stack) => ({
  model: AgentModel.openAiCompatible({ baseUrl: new CfnParameter(stack, 'ModelUrl').valueAsString, modelName: 'local-model' }),
  settings: { mcpServers: [McpServer.http('docs', { url: new CfnParameter(stack, 'DocsUrl').valueAsString })] },
}));

// Two agents in one stack.
const multiStack = new Stack(app, 'MultiAgent', { env: ENV });
const ada = new HermesLambdaAgent(multiStack, 'Ada', { access: AgentAccess.allowAll(), settings: { soul: 'You are Ada.' } });
const grace = new HermesLambdaAgent(multiStack, 'Grace', { access: AgentAccess.allowAll(), settings: { soul: 'You are Grace.' } });
const multiTemplate = lazyTemplate(multiStack);
const multi: Built[] = [ada, grace].map((agent) => ({ stack: multiStack, agent, template: multiTemplate }));

// Channels
const SLACK_USERS = ['U012ABCDEF', 'W0987ZYX'];
let slackSecrets: SlackSecrets;
const slackOnly = build('SlackOnly', { access: AgentAccess.allowUsers({ slack: SLACK_USERS }) }, (stack) => {
  slackSecrets = new SlackSecrets(stack, 'Slack');
  return { slack: slackSecrets };
});
let bothTelegram: TelegramSecrets;
let bothSlack: SlackSecrets;
const bothChannels = build('BothChannels', { access: AgentAccess.allowAll() }, (stack) => {
  bothTelegram = new TelegramSecrets(stack, 'TeamTelegram');
  bothSlack = new SlackSecrets(stack, 'TeamSlack');
  return { telegram: bothTelegram, slack: bothSlack };
});
// Slack as a second channel, with Telegram users only on the allow-list.
const slackNobody = build('SlackNobody', {}, (stack) => ({ telegram: new TelegramSecrets(stack, 'TeamTelegram'), slack: new SlackSecrets(stack, 'TeamSlack') }));

// Scheduled jobs, memory, budgets, prices, dashboard
const noJobs = build('NoJobs', { scheduledJobs: false });
const berlin = build('Berlin', { scheduleTimeZone: TimeZone.EUROPE_BERLIN });
let agentMemory: AgentMemory;
const withMemory = build('WithMemory', {}, (stack) => {
  agentMemory = new AgentMemory(stack, 'Memory');
  return { memory: agentMemory };
});
let memoryTopic: sns.Topic;
const memoryAlarmed = build('MemoryAlarmed', {}, (stack) => {
  memoryTopic = new sns.Topic(stack, 'Alarms');
  return { memory: new AgentMemory(stack, 'Memory'), alarmTopic: memoryTopic };
});
const budgeted = build('Budgeted', { dailyTokenBudget: 200_000, tokenPrices: { inputPerMillion: 0.5, outputPerMillion: 1.5 }, dashboard: false });
const unknownPrices = build('UnknownPrices', { model: AgentModel.bedrock('us.meta.llama3-3-70b-instruct-v1:0') });

// ---------------------------------------------------------------------------
// Defaults
// ---------------------------------------------------------------------------

describe('HermesLambdaAgent defaults: stores', () => {
  test('the sessions table: pk/sk strings, on demand, PITR, SSE with the shared key, TTL on expires_at, retained', () => {
    const t = defaults.template();
    t.resourceCountIs('AWS::DynamoDB::Table', 1);
    expect(resource(defaults, defaults.agent.table)).toEqual({
      Type: 'AWS::DynamoDB::Table',
      Properties: {
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }, { AttributeName: 'sk', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }, { AttributeName: 'sk', KeyType: 'RANGE' }],
        BillingMode: 'PAY_PER_REQUEST',
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        SSESpecification: { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: SHARED_KEY_ARN },
        TimeToLiveSpecification: { AttributeName: 'expires_at', Enabled: true },
      },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
  });

  test('the table is selected by the shared AWS Backup plan', () => {
    const t = defaults.template();
    t.resourceCountIs('AWS::Backup::BackupPlan', 1);
    t.resourceCountIs('AWS::Backup::BackupVault', 1);
    const selections = resourcesOf(t, 'AWS::Backup::BackupSelection');
    expect(selections).toHaveLength(1);
    expect(selections[0].props.BackupSelection.Resources).toEqual([{ 'Fn::GetAtt': [lid(defaults.agent.table), 'Arn'] }]);
    expect(selections[0].props.BackupPlanId).toEqual({ 'Fn::GetAtt': ['HermesAgentBackupPlanAA07B468', 'BackupPlanId'] });
    t.hasResourceProperties('AWS::Backup::BackupVault', { EncryptionKeyArn: SHARED_KEY_ARN });
  });

  test('one shared key, a new knowledge bucket and new Telegram secrets (placeholder bot token, generated webhook secret)', () => {
    const t = defaults.template();
    t.resourceCountIs('AWS::KMS::Key', 1);
    expect(Object.keys(t.findResources('AWS::KMS::Key'))).toEqual([SHARED_KEY]);
    t.resourceCountIs('AWS::S3::Bucket', 1);
    expect(defaults.agent.knowledgeBucket.node.scope).toBe(defaults.agent);
    expect(defaults.agent.telegram!.node.scope).toBe(defaults.agent);
    const secrets = resourcesOf(t, 'AWS::SecretsManager::Secret');
    expect(secrets.map((s) => s.id).sort()).toEqual([lid(defaults.agent.telegram!.botToken), lid(defaults.agent.telegram!.webhookSecret)].sort());
    for (const s of secrets) expect(s.props.KmsKeyId).toEqual(SHARED_KEY_ARN);
    expect(resource(defaults, defaults.agent.telegram!.botToken).Properties.SecretString).toBe(SecretPlaceholder.VALUE);
    expect(resource(defaults, defaults.agent.telegram!.webhookSecret).Properties.GenerateSecretString).toBeDefined();
  });
});

describe('HermesLambdaAgent defaults: queues', () => {
  test('FIFO queue: content-based deduplication (for fired schedules), KMS, visibility 6 × 300 s, 4 days, redrive to the DLQ after 3 receives', () => {
    const q = resource(defaults, defaults.agent.queue);
    expect(q.Properties).toEqual({
      FifoQueue: true,
      ContentBasedDeduplication: true,
      KmsMasterKeyId: SHARED_KEY_ARN,
      VisibilityTimeout: 1800,
      MessageRetentionPeriod: 4 * 24 * 3600,
      RedrivePolicy: { deadLetterTargetArn: { 'Fn::GetAtt': [lid(defaults.agent.deadLetterQueue), 'Arn'] }, maxReceiveCount: 3 },
    });
  });

  test('the dead-letter queue is FIFO, KMS-encrypted and keeps messages 14 days', () => {
    expect(resource(defaults, defaults.agent.deadLetterQueue).Properties).toEqual({
      FifoQueue: true,
      KmsMasterKeyId: SHARED_KEY_ARN,
      MessageRetentionPeriod: 14 * 24 * 3600,
    });
    defaults.template().resourceCountIs('AWS::SQS::Queue', 2);
  });

  test('both queues deny requests without TLS', () => {
    const policies = resourcesOf(defaults.template(), 'AWS::SQS::QueuePolicy');
    expect(policies).toHaveLength(2);
    for (const queue of [defaults.agent.queue, defaults.agent.deadLetterQueue]) {
      const policy = policies.find((p) => JSON.stringify(p.props.Queues) === JSON.stringify([{ Ref: lid(queue) }]));
      expect(policy).toBeDefined();
      expect(policy!.props.PolicyDocument.Statement).toContainEqual({
        Action: 'sqs:*',
        Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        Effect: 'Deny',
        Principal: { AWS: '*' },
        Resource: { 'Fn::GetAtt': [lid(queue), 'Arn'] },
      });
    }
  });
});

describe('HermesLambdaAgent defaults: ingress', () => {
  test('the newest Python 3 runtime CDK knows, arm64, 256 MB, 10 s, active tracing, JSON logs, hermes_aws.lambda_ingress', () => {
    const newestPython = lambda.Runtime.ALL
      .map((r) => r.name)
      .filter((name) => /^python3\.\d+$/.test(name))
      .reduce((a, b) => (Number(b.split('.')[1]) > Number(a.split('.')[1]) ? b : a));
    expect(functionProps(defaults, defaults.agent.ingressFunction)).toMatchObject({
      Runtime: newestPython,
      Architectures: ['arm64'],
      MemorySize: 256,
      Timeout: 10,
      TracingConfig: { Mode: 'Active' },
      LoggingConfig: { LogFormat: 'JSON' },
      Handler: 'hermes_aws.lambda_ingress.handler',
    });
    expect(functionProps(defaults, defaults.agent.ingressFunction).ReservedConcurrentExecutions).toBeUndefined();
  });

  test('the zip holds the hermes_aws package, with both handler modules, and nothing of the image build', () => {
    const code = functionProps(defaults, defaults.agent.ingressFunction).Code;
    expect(code.S3Key).toMatch(/^[0-9a-f]{64}\.zip$/);
    const files = listFiles(path.join(app.outdir, `asset.${code.S3Key.replace(/\.zip$/, '')}`));
    expect(files).toEqual(expect.arrayContaining(['hermes_aws/__init__.py', 'hermes_aws/lambda_ingress.py', 'hermes_aws/webhook_registration.py']));
    expect(files.filter((f) => /^(tests|requirements)\/|Dockerfile|pyproject|__pycache__|\.pyc$/.test(f))).toEqual([]);
  });

  test('environment: queue URL, webhook secret ARN (not its value), allow-list, agent name', () => {
    const g = defaults.agent;
    expect(environment(defaults, g.ingressFunction)).toEqual({
      HERMES_AWS_QUEUE_URL: { Ref: lid(g.queue) },
      HERMES_AWS_TELEGRAM_WEBHOOK_SECRET_ARN: { Ref: lid(g.telegram!.webhookSecret) },
      HERMES_AWS_TELEGRAM_ALLOWED_USERS: TELEGRAM_USERS.join(','),
      HERMES_AWS_AGENT_NAME: 'Defaults/Agent',
    });
  });

  test('no function environment holds a secret value or a dynamic reference', () => {
    for (const fn of [defaults.agent.ingressFunction, defaults.agent.workerFunction, defaults.agent.webhookRegistrationFunction!]) {
      const json = JSON.stringify(environment(defaults, fn));
      expect(json).not.toContain(SecretPlaceholder.VALUE);
      expect(json).not.toContain('resolve:secretsmanager');
      expect(json).not.toContain('SecretString');
    }
  });

  test('each function logs to its own log group: shared key, 30 days, retained', () => {
    const t = defaults.template();
    const fns = [defaults.agent.ingressFunction, defaults.agent.workerFunction, defaults.agent.webhookRegistrationFunction!];
    const groups = fns.map((fn) => functionProps(defaults, fn).LoggingConfig.LogGroup.Ref);
    expect(new Set(groups).size).toBe(3);
    expect(resourcesOf(t, 'AWS::Logs::LogGroup')).toHaveLength(3);
    for (const group of groups) {
      expect(t.toJSON().Resources[group]).toEqual({
        Type: 'AWS::Logs::LogGroup',
        Properties: { KmsKeyId: SHARED_KEY_ARN, RetentionInDays: 30 },
        DeletionPolicy: 'Retain',
        UpdateReplacePolicy: 'Retain',
      });
    }
  });

  test('its role has no managed policy and may only log, trace, send to the queue and read the webhook secret', () => {
    const g = defaults.agent;
    const role = resource(defaults, g.ingressFunction.role!);
    expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    expect(role.Properties.Policies).toBeUndefined();
    const logGroup = functionProps(defaults, g.ingressFunction).LoggingConfig.LogGroup.Ref;
    expect(functionRoleStatements(defaults, g.ingressFunction)).toEqual([
      { Effect: 'Allow', Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Resource: { 'Fn::GetAtt': [logGroup, 'Arn'] } },
      { Effect: 'Allow', Action: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], Resource: '*' },
      { Effect: 'Allow', Action: ['sqs:SendMessage', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl'], Resource: { 'Fn::GetAtt': [lid(g.queue), 'Arn'] } },
      // the queue's key, for SendMessage
      { Effect: 'Allow', Action: ['kms:Decrypt', 'kms:Encrypt', 'kms:ReEncrypt*', 'kms:GenerateDataKey*'], Resource: SHARED_KEY_ARN },
      { Effect: 'Allow', Action: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'], Resource: { Ref: lid(g.telegram!.webhookSecret) } },
      {
        Effect: 'Allow',
        Action: 'kms:Decrypt',
        Resource: SHARED_KEY_ARN,
        Condition: { StringEquals: { 'kms:ViaService': 'secretsmanager.us-east-1.amazonaws.com' } },
      },
    ]);
  });

  test('a public Function URL (Telegram cannot sign requests)', () => {
    const t = defaults.template();
    t.resourceCountIs('AWS::Lambda::Url', 1);
    t.hasResourceProperties('AWS::Lambda::Url', {
      AuthType: 'NONE',
      TargetFunctionArn: { 'Fn::GetAtt': [lid(defaults.agent.ingressFunction), 'Arn'] },
      Cors: Match.absent(),
    });
  });
});

describe('HermesLambdaAgent defaults: worker', () => {
  test('a container image function: arm64, 2048 MB, 300 s, active tracing, JSON logs, no reserved concurrency', () => {
    const props = functionProps(defaults, defaults.agent.workerFunction);
    expect(props).toMatchObject({
      PackageType: 'Image',
      Architectures: ['arm64'],
      MemorySize: 2048,
      Timeout: 300,
      TracingConfig: { Mode: 'Active' },
      LoggingConfig: { LogFormat: 'JSON' },
    });
    expect(props.Code.ImageUri['Fn::Sub']).toMatch(/container-assets-111111111111-us-east-1:[0-9a-f]{64}$/);
    expect(props.Runtime).toBeUndefined();
    expect(props.Handler).toBeUndefined();
    expect(props.ReservedConcurrentExecutions).toBeUndefined();
  });

  test('the image is built from the runtime context, target lambda, for linux/arm64', () => {
    defaults.template();
    const manifest = JSON.parse(fs.readFileSync(path.join(app.outdir, `${defaults.stack.artifactId}.assets.json`), 'utf-8'));
    const images = Object.values<any>(manifest.dockerImages);
    expect(images).toHaveLength(1);
    expect(images[0].source).toMatchObject({ dockerBuildTarget: 'lambda', platform: 'linux/arm64' });
    const staged = path.join(app.outdir, images[0].source.directory);
    expect(fs.existsSync(path.join(staged, 'Dockerfile'))).toBe(true);
    expect(fs.existsSync(path.join(staged, 'hermes_aws', 'lambda_worker.py'))).toBe(true);
  });

  test('environment: HERMES_HOME in /tmp, settings in S3, table, bucket, prefixes, bot token ARN, limits, agent name', () => {
    const g = defaults.agent;
    const bucket = lid(g.knowledgeBucket.bucket);
    expect(workerEnv(defaults)).toEqual({
      HERMES_HOME: '/tmp/hermes',
      HERMES_AWS_SETTINGS_S3: { 'Fn::Join': ['', ['s3://', { Ref: bucket }, expect.stringMatching(/^\/\.hermes-aws\/settings\//)]] },
      HERMES_AWS_TABLE: { Ref: lid(g.table) },
      HERMES_AWS_BUCKET: { Ref: bucket },
      HERMES_AWS_SKILLS_PREFIX: 'skills/',
      HERMES_AWS_MEMORIES_PREFIX: 'memories/',
      HERMES_AWS_TELEGRAM_BOT_TOKEN_ARN: { Ref: lid(g.telegram!.botToken) },
      HERMES_AWS_SECRET_ARNS: '{}',
      HERMES_AWS_MAX_RECEIVE_COUNT: '3',
      HERMES_AWS_HISTORY_MAX_MESSAGES: '200',
      // the default model's estimated list prices
      HERMES_AWS_TOKEN_PRICES: '{"inputPerMillion":3,"outputPerMillion":15}',
      HERMES_AWS_AGENT_NAME: 'Defaults/Agent',
      // scheduled jobs are on by default
      HERMES_AWS_SCHEDULE_GROUP: g.scheduleGroup!.scheduleGroupName,
      HERMES_AWS_SCHEDULER_ROLE_ARN: { 'Fn::GetAtt': [lid(g.schedulerRole!), 'Arn'] },
      HERMES_AWS_QUEUE_ARN: { 'Fn::GetAtt': [lid(g.queue), 'Arn'] },
    });
  });

  test('the settings key is .hermes-aws/settings/<construct address>/<16 hex>.json', () => {
    expect(settingsKey(defaults)).toMatch(new RegExp(`^\\.hermes-aws/settings/${defaults.agent.node.addr}/[0-9a-f]{16}\\.json$`));
  });

  test('an SQS event source: one message per invocation, partial batch failures reported', () => {
    const mappings = resourcesOf(defaults.template(), 'AWS::Lambda::EventSourceMapping');
    expect(mappings).toHaveLength(1);
    expect(mappings[0].props).toEqual({
      BatchSize: 1,
      EventSourceArn: { 'Fn::GetAtt': [lid(defaults.agent.queue), 'Arn'] },
      FunctionName: { Ref: lid(defaults.agent.workerFunction) },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
  });

  test('the worker is deployed after its settings document', () => {
    expect(resource(defaults, defaults.agent.workerFunction).DependsOn).toContain(settingsDeployment(defaults).id);
  });

  test('grantPrincipal is the worker role', () => {
    expect(defaults.agent.grantPrincipal).toBe(defaults.agent.workerFunction.role);
    expect(resource(defaults, defaults.agent.workerFunction.role!).Properties.ManagedPolicyArns).toBeUndefined();
  });
});

describe('HermesLambdaAgent defaults: worker role', () => {
  const statements = () => functionRoleStatements(defaults, defaults.agent.workerFunction);
  const bucketArn = () => ({ 'Fn::GetAtt': [lid(defaults.agent.knowledgeBucket.bucket), 'Arn'] });
  const objects = (suffix: string) => ({ 'Fn::Join': ['', [bucketArn(), `/${suffix}`]] });

  test('consumes the queue', () => {
    expect(allowing(statements(), 'sqs:ReceiveMessage')).toEqual([{
      Effect: 'Allow',
      Action: expect.arrayContaining(['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility']),
      Resource: { 'Fn::GetAtt': [lid(defaults.agent.queue), 'Arn'] },
    }]);
    expect(actionsOf(statements())).not.toContain('sqs:SendMessage');
  });

  test('reads and writes items of the sessions table only', () => {
    const table = { 'Fn::GetAtt': [lid(defaults.agent.table), 'Arn'] };
    const dynamo = statements().filter((s) => asArray(s.Action).some((a: string) => a.startsWith('dynamodb:')));
    expect(dynamo.length).toBeGreaterThan(0);
    for (const s of dynamo) expect(asArray(s.Resource)).toEqual([table]);
    expect(actionsOf(dynamo)).toEqual(expect.arrayContaining(['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem']));
    expect(actionsOf(dynamo).filter((a) => /dynamodb:(DeleteTable|UpdateTable|CreateTable|\*)/.test(a))).toEqual([]);
  });

  test('S3: read/write only under skills/ and memories/, read only of its own settings key', () => {
    const s3 = statements().filter((s) => asArray(s.Action).some((a: string) => a.startsWith('s3:')));
    const objectResources = (filter: (a: string) => boolean) => s3
      .filter((s) => asArray(s.Action).some(filter))
      .flatMap((s) => asArray(s.Resource))
      .filter((r: any) => r['Fn::Join']);
    expect(objectResources((a) => /^s3:(Put|Delete|Abort)/.test(a))).toEqual([objects('skills/*'), objects('memories/*')]);
    expect(objectResources((a) => a === 's3:GetObject*')).toEqual([objects('skills/*'), objects('memories/*'), objects(`${settingsKey(defaults)}*`)]);
    // the bucket itself only for listing, never the whole bucket's objects
    expect(s3.flatMap((s) => asArray(s.Resource))).not.toContainEqual(objects('*'));
  });

  test('reads the bot token, not the webhook secret', () => {
    const reads = allowing(statements(), 'secretsmanager:GetSecretValue');
    expect(reads.map((s) => s.Resource)).toEqual([{ Ref: lid(defaults.agent.telegram!.botToken) }]);
    expect(statements()).toContainEqual({
      Effect: 'Allow',
      Action: 'kms:Decrypt',
      Resource: SHARED_KEY_ARN,
      Condition: { StringEquals: { 'kms:ViaService': 'secretsmanager.us-east-1.amazonaws.com' } },
    });
  });

  test('Bedrock: the inference profile, and the foundation model only through that profile', () => {
    const profileArn = {
      'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':bedrock:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' },
        ':inference-profile/us.anthropic.claude-sonnet-4-6']],
    };
    const bedrock = statements().filter((s) => asArray(s.Action).some((a: string) => a.startsWith('bedrock:')));
    expect(bedrock).toEqual([
      { Effect: 'Allow', Action: ['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream'], Resource: profileArn },
      {
        Effect: 'Allow',
        Action: ['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream'],
        Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':bedrock:*::foundation-model/anthropic.claude-sonnet-4-6']] },
        Condition: { StringEquals: { 'bedrock:InferenceProfileArn': profileArn } },
      },
    ]);
  });

  test('nothing on all resources except X-Ray and listing schedules (neither has resource-level permissions)', () => {
    const openEnded = statements().filter((s) => s.Resource === '*');
    expect(actionsOf(openEnded)).toEqual(['xray:PutTraceSegments', 'xray:PutTelemetryRecords', 'scheduler:ListSchedules']);
  });
});

describe('HermesLambdaAgent defaults: settings document', () => {
  test('is uploaded by a BucketDeployment from a data source, under the settings key, to the knowledge bucket, never pruned', () => {
    const deployment = settingsDeployment(defaults);
    expect(deployment.props).toMatchObject({
      DestinationBucketName: { Ref: lid(defaults.agent.knowledgeBucket.bucket) },
      Prune: false,
      RetainOnDelete: true,
    });
    expect(deployment.props.DestinationBucketKeyPrefix).toBeUndefined();
    // Source.data: a staged asset holding one file, at the settings key, whose content is the marker
    expect(deployment.props.SourceObjectKeys).toHaveLength(1);
    const staged = path.join(app.outdir, `asset.${deployment.props.SourceObjectKeys[0].replace(/\.zip$/, '')}`);
    expect(listFiles(staged)).toEqual([settingsKey(defaults)]);
    const marker = Object.keys(deployment.props.SourceMarkers[0])[0];
    expect(fs.readFileSync(path.join(staged, settingsKey(defaults)), 'utf-8')).toBe(marker);
  });

  test('the key is content-addressed: its 16 hex digits are the SHA-256 of the uploaded document', () => {
    const text = settingsDocumentText(defaults);
    const hash = crypto.createHash('sha256').update(text).digest('hex').slice(0, 16);
    expect(settingsKey(defaults)).toBe(`.hermes-aws/settings/${defaults.agent.node.addr}/${hash}.json`);
  });

  test('disables the toolsets Lambda cannot run and works in /tmp/hermes', () => {
    const doc = settingsDocument(defaults);
    expect(doc.version).toBe(1);
    expect(doc.config.agent.disabled_toolsets).toEqual(LAMBDA_DISABLED_TOOLSETS);
    expect(doc.config.terminal).toEqual({ cwd: '/tmp/hermes' });
    expect(doc.config.model).toEqual({ provider: 'bedrock', default: 'us.anthropic.claude-sonnet-4-6', context_length: 1_000_000 });
    expect(doc.soul).toBeNull();
    expect(doc.secretEnv).toEqual([]);
  });

  test('is the agent\'s rendered HermesConfig', () => {
    expect(settingsDocumentText(defaults)).toBe(defaults.stack.resolve(defaults.agent.hermesConfig.toDocument(defaults.stack)));
    expect(defaults.agent.model.modelId).toBe('us.anthropic.claude-sonnet-4-6');
  });

  test('one BucketDeployment (with the CDK handler) and nothing else writes the settings', () => {
    const t = defaults.template();
    t.resourceCountIs('Custom::CDKBucketDeployment', 1);
    expect(resourcesOf(t, 'AWS::Lambda::Function').filter((f) => f.id.startsWith('CustomCDKBucketDeployment'))).toHaveLength(1);
  });
});

describe('HermesLambdaAgent defaults: webhook registration', () => {
  test('a zip function: newest Python, arm64, 256 MB, 60 s, hermes_aws.webhook_registration, with the URL and the secrets\' ARNs', () => {
    const g = defaults.agent;
    const url = { 'Fn::Join': ['', [{ 'Fn::GetAtt': [lid(g.functionUrl), 'FunctionUrl'] }, 'telegram']] };
    const props = functionProps(defaults, g.webhookRegistrationFunction!);
    expect(props).toMatchObject({
      Runtime: functionProps(defaults, g.ingressFunction).Runtime,
      Architectures: ['arm64'],
      MemorySize: 256,
      Timeout: 60,
      TracingConfig: { Mode: 'Active' },
      Handler: 'hermes_aws.webhook_registration.handler',
    });
    expect(props.Code).toEqual(functionProps(defaults, g.ingressFunction).Code);
    expect(props.Environment.Variables).toEqual({
      HERMES_AWS_BOT_TOKEN_SECRET_ARN: { Ref: lid(g.telegram!.botToken) },
      HERMES_AWS_WEBHOOK_SECRET_ARN: { Ref: lid(g.telegram!.webhookSecret) },
      HERMES_AWS_WEBHOOK_URL: url,
      HERMES_AWS_ALLOWED_UPDATES: 'message',
    });
  });

  test('a Custom::HermesTelegramWebhook served directly by that function', () => {
    const g = defaults.agent;
    const webhooks = resourcesOf(defaults.template(), 'Custom::HermesTelegramWebhook');
    expect(webhooks).toHaveLength(1);
    expect(webhooks[0].props).toEqual({
      ServiceToken: { 'Fn::GetAtt': [lid(g.webhookRegistrationFunction!), 'Arn'] },
      BotTokenSecretArn: { Ref: lid(g.telegram!.botToken) },
      WebhookSecretArn: { Ref: lid(g.telegram!.webhookSecret) },
      Url: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [lid(g.functionUrl), 'FunctionUrl'] }, 'telegram']] },
      AllowedUpdates: ['message'],
    });
  });

  test('its role reads the bot token and the webhook secret, nothing else', () => {
    const g = defaults.agent;
    const statements = functionRoleStatements(defaults, g.webhookRegistrationFunction!);
    expect(allowing(statements, 'secretsmanager:GetSecretValue').map((s) => s.Resource))
      .toEqual([{ Ref: lid(g.telegram!.botToken) }, { Ref: lid(g.telegram!.webhookSecret) }]);
    expect(actionsOf(statements).filter((a) => !/^(logs|xray|secretsmanager|kms):/.test(a))).toEqual([]);
    expect(resource(defaults, g.webhookRegistrationFunction!.role!).Properties.ManagedPolicyArns).toBeUndefined();
  });

  test('outputs the webhook URL and the command that registers it again', () => {
    const g = defaults.agent;
    const t = defaults.template();
    expect(Object.keys(t.findOutputs('*')).sort()).toEqual([
      expect.stringMatching(/^AgentRegisterWebhookCommand[0-9A-F]{8}$/),
      expect.stringMatching(/^AgentWebhookUrl[0-9A-F]{8}$/),
    ]);
    t.hasOutput('*', {
      Value: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [lid(g.functionUrl), 'FunctionUrl'] }, 'telegram']] },
      Description: 'Telegram webhook URL of the Hermes agent',
    });
    t.hasOutput('*', {
      Value: {
        'Fn::Join': ['', [
          'aws lambda invoke --function-name ',
          { Ref: lid(g.webhookRegistrationFunction!) },
          ' --cli-binary-format raw-in-base64-out --payload \'{"action":"register"}\' /dev/stdout',
        ]],
      },
      Description: Match.stringLikeRegexp('register the Telegram webhook'),
    });
  });
});

describe('HermesLambdaAgent defaults: operations', () => {
  test('four alarms, none with actions', () => {
    const alarms = resourcesOf(defaults.template(), 'AWS::CloudWatch::Alarm');
    expect(alarms).toHaveLength(4);
    for (const a of alarms) {
      expect(a.props.AlarmActions).toBeUndefined();
      expect(a.props.OKActions).toBeUndefined();
      expect(a.props.TreatMissingData).toBe('notBreaching');
    }
  });

  test('dead-letter alarm: a visible message in the DLQ (>= 1, maximum over 1 minute)', () => {
    expect(resource(defaults, defaults.agent.deadLetterAlarm).Properties).toMatchObject({
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [lid(defaults.agent.deadLetterQueue), 'QueueName'] } }],
      Statistic: 'Maximum',
      Period: 60,
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      EvaluationPeriods: 1,
    });
  });

  test('worker errors alarm: 3 or more in 5 minutes', () => {
    expect(resource(defaults, defaults.agent.workerErrorsAlarm).Properties).toMatchObject({
      Namespace: 'AWS/Lambda',
      MetricName: 'Errors',
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: lid(defaults.agent.workerFunction) } }],
      Statistic: 'Sum',
      Period: 300,
      Threshold: 3,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      EvaluationPeriods: 1,
    });
  });

  test('queue age alarm: oldest message older than 600 s (2 turn timeouts) for 3 minutes', () => {
    expect(resource(defaults, defaults.agent.queueAgeAlarm).Properties).toMatchObject({
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateAgeOfOldestMessage',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [lid(defaults.agent.queue), 'QueueName'] } }],
      Statistic: 'Maximum',
      Period: 60,
      Threshold: 600,
      ComparisonOperator: 'GreaterThanThreshold',
      EvaluationPeriods: 3,
    });
  });

  test('rejected webhooks alarm: 20 or more IngressRejected of this agent in 5 minutes', () => {
    expect(resource(defaults, defaults.agent.rejectedWebhooksAlarm).Properties).toMatchObject({
      Namespace: 'HermesAgent/Serverless',
      MetricName: 'IngressRejected',
      Dimensions: [{ Name: 'Agent', Value: 'Defaults/Agent' }],
      Statistic: 'Sum',
      Period: 300,
      Threshold: 20,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      EvaluationPeriods: 1,
    });
  });

  test('the runtime metrics\' dimension is the agent name both functions are given', () => {
    const agentName = environment(defaults, defaults.agent.ingressFunction).HERMES_AWS_AGENT_NAME;
    expect(workerEnv(defaults).HERMES_AWS_AGENT_NAME).toBe(agentName);
    expect(defaults.agent.metricIngressRejected().dimensions).toEqual({ Agent: agentName });
  });

  test.each([
    ['metricIngressAccepted', 'IngressAccepted', 'Sum'],
    ['metricIngressRejected', 'IngressRejected', 'Sum'],
    ['metricTurnDuration', 'TurnDuration', 'p90'],
    ['metricTurnErrors', 'TurnErrors', 'Sum'],
    ['metricInputTokens', 'InputTokens', 'Sum'],
    ['metricOutputTokens', 'OutputTokens', 'Sum'],
    ['metricEstimatedCost', 'EstimatedCost', 'Sum'],
    ['metricBudgetExceeded', 'BudgetExceeded', 'Sum'],
  ] as const)('%s: HermesAgent/Serverless %s per agent, %s by default, options win', (method, metricName, statistic) => {
    const metric = defaults.agent[method]();
    expect(metric.namespace).toBe('HermesAgent/Serverless');
    expect(metric.metricName).toBe(metricName);
    expect(metric.dimensions).toEqual({ Agent: 'Defaults/Agent' });
    expect(metric.statistic).toBe(statistic);
    const custom = defaults.agent[method]({ statistic: 'Maximum', period: Duration.minutes(15) });
    expect(custom.statistic).toBe('Maximum');
    expect(custom.period.toMinutes()).toBe(15);
    expect(custom.dimensions).toEqual({ Agent: 'Defaults/Agent' });
  });

  test('queue, dead-letter and worker metrics', () => {
    const g = defaults.agent;
    const s = defaults.stack;
    const queueAge = g.metricQueueAge();
    expect([queueAge.namespace, queueAge.metricName]).toEqual(['AWS/SQS', 'ApproximateAgeOfOldestMessage']);
    expect(s.resolve(queueAge.dimensions)).toEqual({ QueueName: { 'Fn::GetAtt': [lid(g.queue), 'QueueName'] } });
    const dlq = g.metricDeadLetterMessages();
    expect([dlq.namespace, dlq.metricName, dlq.statistic]).toEqual(['AWS/SQS', 'ApproximateNumberOfMessagesVisible', 'Maximum']);
    expect(s.resolve(dlq.dimensions)).toEqual({ QueueName: { 'Fn::GetAtt': [lid(g.deadLetterQueue), 'QueueName'] } });
    expect(g.metricDeadLetterMessages({ statistic: 'Sum' }).statistic).toBe('Sum');
    const errors = g.metricWorkerErrors();
    expect([errors.namespace, errors.metricName]).toEqual(['AWS/Lambda', 'Errors']);
    expect(s.resolve(errors.dimensions)).toEqual({ FunctionName: { Ref: lid(g.workerFunction) } });
  });
});

// ---------------------------------------------------------------------------
// Props
// ---------------------------------------------------------------------------

describe('HermesLambdaAgent access', () => {
  test('allowAll: HERMES_AWS_TELEGRAM_ALLOW_ALL and no allow-list', () => {
    const env = environment(allowAll, allowAll.agent.ingressFunction);
    expect(env.HERMES_AWS_TELEGRAM_ALLOW_ALL).toBe('true');
    expect(Object.keys(env).filter((n) => /ALLOW/.test(n))).toEqual(['HERMES_AWS_TELEGRAM_ALLOW_ALL']);
  });

  test('allowUsers: a comma-separated allow-list, no allow-all', () => {
    const env = environment(defaults, defaults.agent.ingressFunction);
    expect(Object.keys(env).filter((n) => /ALLOW/.test(n))).toEqual(['HERMES_AWS_TELEGRAM_ALLOWED_USERS']);
    expect(env.HERMES_AWS_TELEGRAM_ALLOWED_USERS).toBe('123456789,42');
  });
});

describe('HermesLambdaAgent telegram', () => {
  test('passed secrets are used as they are: no new secrets under the agent', () => {
    const g = telegramPassed.agent;
    expect(g.telegram).toBe(teamTelegram);
    expect(g.node.tryFindChild('Telegram')).toBeUndefined();
    // only the passed bundle's generated webhook secret
    expect(resourcesOf(telegramPassed.template(), 'AWS::SecretsManager::Secret').map((s) => s.id)).toEqual([lid(teamTelegram.webhookSecret)]);
  });

  test('every function and the webhook resource refer to the passed secrets', () => {
    const g = telegramPassed.agent;
    const botTokenArn = 'arn:aws:secretsmanager:us-east-1:111111111111:secret:team/telegram-bot';
    const webhookSecret = { Ref: lid(teamTelegram.webhookSecret) };
    expect(environment(telegramPassed, g.ingressFunction).HERMES_AWS_TELEGRAM_WEBHOOK_SECRET_ARN).toEqual(webhookSecret);
    expect(evaluate(workerEnv(telegramPassed).HERMES_AWS_TELEGRAM_BOT_TOKEN_ARN)).toBe(botTokenArn);
    const registration = environment(telegramPassed, g.webhookRegistrationFunction!);
    expect(evaluate(registration.HERMES_AWS_BOT_TOKEN_SECRET_ARN)).toBe(botTokenArn);
    expect(registration.HERMES_AWS_WEBHOOK_SECRET_ARN).toEqual(webhookSecret);
    const worker = allowing(functionRoleStatements(telegramPassed, g.workerFunction), 'secretsmanager:GetSecretValue');
    expect(worker.map((s) => evaluate(s.Resource))).toEqual([`${botTokenArn}-??????`]);
  });
});

describe('HermesLambdaAgent model', () => {
  test('openAiCompatible with apiKey: HERMES_AWS_SECRET_ARNS maps HERMES_MODEL_API_KEY to the key\'s ARN', () => {
    expect(JSON.parse(evaluate(workerEnv(openAi).HERMES_AWS_SECRET_ARNS))).toEqual({
      HERMES_MODEL_API_KEY: 'arn:aws:secretsmanager:us-east-1:111111111111:secret:team/deepseek',
    });
  });

  test('the worker may read the API key (and the bot token) and has no Bedrock permission', () => {
    const statements = functionRoleStatements(openAi, openAi.agent.workerFunction);
    expect(allowing(statements, 'secretsmanager:GetSecretValue').map((s) => evaluate(s.Resource)).sort()).toEqual([
      `<${lid(openAi.agent.telegram!.botToken)}>`,
      'arn:aws:secretsmanager:us-east-1:111111111111:secret:team/deepseek-??????',
    ]);
    expect(actionsOf(statements).filter((a) => a.startsWith('bedrock:'))).toEqual([]);
  });

  test('the settings document points Hermes at the endpoint with the key as ${HERMES_MODEL_API_KEY}', () => {
    const doc = settingsDocument(openAi);
    expect(doc.config.model).toEqual({
      provider: 'custom',
      default: 'deepseek-chat',
      base_url: 'https://api.deepseek.com/v1',
      api_key: '${HERMES_MODEL_API_KEY}',
    });
    expect(doc.secretEnv).toEqual(['HERMES_MODEL_API_KEY']);
    expect(doc.config.bedrock).toBeUndefined();
    expect(doc.config.agent.disabled_toolsets).toEqual(LAMBDA_DISABLED_TOOLSETS);
  });

  test('a model and MCP server URL known only at deploy time still give a content-addressed key', () => {
    const doc = settingsDocumentText(deployTimeUrl);
    expect(typeof doc).not.toBe('string');
    expect(JSON.stringify(doc)).toContain('{"Ref":"ModelUrl"}');
    expect(JSON.stringify(doc)).toContain('{"Ref":"DocsUrl"}');
    expect(settingsKey(deployTimeUrl)).toMatch(new RegExp(`^\\.hermes-aws/settings/${deployTimeUrl.agent.node.addr}/[0-9a-f]{16}\\.json$`));
    expect(settingsKey(deployTimeUrl).split('/')[3]).not.toBe(settingsKey(defaults).split('/')[3]);
  });
});

describe('HermesLambdaAgent settings', () => {
  test('the user\'s settings are rendered on top of the Lambda shape', () => {
    const doc = settingsDocument(configured);
    expect(doc.soul).toBe(SOUL);
    expect(doc.config.agent.max_turns).toBe(20);
    // the shape's toolsets stay off, the user's are added once
    expect(doc.config.agent.disabled_toolsets).toEqual([...LAMBDA_DISABLED_TOOLSETS, 'image_gen']);
    expect(doc.config.terminal).toEqual({ cwd: '/tmp/hermes' });
  });

  test('different settings, different key (only the hash part differs between agents)', () => {
    const [, , defaultsAddr, defaultsHash] = settingsKey(defaults).split('/');
    const [, , configuredAddr, configuredHash] = settingsKey(configured).split('/');
    expect(configuredHash).not.toBe(defaultsHash);
    expect(defaultsAddr).toBe(defaults.agent.node.addr);
    expect(configuredAddr).toBe(configured.agent.node.addr);
    // the same (default) settings in another agent give the same hash
    expect(settingsKey(knowledgePassed).split('/')[3]).toBe(defaultsHash);
  });

  /** The worker of a same-path agent in its own app, so only the settings can differ. */
  function worker(settings?: HermesSettings): { env: any; readKey: any; upload: any } {
    const stack = new Stack(new App(), 'Agent', { env: ENV });
    const agent = new HermesLambdaAgent(stack, 'Agent', { access: AgentAccess.allowAll(), settings });
    const built: Built = { stack, agent, template: lazyTemplate(stack) };
    const s3Reads = functionRoleStatements(built, agent.workerFunction)
      .filter((s) => asArray(s.Action).includes('s3:GetObject*') && !asArray(s.Action).includes('s3:PutObject'));
    return { env: workerEnv(built), readKey: s3Reads.flatMap((s) => asArray(s.Resource)), upload: settingsDocumentText(built) };
  }

  test('a settings change is a new key, so a new worker configuration; nothing else changes', () => {
    const before = worker({ soul: 'You are Ada.' });
    const same = worker({ soul: 'You are Ada.' });
    const after = worker({ soul: 'You are Ada, and you answer in French.' });
    expect(same.env).toEqual(before.env);
    expect(after.env.HERMES_AWS_SETTINGS_S3).not.toEqual(before.env.HERMES_AWS_SETTINGS_S3);
    const withoutSettings = (env: any) => Object.fromEntries(Object.entries(env).filter(([name]) => name !== 'HERMES_AWS_SETTINGS_S3'));
    expect(withoutSettings(after.env)).toEqual(withoutSettings(before.env));
    expect(Object.keys(withoutSettings(after.env)).length).toBe(Object.keys(after.env).length - 1);
    // the new document is uploaded and the worker may read the new key, not the old one
    expect(JSON.parse(after.upload).soul).toBe('You are Ada, and you answer in French.');
    const keyOf = (w: typeof before) => evaluate(w.env.HERMES_AWS_SETTINGS_S3).replace(/^s3:\/\/<[^>]+>\//, '');
    expect(JSON.stringify(after.readKey)).toContain(`/${keyOf(after)}*`);
    expect(JSON.stringify(after.readKey)).not.toContain(keyOf(before));
  });
});

describe('HermesLambdaAgent knowledgeBucket', () => {
  test('a passed bucket is used: no new bucket, settings and prefixes in it', () => {
    const g = knowledgePassed.agent;
    const t = knowledgePassed.template();
    const bucket = lid(teamKnowledge.bucket);
    expect(g.knowledgeBucket).toBe(teamKnowledge);
    expect(g.node.tryFindChild('Knowledge')).toBeUndefined();
    t.resourceCountIs('AWS::S3::Bucket', 1);
    expect(Object.keys(t.findResources('AWS::S3::Bucket'))).toEqual([bucket]);
    expect(workerEnv(knowledgePassed).HERMES_AWS_BUCKET).toEqual({ Ref: bucket });
    expect(evaluate(workerEnv(knowledgePassed).HERMES_AWS_SETTINGS_S3)).toBe(`s3://<${bucket}>/${settingsKey(knowledgePassed)}`);
    expect(settingsDeployment(knowledgePassed).props.DestinationBucketName).toEqual({ Ref: bucket });
    const writes = functionRoleStatements(knowledgePassed, g.workerFunction).filter((s) => asArray(s.Action).includes('s3:PutObject'));
    expect(writes.flatMap((s) => asArray(s.Resource)).filter((r: any) => r['Fn::Join']).map(evaluate))
      .toEqual([`<${bucket}.Arn>/skills/*`, `<${bucket}.Arn>/memories/*`]);
  });
});

describe('HermesLambdaAgent tuning and operations props', () => {
  test('sessionTtl reaches the worker in days', () => {
    expect(workerEnv(tuned).HERMES_AWS_SESSION_TTL_DAYS).toBe('30');
    expect(workerEnv(defaults).HERMES_AWS_SESSION_TTL_DAYS).toBeUndefined();
  });

  test('historyMaxMessages and maxReceiveCount reach the worker', () => {
    expect(workerEnv(tuned).HERMES_AWS_HISTORY_MAX_MESSAGES).toBe('100');
    expect(workerEnv(tuned).HERMES_AWS_MAX_RECEIVE_COUNT).toBe('5');
  });

  test('maxReceiveCount sets the redrive policy', () => {
    expect(resource(tuned, tuned.agent.queue).Properties.RedrivePolicy.maxReceiveCount).toBe(5);
  });

  test('workerMemorySize, workerTimeout and workerReservedConcurrency size the worker', () => {
    expect(functionProps(tuned, tuned.agent.workerFunction)).toMatchObject({ MemorySize: 3008, Timeout: 600, ReservedConcurrentExecutions: 5 });
    // the ingress keeps its own size
    expect(functionProps(tuned, tuned.agent.ingressFunction)).toMatchObject({ MemorySize: 256, Timeout: 10 });
    expect(functionProps(tuned, tuned.agent.ingressFunction).ReservedConcurrentExecutions).toBeUndefined();
  });

  test('the acknowledged missing concurrency reservation names the prop that sets it, and only where there is one', () => {
    const rule = 'NIST.800.53.R5-LambdaConcurrency';
    expect(acknowledgement(defaults.agent.workerFunction, rule)).toMatch(/^Reserved concurrency is optional \(HermesLambdaAgentProps\.workerReservedConcurrency\)/);
    expect(acknowledgement(tuned.agent.workerFunction, rule)).toBeUndefined();
    for (const fn of [defaults.agent.ingressFunction, defaults.agent.webhookRegistrationFunction!, tuned.agent.ingressFunction]) {
      const reason = acknowledgement(fn, rule);
      expect(reason).toMatch(/^The function has no reserved concurrency \(no prop sets one\)/);
      expect(reason).not.toContain('workerReservedConcurrency');
    }
  });

  test('workerTimeout: visibility timeout 6 ×, queue age threshold 2 ×', () => {
    expect(resource(tuned, tuned.agent.queue).Properties.VisibilityTimeout).toBe(3600);
    expect(resource(tuned, tuned.agent.queueAgeAlarm).Properties.Threshold).toBe(1200);
  });

  test('logRetention sets every function log group', () => {
    const groups = resourcesOf(tuned.template(), 'AWS::Logs::LogGroup');
    expect(groups).toHaveLength(2);
    for (const g of groups) expect(g.props.RetentionInDays).toBe(90);
  });

  test('registerWebhook false: no registration function, custom resource or command output', () => {
    const t = tuned.template();
    expect(tuned.agent.webhookRegistrationFunction).toBeUndefined();
    t.resourceCountIs('Custom::HermesTelegramWebhook', 0);
    expect(resourcesOf(t, 'AWS::Lambda::Function').filter((f) => f.props.Handler === 'hermes_aws.webhook_registration.handler')).toEqual([]);
    expect(Object.keys(t.findOutputs('*'))).toEqual([expect.stringMatching(/^AgentWebhookUrl/)]);
  });

  test('alarmTopic gets alarm and OK notifications of all four alarms', () => {
    const alarms = resourcesOf(tuned.template(), 'AWS::CloudWatch::Alarm');
    expect(alarms).toHaveLength(4);
    for (const a of alarms) {
      expect(a.props.AlarmActions).toEqual([{ Ref: lid(alarmTopic) }]);
      expect(a.props.OKActions).toEqual([{ Ref: lid(alarmTopic) }]);
    }
  });

  test('removalPolicy DESTROY deletes the table', () => {
    expect(resource(tuned, tuned.agent.table)).toMatchObject({ DeletionPolicy: 'Delete', UpdateReplacePolicy: 'Delete' });
  });

  test('encryptionKey: used for the table, queues, logs, bucket and secrets, no shared key; CloudWatch Logs may use it', () => {
    const t = ownKeyNoBackup.template();
    const g = ownKeyNoBackup.agent;
    const key = { 'Fn::GetAtt': [lid(ownKey), 'Arn'] };
    expect(ownKeyNoBackup.stack.node.tryFindChild(AgentEncryptionKey.ID)).toBeUndefined();
    t.resourceCountIs('AWS::KMS::Key', 1);
    expect(resource(ownKeyNoBackup, g.table).Properties.SSESpecification.KMSMasterKeyId).toEqual(key);
    expect(resource(ownKeyNoBackup, g.queue).Properties.KmsMasterKeyId).toEqual(key);
    expect(resource(ownKeyNoBackup, g.deadLetterQueue).Properties.KmsMasterKeyId).toEqual(key);
    expect(resourcesOf(t, 'AWS::Logs::LogGroup')).toHaveLength(3);
    for (const lg of resourcesOf(t, 'AWS::Logs::LogGroup')) expect(lg.props.KmsKeyId).toEqual(key);
    expect(resourcesOf(t, 'AWS::SecretsManager::Secret')).toHaveLength(2);
    for (const s of resourcesOf(t, 'AWS::SecretsManager::Secret')) expect(s.props.KmsKeyId).toEqual(key);
    expect(g.knowledgeBucket.encryptionKey).toBe(ownKey);
    t.hasResourceProperties('AWS::KMS::Key', {
      KeyPolicy: {
        Statement: Match.arrayWith([Match.objectLike({
          Sid: 'AllowCloudWatchLogsOfThisAccount',
          Principal: { Service: { 'Fn::Join': ['', ['logs.', { Ref: 'AWS::Region' }, '.amazonaws.com']] } },
        })]),
      },
    });
  });

  test('backup false: no backup selection, plan or vault', () => {
    const t = ownKeyNoBackup.template();
    t.resourceCountIs('AWS::Backup::BackupSelection', 0);
    t.resourceCountIs('AWS::Backup::BackupPlan', 0);
    t.resourceCountIs('AWS::Backup::BackupVault', 0);
    // point-in-time recovery stays on
    expect(resource(ownKeyNoBackup, ownKeyNoBackup.agent.table).Properties.PointInTimeRecoverySpecification)
      .toEqual({ PointInTimeRecoveryEnabled: true });
  });
});

describe('HermesLambdaAgent slack', () => {
  test('Slack only: no Telegram secrets, no webhook registration, only the Slack bundle\'s secrets', () => {
    const g = slackOnly.agent;
    const t = slackOnly.template();
    expect(g.telegram).toBeUndefined();
    expect(g.slack).toBe(slackSecrets);
    expect(g.node.tryFindChild('Telegram')).toBeUndefined();
    expect(g.webhookRegistrationFunction).toBeUndefined();
    t.resourceCountIs('Custom::HermesTelegramWebhook', 0);
    expect(resourcesOf(t, 'AWS::SecretsManager::Secret').map((s) => s.id).sort())
      .toEqual([slackSecrets.botToken, slackSecrets.appToken, slackSecrets.signingSecret].map(lid).sort());
  });

  test('the ingress verifies with the signing secret and allows the Slack members, nothing of Telegram', () => {
    const g = slackOnly.agent;
    expect(environment(slackOnly, g.ingressFunction)).toEqual({
      HERMES_AWS_QUEUE_URL: { Ref: lid(g.queue) },
      HERMES_AWS_SLACK_SIGNING_SECRET_ARN: { Ref: lid(slackSecrets.signingSecret) },
      HERMES_AWS_SLACK_ALLOWED_USERS: 'U012ABCDEF,W0987ZYX',
      HERMES_AWS_AGENT_NAME: 'SlackOnly/Agent',
    });
    expect(functionProps(slackOnly, g.ingressFunction).Description).toBe('Hermes Agent ingress: verifies Slack events and enqueues updates');
    // it reads the signing secret, never a token
    expect(allowing(functionRoleStatements(slackOnly, g.ingressFunction), 'secretsmanager:GetSecretValue').map((s) => s.Resource))
      .toEqual([{ Ref: lid(slackSecrets.signingSecret) }]);
  });

  test('the worker replies with the bot token: reads it, not the app token or the signing secret', () => {
    const env = workerEnv(slackOnly);
    expect(env.HERMES_AWS_SLACK_BOT_TOKEN_ARN).toEqual({ Ref: lid(slackSecrets.botToken) });
    expect(env.HERMES_AWS_TELEGRAM_BOT_TOKEN_ARN).toBeUndefined();
    expect(allowing(functionRoleStatements(slackOnly, slackOnly.agent.workerFunction), 'secretsmanager:GetSecretValue').map((s) => s.Resource))
      .toEqual([{ Ref: lid(slackSecrets.botToken) }]);
  });

  test('outputs the Slack Events request URL (<function url>slack) and no Telegram webhook URL', () => {
    const t = slackOnly.template();
    expect(Object.keys(t.findOutputs('*'))).toEqual([expect.stringMatching(/^AgentSlackEventsUrl[0-9A-F]{8}$/)]);
    t.hasOutput('*', {
      Value: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [lid(slackOnly.agent.functionUrl), 'FunctionUrl'] }, 'slack']] },
      Description: Match.stringLikeRegexp('Slack Events API request URL'),
    });
  });

  test('both channels: both verified and allowed at the ingress, both bot tokens for the worker, both URLs', () => {
    const g = bothChannels.agent;
    expect(g.telegram).toBe(bothTelegram);
    expect(g.slack).toBe(bothSlack);
    expect(environment(bothChannels, g.ingressFunction)).toEqual({
      HERMES_AWS_QUEUE_URL: { Ref: lid(g.queue) },
      HERMES_AWS_TELEGRAM_WEBHOOK_SECRET_ARN: { Ref: lid(bothTelegram.webhookSecret) },
      HERMES_AWS_TELEGRAM_ALLOW_ALL: 'true',
      HERMES_AWS_SLACK_SIGNING_SECRET_ARN: { Ref: lid(bothSlack.signingSecret) },
      HERMES_AWS_SLACK_ALLOW_ALL: 'true',
      HERMES_AWS_AGENT_NAME: 'BothChannels/Agent',
    });
    expect(allowing(functionRoleStatements(bothChannels, g.ingressFunction), 'secretsmanager:GetSecretValue').map((s) => s.Resource))
      .toEqual([{ Ref: lid(bothTelegram.webhookSecret) }, { Ref: lid(bothSlack.signingSecret) }]);
    expect(workerEnv(bothChannels)).toMatchObject({
      HERMES_AWS_TELEGRAM_BOT_TOKEN_ARN: { Ref: lid(bothTelegram.botToken) },
      HERMES_AWS_SLACK_BOT_TOKEN_ARN: { Ref: lid(bothSlack.botToken) },
    });
    expect(allowing(functionRoleStatements(bothChannels, g.workerFunction), 'secretsmanager:GetSecretValue').map((s) => s.Resource))
      .toEqual([{ Ref: lid(bothTelegram.botToken) }, { Ref: lid(bothSlack.botToken) }]);
    expect(Object.keys(bothChannels.template().findOutputs('*')).map((o) => o.replace(/[0-9A-F]{8}$/, '')).sort())
      .toEqual(['AgentRegisterWebhookCommand', 'AgentSlackEventsUrl', 'AgentWebhookUrl']);
    bothChannels.template().resourceCountIs('Custom::HermesTelegramWebhook', 1);
  });
});

describe('HermesLambdaAgent slack allow-list', () => {
  test('a Slack channel without Slack ids on the allow-list answers nobody on Slack (an empty list, as Hermes does)', () => {
    const env = environment(slackNobody, slackNobody.agent.ingressFunction);
    expect(env.HERMES_AWS_SLACK_ALLOWED_USERS).toBe('');
    expect(env.HERMES_AWS_SLACK_ALLOW_ALL).toBeUndefined();
    expect(env.HERMES_AWS_TELEGRAM_ALLOWED_USERS).toBe(TELEGRAM_USERS.join(','));
  });
});

describe('HermesLambdaAgent scheduled jobs', () => {
  const groupName = () => defaults.agent.scheduleGroup!.scheduleGroupName;

  test('on by default: a schedule group of this agent, deleted with it (its schedules mirror Hermes\'s jobs.json)', () => {
    const groups = resourcesOf(defaults.template(), 'AWS::Scheduler::ScheduleGroup');
    expect(groups).toHaveLength(1);
    expect(groups[0].id).toBe(lid(defaults.agent.scheduleGroup!));
    expect(groups[0].props).toEqual({ Name: groupName() });
    expect(groups[0].resource.DeletionPolicy).toBe('Delete');
    expect(groupName()).toMatch(/^Defaults-Agent-Schedules-Group-[0-9A-F]{8}$/);
    // and the cronjob toolset is on
    expect(settingsDocument(defaults).config.agent.disabled_toolsets).not.toContain('cronjob');
  });

  test('the scheduler role is assumable by EventBridge Scheduler for this account and group only', () => {
    const role = resource(defaults, defaults.agent.schedulerRole!);
    expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([{
      Effect: 'Allow',
      Action: 'sts:AssumeRole',
      Principal: { Service: 'scheduler.amazonaws.com' },
      Condition: {
        StringEquals: { 'aws:SourceAccount': '111111111111' },
        ArnEquals: { 'aws:SourceArn': { 'Fn::GetAtt': [lid(defaults.agent.scheduleGroup!), 'Arn'] } },
      },
    }]);
    expect(role.Properties.ManagedPolicyArns).toBeUndefined();
  });

  test('the scheduler role may only send to the agent\'s queue (and use its key for that)', () => {
    const statements = roleStatements(defaults.template(), lid(defaults.agent.schedulerRole!));
    expect(statements).toEqual([
      { Effect: 'Allow', Action: ['sqs:SendMessage', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl'], Resource: { 'Fn::GetAtt': [lid(defaults.agent.queue), 'Arn'] } },
      { Effect: 'Allow', Action: ['kms:Decrypt', 'kms:Encrypt', 'kms:ReEncrypt*', 'kms:GenerateDataKey*'], Resource: SHARED_KEY_ARN },
    ]);
  });

  test('the worker manages schedules in its group only, lists schedules, and passes only the scheduler role, only to Scheduler', () => {
    const statements = functionRoleStatements(defaults, defaults.agent.workerFunction);
    const scheduling = statements.filter((s) => actionsOf([s]).some((a) => a.startsWith('scheduler:')));
    expect(scheduling).toHaveLength(2);
    expect(scheduling[0]).toEqual({
      Effect: 'Allow',
      Action: ['scheduler:CreateSchedule', 'scheduler:UpdateSchedule', 'scheduler:DeleteSchedule'],
      Resource: expect.anything(),
    });
    expect(evaluate(scheduling[0].Resource)).toBe(`arn:aws:scheduler:us-east-1:111111111111:schedule/${groupName()}/*`);
    expect(scheduling[1]).toEqual({ Effect: 'Allow', Action: 'scheduler:ListSchedules', Resource: '*' });
    expect(actionsOf(statements)).not.toContain('scheduler:GetSchedule');
    expect(allowing(statements, 'iam:PassRole')).toEqual([{
      Effect: 'Allow',
      Action: 'iam:PassRole',
      Resource: { 'Fn::GetAtt': [lid(defaults.agent.schedulerRole!), 'Arn'] },
      Condition: { StringEquals: { 'iam:PassedToService': 'scheduler.amazonaws.com' } },
    }]);
  });

  test('scheduledJobs false: no group, no role, no scheduler permissions or variables, cronjob toolset off', () => {
    const g = noJobs.agent;
    const t = noJobs.template();
    expect(g.scheduleGroup).toBeUndefined();
    expect(g.schedulerRole).toBeUndefined();
    t.resourceCountIs('AWS::Scheduler::ScheduleGroup', 0);
    expect(Object.keys(workerEnv(noJobs)).filter((n) => /SCHEDULE|QUEUE_ARN/.test(n))).toEqual([]);
    expect(actionsOf(functionRoleStatements(noJobs, g.workerFunction)).filter((a) => /^(scheduler|iam):/.test(a))).toEqual([]);
    expect(settingsDocument(noJobs).config.agent.disabled_toolsets).toEqual([...LAMBDA_DISABLED_TOOLSETS, 'cronjob']);
    // the queue keeps content-based deduplication either way
    expect(resource(noJobs, g.queue).Properties.ContentBasedDeduplication).toBe(true);
  });

  test('scheduleTimeZone reaches the worker; without it the runtime uses UTC', () => {
    expect(workerEnv(berlin).HERMES_AWS_SCHEDULE_TIMEZONE).toBe('Europe/Berlin');
    expect(workerEnv(defaults).HERMES_AWS_SCHEDULE_TIMEZONE).toBeUndefined();
  });
});

describe('HermesLambdaAgent memory', () => {
  /** The AgentCore Memory L2 names its CfnMemory `Memory`, not `Resource`. */
  const memoryLid = () => lid(agentMemory.memory.node.findChild('Memory'));

  test('the worker is pointed at the memory and its namespaces', () => {
    expect(withMemory.agent.memory).toBe(agentMemory);
    const env = workerEnv(withMemory);
    expect(env.HERMES_AWS_MEMORY_ID).toEqual({ 'Fn::GetAtt': [memoryLid(), 'MemoryId'] });
    expect(JSON.parse(env.HERMES_AWS_MEMORY_NAMESPACES)).toEqual(['/users/{actorId}/facts', '/users/{actorId}/preferences', '/summaries/{actorId}/{sessionId}']);
    withMemory.template().resourceCountIs('AWS::BedrockAgentCore::Memory', 1);
  });

  test('the worker may record events and retrieve records of that memory, and use its key through AgentCore only', () => {
    const statements = functionRoleStatements(withMemory, withMemory.agent.workerFunction);
    expect(statements.filter((s) => actionsOf([s]).some((a) => a.startsWith('bedrock-agentcore:')))).toEqual([{
      Effect: 'Allow',
      Action: ['bedrock-agentcore:CreateEvent', 'bedrock-agentcore:RetrieveMemoryRecords'],
      Resource: { 'Fn::GetAtt': [memoryLid(), 'MemoryArn'] },
    }]);
    expect(statements).toContainEqual({
      Effect: 'Allow',
      Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
      Resource: SHARED_KEY_ARN,
      Condition: { StringEquals: { 'kms:ViaService': 'bedrock-agentcore.us-east-1.amazonaws.com' } },
    });
  });

  test('failed memory calls: counted by the runtime as an embedded metric per agent (no log group or filter needed)', () => {
    withMemory.template().resourceCountIs('AWS::Logs::MetricFilter', 0);
    expect(workerEnv(withMemory).HERMES_AWS_AGENT_NAME).toBe('WithMemory/Agent');
    const metric = withMemory.agent.metricMemoryFailures();
    expect([metric.namespace, metric.metricName, metric.statistic]).toEqual(['HermesAgent/Serverless', 'MemoryFailures', 'Sum']);
    expect(metric.dimensions).toEqual({ Agent: 'WithMemory/Agent' });
  });

  test('memory failures alarm: 5 or more in 15 minutes, wired to alarmTopic like the others, and on the dashboard', () => {
    expect(resource(withMemory, withMemory.agent.memoryFailuresAlarm!).Properties).toMatchObject({
      Namespace: 'HermesAgent/Serverless',
      MetricName: 'MemoryFailures',
      Dimensions: [{ Name: 'Agent', Value: 'WithMemory/Agent' }],
      Statistic: 'Sum',
      Period: 900,
      Threshold: 5,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      EvaluationPeriods: 1,
      TreatMissingData: 'notBreaching',
    });
    expect(resource(withMemory, withMemory.agent.memoryFailuresAlarm!).Properties.AlarmActions).toBeUndefined();
    const alarms = resourcesOf(memoryAlarmed.template(), 'AWS::CloudWatch::Alarm');
    expect(alarms.map((a) => a.id)).toContain(lid(memoryAlarmed.agent.memoryFailuresAlarm!));
    expect(alarms).toHaveLength(5);
    for (const a of alarms) {
      expect(a.props.AlarmActions).toEqual([{ Ref: lid(memoryTopic) }]);
      expect(a.props.OKActions).toEqual([{ Ref: lid(memoryTopic) }]);
    }
    const body = (built: Built) => JSON.stringify(resource(built, built.agent.dashboard!).Properties.DashboardBody);
    expect(body(withMemory)).toContain('\\"MemoryFailures\\",\\"Agent\\",\\"WithMemory/Agent\\"');
    expect(body(defaults)).not.toContain('MemoryFailures');
  });

  test('without memory: no AgentCore memory, variables or permissions', () => {
    expect(defaults.agent.memory).toBeUndefined();
    expect(defaults.agent.memoryFailuresAlarm).toBeUndefined();
    defaults.template().resourceCountIs('AWS::Logs::MetricFilter', 0);
    defaults.template().resourceCountIs('AWS::BedrockAgentCore::Memory', 0);
    expect(Object.keys(workerEnv(defaults)).filter((n) => n.includes('MEMORY_'))).toEqual([]);
    expect(actionsOf(functionRoleStatements(defaults, defaults.agent.workerFunction)).filter((a) => a.startsWith('bedrock-agentcore:'))).toEqual([]);
  });
});

describe('HermesLambdaAgent budgets and prices', () => {
  test('dailyTokenBudget and tokenPrices reach the worker', () => {
    expect(workerEnv(budgeted).HERMES_AWS_DAILY_TOKEN_BUDGET).toBe('200000');
    expect(JSON.parse(workerEnv(budgeted).HERMES_AWS_TOKEN_PRICES)).toEqual({ inputPerMillion: 0.5, outputPerMillion: 1.5 });
    expect(budgeted.agent.tokenPrices).toEqual({ inputPerMillion: 0.5, outputPerMillion: 1.5 });
    expect(workerEnv(defaults).HERMES_AWS_DAILY_TOKEN_BUDGET).toBeUndefined();
  });

  test('prices default to the model\'s estimate; a model without one estimates no cost', () => {
    expect(defaults.agent.tokenPrices).toEqual({ inputPerMillion: 3, outputPerMillion: 15 });
    expect(defaults.agent.tokenPrices).toEqual(defaults.agent.model.tokenPrices);
    for (const built of [openAi, unknownPrices]) {
      expect(built.agent.tokenPrices).toBeUndefined();
      expect(workerEnv(built).HERMES_AWS_TOKEN_PRICES).toBeUndefined();
    }
  });

  test('the budget counters live in the sessions table the worker already reads and writes', () => {
    expect(allowing(functionRoleStatements(budgeted, budgeted.agent.workerFunction), 'dynamodb:UpdateItem')
      .flatMap((s) => asArray(s.Resource))).toEqual([{ 'Fn::GetAtt': [lid(budgeted.agent.table), 'Arn'] }]);
  });
});

describe('HermesLambdaAgent dashboard', () => {
  test('on by default: ingress, queue age, dead letters, turns, worker errors, tokens and cost of this agent', () => {
    const dashboards = resourcesOf(defaults.template(), 'AWS::CloudWatch::Dashboard');
    expect(dashboards).toHaveLength(1);
    expect(dashboards[0].id).toBe(lid(defaults.agent.dashboard!));
    const body = JSON.stringify(dashboards[0].props.DashboardBody);
    for (const metric of ['IngressAccepted', 'IngressRejected', 'ApproximateAgeOfOldestMessage', 'ApproximateNumberOfMessagesVisible',
      'TurnDuration', 'TurnErrors', 'Errors', 'InputTokens', 'OutputTokens', 'EstimatedCost', 'BudgetExceeded']) {
      expect(body).toContain(`\\"${metric}\\"`);
    }
    expect(body).toContain('\\"Agent\\",\\"Defaults/Agent\\"');
    // cost per user, from the [Agent, User] dimension set
    expect(body).toContain('SEARCH(\'{HermesAgent/Serverless,Agent,User} MetricName=\\\\\\"EstimatedCost\\\\\\" Agent=\\\\\\"Defaults/Agent\\\\\\"\'');
  });

  test('dashboard false: none', () => {
    expect(budgeted.agent.dashboard).toBeUndefined();
    budgeted.template().resourceCountIs('AWS::CloudWatch::Dashboard', 0);
  });

  test('per-user metrics carry the Agent and User dimensions', () => {
    const cost = defaults.agent.metricUserEstimatedCost('telegram:42');
    expect([cost.namespace, cost.metricName, cost.statistic]).toEqual(['HermesAgent/Serverless', 'EstimatedCost', 'Sum']);
    expect(cost.dimensions).toEqual({ Agent: 'Defaults/Agent', User: 'telegram:42' });
    const tokens = defaults.agent.metricUserTokens('slack:U012ABCDEF', { period: Duration.hours(1) }) as cloudwatch.MathExpression;
    expect(tokens.expression).toBe('input + output');
    expect(tokens.period.toHours()).toBe(1);
    for (const [name, metricName] of [['input', 'InputTokens'], ['output', 'OutputTokens']]) {
      const m = tokens.usingMetrics[name] as cloudwatch.Metric;
      expect(m.metricName).toBe(metricName);
      expect(m.dimensions).toEqual({ Agent: 'Defaults/Agent', User: 'slack:U012ABCDEF' });
    }
  });
});

describe('HermesLambdaAgent multi-agent', () => {
  test('two agents share the stack\'s key, backup plan and BucketDeployment handler', () => {
    const t = multiTemplate();
    expect(Object.keys(t.findResources('AWS::KMS::Key'))).toEqual([SHARED_KEY]);
    t.resourceCountIs('AWS::Backup::BackupPlan', 1);
    t.resourceCountIs('AWS::Backup::BackupSelection', 2);
    t.resourceCountIs('AWS::DynamoDB::Table', 2);
    t.resourceCountIs('AWS::SQS::Queue', 4);
    t.resourceCountIs('Custom::CDKBucketDeployment', 2);
    expect(resourcesOf(t, 'AWS::Lambda::Function').filter((f) => f.id.startsWith('CustomCDKBucketDeployment'))).toHaveLength(1);
  });

  test('each agent has its own name, settings key and bucket', () => {
    const [a, b] = multi;
    expect(workerEnv(a).HERMES_AWS_AGENT_NAME).toBe('MultiAgent/Ada');
    expect(workerEnv(b).HERMES_AWS_AGENT_NAME).toBe('MultiAgent/Grace');
    expect(settingsKey(a)).not.toBe(settingsKey(b));
    expect(settingsDocument(a).soul).toBe('You are Ada.');
    expect(settingsDocument(b).soul).toBe('You are Grace.');
    expect(workerEnv(a).HERMES_AWS_BUCKET).not.toEqual(workerEnv(b).HERMES_AWS_BUCKET);
    expect(ada.metricIngressRejected().dimensions).not.toEqual(grace.metricIngressRejected().dimensions);
  });
});

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

describe('HermesLambdaAgent validation', () => {
  const access = AgentAccess.allowAll();
  /** A fresh, never-synthesized stack (a failed constructor leaves a partial construct behind). */
  const newStack = () => new Stack(new App(), 'Invalid', { env: ENV });

  test('access is required', () => {
    const message = 'HermesLambdaAgentProps.access is required: choose AgentAccess.allowUsers({ telegram: [...] }) or AgentAccess.allowAll()';
    expectPropError(() => new HermesLambdaAgent(newStack(), 'A', {} as any), message);
    expectPropError(() => new HermesLambdaAgent(newStack(), 'A', undefined as any), message);
  });

  test.each([
    [{ discord: ['123456789012345678'] }],
    [{ telegram: ['123456789'], discord: ['123456789012345678'] }],
  ])('access allowing discord ids is refused (%j)', (users) => {
    expectPropError(() => new HermesLambdaAgent(newStack(), 'A', { access: AgentAccess.allowUsers(users) }),
      'HermesLambdaAgentProps.access allows discord users, but this agent only answers on Telegram and Slack');
  });

  test.each([
    [{ slack: ['U012ABCDEF'] }],
    [{ slack: ['U012ABCDEF'], telegram: ['123456789'] }],
  ])('access allowing Slack ids needs the slack prop (%j)', (users) => {
    expectPropError(() => new HermesLambdaAgent(newStack(), 'A', { access: AgentAccess.allowUsers(users) }),
      'HermesLambdaAgentProps.access allows slack users, but HermesLambdaAgentProps.slack is not set, so the agent does not answer on Slack');
  });

  test('access allowing Telegram ids with only a Slack channel is refused', () => {
    const stack = newStack();
    expectPropError(() => new HermesLambdaAgent(stack, 'A', {
      access: AgentAccess.allowUsers({ telegram: ['123456789'], slack: ['U012ABCDEF'] }),
      slack: new SlackSecrets(stack, 'Slack'),
    }), 'HermesLambdaAgentProps.access allows telegram users, but HermesLambdaAgentProps.telegram is not set, so the agent does not answer on Telegram');
  });

  test.each([
    ['workerTimeout (in seconds)', '30 s', { workerTimeout: Duration.seconds(30) }, 'between 60 and 900 (got 30)'],
    ['workerTimeout (in seconds)', '16 min', { workerTimeout: Duration.minutes(16) }, 'between 60 and 900 (got 960)'],
    ['maxReceiveCount', '0', { maxReceiveCount: 0 }, 'between 1 and 10 (got 0)'],
    ['maxReceiveCount', '11', { maxReceiveCount: 11 }, 'between 1 and 10 (got 11)'],
    ['workerMemorySize', '512', { workerMemorySize: 512 }, 'between 1024 and 10240 (got 512)'],
    ['workerMemorySize', '20000', { workerMemorySize: 20000 }, 'between 1024 and 10240 (got 20000)'],
    ['historyMaxMessages', '5', { historyMaxMessages: 5 }, 'between 10 and 2000 (got 5)'],
    ['historyMaxMessages', '5000', { historyMaxMessages: 5000 }, 'between 10 and 2000 (got 5000)'],
    ['workerReservedConcurrency', '0', { workerReservedConcurrency: 0 }, 'between 1 and 1000 (got 0)'],
    ['sessionTtl (in days)', '12 hours', { sessionTtl: Duration.hours(12) }, 'between 1 and 3650 (got 0.5)'],
    ['dailyTokenBudget', '999', { dailyTokenBudget: 999 }, 'between 1000 and 1000000000 (got 999)'],
    ['dailyTokenBudget', '1500.5', { dailyTokenBudget: 1500.5 }, 'between 1000 and 1000000000 (got 1500.5)'],
    ['dailyTokenBudget', '2e9', { dailyTokenBudget: 2e9 }, 'between 1000 and 1000000000 (got 2000000000)'],
  ] as Array<[string, string, Partial<HermesLambdaAgentProps>, string]>)('%s: %s is refused', (prop, _label, props, range) => {
    expectPropError(() => new HermesLambdaAgent(newStack(), 'A', { access, ...props }),
      `HermesLambdaAgentProps.${prop} must be an integer ${range}`);
  });

  test.each([
    ['inputPerMillion', { inputPerMillion: -1, outputPerMillion: 15 }, -1],
    ['outputPerMillion', { inputPerMillion: 3, outputPerMillion: 1001 }, 1001],
    ['inputPerMillion', { inputPerMillion: NaN, outputPerMillion: 15 }, NaN],
  ])('tokenPrices.%s out of range is refused (%j)', (field, tokenPrices, got) => {
    expectPropError(() => new HermesLambdaAgent(newStack(), 'A', { access, tokenPrices }),
      `HermesLambdaAgentProps.tokenPrices.${field} must be a number between 0 and 1000 (got ${got})`);
  });

  test('scheduleTimeZone without scheduled jobs is refused', () => {
    expectPropError(() => new HermesLambdaAgent(newStack(), 'A', { access, scheduledJobs: false, scheduleTimeZone: TimeZone.EUROPE_BERLIN }),
      'HermesLambdaAgentProps.scheduleTimeZone is set, but scheduledJobs is false; remove one of them');
  });

  test('the bounds themselves are accepted', () => {
    expect(() => new HermesLambdaAgent(newStack(), 'A', {
      access,
      workerTimeout: Duration.minutes(1),
      maxReceiveCount: 1,
      workerMemorySize: 1024,
      historyMaxMessages: 10,
      workerReservedConcurrency: 1,
      sessionTtl: Duration.days(1),
      dailyTokenBudget: 1000,
      tokenPrices: { inputPerMillion: 0, outputPerMillion: 0 },
    })).not.toThrow();
    expect(() => new HermesLambdaAgent(newStack(), 'A', {
      access,
      workerTimeout: Duration.minutes(15),
      maxReceiveCount: 10,
      workerMemorySize: 10240,
      historyMaxMessages: 2000,
      sessionTtl: Duration.days(3650),
      dailyTokenBudget: 1_000_000_000,
      tokenPrices: { inputPerMillion: 1000, outputPerMillion: 1000 },
    })).not.toThrow();
  });
});
