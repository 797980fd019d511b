import * as fs from 'fs';
import * as path from 'path';
import { App, Duration, RemovalPolicy, Stack, TimeZone } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import { IConstruct } from 'constructs';
import {
  AgentAccess, AgentMemory, AgentModel, KnowledgeBucket, SlackSecrets, TelegramSecrets,
} from '../src';
import { BuiltAgent, acknowledgement, agentBuilder, expectPropError } from './construct-assertions';
import { lid, resourcesOf } from './util';
import { HermesAgentCoreAgent, HermesAgentCoreAgentProps } from '../src/agentcore';

const ENV = { account: '111111111111', region: 'us-east-1' };
const SHARED_KEY = 'HermesAgentKey2DBA7C9F';
const TELEGRAM_USERS = ['123456789'];
const RUNTIME_TYPE = 'AWS::BedrockAgentCore::Runtime';

// One App for every synthesized stack of this file (the Docker context is
// staged once); stacks are built while jest collects the tests.
const app = new App();

type Built = BuiltAgent<HermesAgentCoreAgent>;
const build = agentBuilder(app, ENV, { access: AgentAccess.allowUsers({ telegram: TELEGRAM_USERS }) } as HermesAgentCoreAgentProps,
  (stack, props) => new HermesAgentCoreAgent(stack, 'Agent', props));

function propsOf(built: Built, construct: IConstruct): any {
  const r = built.template().toJSON().Resources[lid(construct)];
  expect(r).toBeDefined();
  return r.Properties;
}

function runtimeProps(built: Built): any {
  return propsOf(built, built.agent.runtime);
}

function runtimeEnv(built: Built): { [name: string]: any } {
  return runtimeProps(built).EnvironmentVariables;
}

function dispatcherEnv(built: Built): { [name: string]: any } {
  return propsOf(built, built.agent.dispatcherFunction).Environment.Variables;
}

function asArray<T>(value: T | T[]): T[] {
  return Array.isArray(value) ? value : [value];
}

/** Statements of the default policy attached to a role. */
function statementsOf(built: Built, roleLogicalId: string): any[] {
  return resourcesOf(built.template(), 'AWS::IAM::Policy')
    .filter((p) => JSON.stringify(p.props.Roles) === JSON.stringify([{ Ref: roleLogicalId }]))
    .flatMap((p) => p.props.PolicyDocument.Statement);
}

function runtimeStatements(built: Built): any[] {
  return statementsOf(built, lid(built.agent.runtimeRole));
}

function dispatcherStatements(built: Built): any[] {
  return statementsOf(built, lid(built.agent.dispatcherFunction.role!));
}

function actionsOf(statements: any[]): string[] {
  return statements.flatMap((s) => asArray(s.Action));
}

function allowing(statements: any[], action: string): any[] {
  return statements.filter((s) => s.Effect === 'Allow' && asArray(s.Action).includes(action));
}

/** The uploaded settings document. */
function settingsDocument(built: Built): any {
  const bucket = { Ref: lid(built.agent.knowledgeBucket.bucket) };
  const deployments = resourcesOf(built.template(), 'Custom::CDKBucketDeployment')
    .filter((d) => JSON.stringify(d.props.DestinationBucketName) === JSON.stringify(bucket));
  expect(deployments).toHaveLength(1);
  const markers = deployments[0].props.SourceMarkers;
  return JSON.parse(Object.values(markers[0])[0] as string);
}

function newAgent(extra: Partial<HermesAgentCoreAgentProps>, setup?: (stack: Stack) => Partial<HermesAgentCoreAgentProps>): HermesAgentCoreAgent {
  const stack = new Stack(new App(), 'Validation', { env: ENV });
  return new HermesAgentCoreAgent(stack, 'Agent', {
    access: AgentAccess.allowUsers({ telegram: TELEGRAM_USERS }), ...extra, ...(setup ? setup(stack) : {}),
  });
}

// ---------------------------------------------------------------------------
// Stacks
// ---------------------------------------------------------------------------

const defaults = build('Defaults');

let vpc: ec2.Vpc;
let securityGroup: ec2.SecurityGroup;
const inVpc = build('InVpc', {}, (stack) => {
  vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 0, subnetConfiguration: [{ name: 'Private', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }] });
  securityGroup = new ec2.SecurityGroup(stack, 'Sg', { vpc });
  return { vpc, vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED }, securityGroups: [securityGroup] };
});
const vpcDefaultSg = build('VpcDefaultSg', {}, (stack) => ({
  vpc: new ec2.Vpc(stack, 'Vpc', { natGateways: 0, subnetConfiguration: [{ name: 'Private', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }] }),
}));

let alarmTopic: sns.Topic;
let ownKey: kms.Key;
const tuned = build('Tuned', {
  runtimeName: 'hermes_tuned',
  idleTimeout: Duration.minutes(5),
  maxLifetime: Duration.hours(2),
  environment: { HERMES_LOG_LEVEL: 'DEBUG', MY_FLAG: '1' },
  turnTimeout: Duration.minutes(10),
  sessionTtl: Duration.days(30),
  historyMaxMessages: 100,
  maxReceiveCount: 5,
  registerWebhook: false,
  logRetention: logs.RetentionDays.THREE_MONTHS,
  removalPolicy: RemovalPolicy.DESTROY,
  backup: false,
  dashboard: false,
  dailyTokenBudget: 200_000,
  tokenPrices: { inputPerMillion: 0.5, outputPerMillion: 1.5 },
  scheduleTimeZone: TimeZone.EUROPE_BERLIN,
  settings: { soul: 'You are Ada.' },
}, (stack) => {
  alarmTopic = new sns.Topic(stack, 'Alarms');
  ownKey = new kms.Key(stack, 'TeamKey', { enableKeyRotation: true });
  return { alarmTopic, encryptionKey: ownKey };
});

const noJobs = build('NoJobs', { scheduledJobs: false });

let agentMemory: AgentMemory;
let teamKnowledge: KnowledgeBucket;
let apiKey: secretsmanager.ISecret;
const withMemory = build('WithMemory', { access: AgentAccess.allowAll() }, (stack) => {
  agentMemory = new AgentMemory(stack, 'Memory');
  teamKnowledge = new KnowledgeBucket(stack, 'TeamKnowledge');
  apiKey = secretsmanager.Secret.fromSecretNameV2(stack, 'DeepSeekKey', 'team/deepseek');
  return {
    memory: agentMemory,
    knowledgeBucket: teamKnowledge,
    model: AgentModel.openAiCompatible({ baseUrl: 'https://api.deepseek.com/v1', modelName: 'deepseek-chat', apiKey }),
  };
});

let slackSecrets: SlackSecrets;
let teamTelegram: TelegramSecrets;
const slackOnly = build('SlackOnly', { access: AgentAccess.allowUsers({ slack: ['U012ABCDEF'] }) }, (stack) => {
  slackSecrets = new SlackSecrets(stack, 'Slack');
  return { slack: slackSecrets };
});
const bothChannels = build('BothChannels', { access: AgentAccess.allowAll() }, (stack) => {
  teamTelegram = new TelegramSecrets(stack, 'TeamTelegram');
  return { telegram: teamTelegram, slack: new SlackSecrets(stack, 'TeamSlack') };
});

// ---------------------------------------------------------------------------
// Runtime
// ---------------------------------------------------------------------------

describe('HermesAgentCoreAgent: the AgentCore runtime', () => {
  test('HTTP protocol, IAM authorization (no JWT authorizer), public network, AWS default lifecycle', () => {
    const p = runtimeProps(defaults);
    expect(p.ProtocolConfiguration).toBe('HTTP');
    expect(p.AuthorizerConfiguration).toBeUndefined();
    expect(p.NetworkConfiguration).toEqual({ NetworkMode: 'PUBLIC' });
    expect(p.LifecycleConfiguration).toEqual({ IdleRuntimeSessionTimeout: 900, MaxLifetime: 28800 });
    expect(p.AgentRuntimeName).toMatch(/^[a-zA-Z][a-zA-Z0-9_]{0,47}$/);
    defaults.template().resourceCountIs(RUNTIME_TYPE, 1);
  });

  test('the image is the Dockerfile\'s agentcore target, built for linux/arm64, from the shipped context', () => {
    const assembly = app.synth();
    const manifest = JSON.parse(fs.readFileSync(path.join(assembly.directory, `${defaults.stack.artifactId}.assets.json`), 'utf8'));
    const images = Object.values(manifest.dockerImages) as any[];
    expect(images).toHaveLength(1);
    expect(images[0].source.dockerBuildTarget).toBe('agentcore');
    expect(images[0].source.platform).toBe('linux/arm64');
    const context = path.join(assembly.directory, images[0].source.directory);
    expect(fs.readFileSync(path.join(context, 'Dockerfile'), 'utf8')).toContain('FROM base AS agentcore');
    expect(fs.existsSync(path.join(context, 'hermes_aws', 'agentcore_app.py'))).toBe(true);
    expect(fs.existsSync(path.join(context, 'tests'))).toBe(false); // .dockerignore honoured
    const uri = JSON.stringify(runtimeProps(defaults).AgentRuntimeArtifact.ContainerConfiguration.ContainerUri);
    expect(uri).toContain(images[0].destinations[Object.keys(images[0].destinations)[0]].imageTag);
  });

  test('environment: stores, settings, secrets, history, scheduled jobs; no bot token', () => {
    const env = runtimeEnv(defaults);
    expect(env.HERMES_AWS_TABLE).toEqual({ Ref: lid(defaults.agent.table) });
    expect(env.HERMES_AWS_BUCKET).toEqual({ Ref: lid(defaults.agent.knowledgeBucket.bucket) });
    expect(JSON.stringify(env.HERMES_AWS_SETTINGS_S3)).toContain('.hermes-aws/settings/');
    expect(env.HERMES_AWS_SKILLS_PREFIX).toBe('skills/');
    expect(env.HERMES_AWS_MEMORIES_PREFIX).toBe('memories/');
    expect(env.HERMES_AWS_HISTORY_MAX_MESSAGES).toBe('200');
    // attempts, budgets and prices are the dispatcher's business
    expect(env.HERMES_AWS_MAX_RECEIVE_COUNT).toBeUndefined();
    expect(env.HERMES_AWS_TOKEN_PRICES).toBeUndefined();
    expect(env.HERMES_AWS_AGENT_NAME).toBe('Defaults/Agent');
    expect(env.HERMES_AWS_SCHEDULE_GROUP).toEqual(defaults.stack.resolve(defaults.agent.scheduleGroup!.scheduleGroupName));
    expect(env.HERMES_AWS_SCHEDULER_ROLE_ARN).toEqual({ 'Fn::GetAtt': [lid(defaults.agent.schedulerRole!), 'Arn'] });
    expect(env.HERMES_AWS_QUEUE_ARN).toEqual({ 'Fn::GetAtt': [lid(defaults.agent.queue), 'Arn'] });
    expect(env.HERMES_AWS_TELEGRAM_BOT_TOKEN_ARN).toBeUndefined();
    expect(env.HERMES_AWS_SLACK_BOT_TOKEN_ARN).toBeUndefined();
    expect(env.HERMES_AWS_MEMORY_ID).toBeUndefined();
    expect(env.HERMES_AWS_DAILY_TOKEN_BUDGET).toBeUndefined();
    expect(env.HERMES_AWS_SCHEDULE_TIMEZONE).toBeUndefined();
  });

  test('observability: X-Ray traces, application and usage logs into a KMS-encrypted log group with retention', () => {
    const t = defaults.template();
    const group = propsOf(defaults, defaults.agent.runtimeLogGroup);
    expect(group.KmsKeyId).toEqual({ 'Fn::GetAtt': [SHARED_KEY, 'Arn'] });
    expect(group.RetentionInDays).toBe(30);
    const sources = resourcesOf(t, 'AWS::Logs::DeliverySource').map((s) => s.props);
    expect(sources.map((s) => s.LogType).sort()).toEqual(['APPLICATION_LOGS', 'TRACES', 'USAGE_LOGS']);
    for (const s of sources) expect(s.ResourceArn).toEqual({ 'Fn::GetAtt': [lid(defaults.agent.runtime), 'AgentRuntimeArn'] });
    const destinations = resourcesOf(t, 'AWS::Logs::DeliveryDestination').map((d) => d.props);
    expect(destinations.filter((d) => d.DeliveryDestinationType === 'XRAY')).toHaveLength(1);
    const cwl = destinations.filter((d) => d.DeliveryDestinationType === 'CWL');
    expect(cwl).toHaveLength(2);
    for (const d of cwl) expect(d.DestinationResourceArn).toEqual({ 'Fn::GetAtt': [lid(defaults.agent.runtimeLogGroup), 'Arn'] });
    t.resourceCountIs('AWS::Logs::Delivery', 3);
  });

  test('the runtime role: trusted by AgentCore for this runtime only; the model, the table, its bucket prefixes and settings', () => {
    const role = defaults.template().toJSON().Resources[lid(defaults.agent.runtimeRole)].Properties;
    const trust = role.AssumeRolePolicyDocument.Statement[0];
    expect(trust.Principal).toEqual({ Service: 'bedrock-agentcore.amazonaws.com' });
    expect(trust.Condition.StringEquals['aws:SourceAccount']).toBe('111111111111');
    const statements = runtimeStatements(defaults);
    const invoke = allowing(statements, 'bedrock:InvokeModel');
    expect(JSON.stringify(invoke)).toContain('inference-profile/us.anthropic.claude-sonnet-4-6');
    expect(allowing(statements, 'dynamodb:PutItem')[0].Resource).toEqual([{ 'Fn::GetAtt': [lid(defaults.agent.table), 'Arn'] }]);
    const writes = JSON.stringify(allowing(statements, 's3:PutObject'));
    expect(writes).toContain('/skills/*');
    expect(writes).toContain('/memories/*');
    expect(writes).not.toContain('/knowledge/*');
    expect(JSON.stringify(allowing(statements, 's3:GetObject*'))).toContain('.hermes-aws/settings/');
    expect(actionsOf(statements)).toEqual(expect.arrayContaining(['scheduler:CreateSchedule', 'iam:PassRole']));
    // never a bot token, never the runtime itself
    expect(JSON.stringify(allowing(statements, 'secretsmanager:GetSecretValue'))).not.toContain(lid(defaults.agent.telegram!.botToken));
    expect(actionsOf(statements)).not.toContain('bedrock-agentcore:InvokeAgentRuntime');
  });

  test('no channel tokens: with both channels, no bot token in the runtime\'s environment or role; the dispatcher reads both', () => {
    const tokens = [bothChannels.agent.telegram!.botToken, bothChannels.agent.slack!.botToken].map((t) => lid(t));
    const env = JSON.stringify(runtimeEnv(bothChannels));
    const runtimePolicy = JSON.stringify(runtimeStatements(bothChannels));
    const dispatcherReads = JSON.stringify(allowing(dispatcherStatements(bothChannels), 'secretsmanager:GetSecretValue'));
    for (const token of tokens) {
      expect(env).not.toContain(token);
      expect(runtimePolicy).not.toContain(token);
      expect(dispatcherReads).toContain(token);
    }
    // the runtime still reads the settings' secrets (none here) and the model, and gets every other agent variable
    expect(Object.keys(runtimeEnv(bothChannels)).filter((n) => n.endsWith('_BOT_TOKEN_ARN'))).toEqual([]);
    expect(runtimeEnv(bothChannels).HERMES_AWS_SECRET_ARNS).toBeDefined();
  });

  test('the runtime depends on the settings upload (a new document, then a new version)', () => {
    const resource = defaults.template().toJSON().Resources[lid(defaults.agent.runtime)];
    expect(JSON.stringify(resource.DependsOn)).toContain('AgentSettings');
  });

  test('grantPrincipal is the runtime role', () => {
    expect(defaults.agent.grantPrincipal).toBe(defaults.agent.runtimeRole);
  });
});

// ---------------------------------------------------------------------------
// Dispatcher
// ---------------------------------------------------------------------------

describe('HermesAgentCoreAgent: the dispatcher', () => {
  test('a small zip function on ARM64, latest Python, timeout = turn + 1 minute, SQS batch of 1 with partial failures', () => {
    const p = propsOf(defaults, defaults.agent.dispatcherFunction);
    expect(p.Handler).toBe('hermes_aws.agentcore_dispatcher.handler');
    expect(p.Architectures).toEqual(['arm64']);
    expect(p.Runtime).toMatch(/^python3\.\d+$/);
    expect(p.MemorySize).toBe(256);
    expect(p.Timeout).toBe(360);
    expect(p.TracingConfig).toEqual({ Mode: 'Active' });
    expect(p.PackageType).toBeUndefined(); // zip, not an image
    defaults.template().hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      FunctionName: { Ref: lid(defaults.agent.dispatcherFunction) },
      BatchSize: 1,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
    expect(propsOf(defaults, defaults.agent.queue).VisibilityTimeout).toBe(6 * 360);
  });

  test('environment: the runtime, the ledger table, the queue, bot tokens, attempts; nothing of the agent\'s settings', () => {
    const env = dispatcherEnv(defaults);
    expect(env.HERMES_AWS_AGENT_RUNTIME_ARN).toEqual({ 'Fn::GetAtt': [lid(defaults.agent.runtime), 'AgentRuntimeArn'] });
    expect(env.HERMES_AWS_INVOKE_TIMEOUT_SECONDS).toBe('300');
    expect(env.HERMES_AWS_QUEUE_URL).toEqual({ Ref: lid(defaults.agent.queue) });
    expect(env.HERMES_AWS_TABLE).toEqual({ Ref: lid(defaults.agent.table) });
    expect(env.HERMES_AWS_TELEGRAM_BOT_TOKEN_ARN).toEqual({ Ref: lid(defaults.agent.telegram!.botToken) });
    expect(env.HERMES_AWS_MAX_RECEIVE_COUNT).toBe('3');
    expect(env.HERMES_AWS_AGENT_NAME).toBe('Defaults/Agent');
    expect(env.HERMES_AWS_SETTINGS_S3).toBeUndefined();
    expect(env.HERMES_AWS_SECRET_ARNS).toBeUndefined();
  });

  test('the dispatcher role: invoke the runtime (also for a user), read and update ledger items, bot token; no model, no bucket', () => {
    const statements = dispatcherStatements(defaults);
    const invoke = allowing(statements, 'bedrock-agentcore:InvokeAgentRuntime');
    expect(invoke).toHaveLength(1);
    expect(asArray(invoke[0].Action)).toContain('bedrock-agentcore:InvokeAgentRuntimeForUser');
    expect(JSON.stringify(invoke[0].Resource)).toContain(lid(defaults.agent.runtime));
    const table = allowing(statements, 'dynamodb:GetItem');
    expect(table).toHaveLength(1);
    expect(asArray(table[0].Action).sort()).toEqual(['dynamodb:GetItem', 'dynamodb:UpdateItem']);
    expect(JSON.stringify(allowing(statements, 'secretsmanager:GetSecretValue'))).toContain(lid(defaults.agent.telegram!.botToken));
    expect(actionsOf(statements).filter((a) => a.startsWith('bedrock:') || a.startsWith('s3:'))).toEqual([]);
  });

  test('its missing concurrency reservation is acknowledged without naming a prop this construct does not have', () => {
    const reason = acknowledgement(defaults.agent.dispatcherFunction, 'NIST.800.53.R5-LambdaConcurrency');
    expect(reason).toMatch(/^The function has no reserved concurrency \(no prop sets one\)/);
    for (const fn of [defaults.agent.dispatcherFunction, defaults.agent.ingressFunction, defaults.agent.webhookRegistrationFunction!]) {
      expect(acknowledgement(fn, 'NIST.800.53.R5-LambdaConcurrency')).not.toContain('workerReservedConcurrency');
    }
  });
});

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

describe('HermesAgentCoreAgent: operations', () => {
  test('six alarms without actions by default, a dashboard, the runtime ARN as output', () => {
    const t = defaults.template();
    const alarms = resourcesOf(t, 'AWS::CloudWatch::Alarm');
    expect(alarms).toHaveLength(6);
    for (const a of alarms) expect(a.props.AlarmActions).toBeUndefined();
    t.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    const outputs = t.toJSON().Outputs;
    expect(Object.keys(outputs).some((k) => k.startsWith('AgentRuntimeArn'))).toBe(true);
    expect(Object.keys(outputs).some((k) => k.startsWith('AgentWebhookUrl'))).toBe(true);
  });

  test('memory failures: an embedded metric of the runtime (per agent) with an alarm; no log group or filter is created for it', () => {
    const t = withMemory.template();
    // the runtime's own stdout group is AgentCore's: creating it could collide with the service
    expect(resourcesOf(t, 'AWS::Logs::LogGroup').filter((g) => g.props.LogGroupName !== undefined)).toEqual([]);
    t.resourceCountIs('AWS::Logs::MetricFilter', 0);
    expect(runtimeEnv(withMemory).HERMES_AWS_AGENT_NAME).toBe('WithMemory/Agent');
    const alarm = propsOf(withMemory, withMemory.agent.memoryFailuresAlarm!);
    expect([alarm.Namespace, alarm.MetricName, alarm.Threshold, alarm.Period]).toEqual(['HermesAgent/Serverless', 'MemoryFailures', 5, 900]);
    expect(alarm.Dimensions).toEqual([{ Name: 'Agent', Value: 'WithMemory/Agent' }]);
    expect(resourcesOf(t, 'AWS::CloudWatch::Alarm')).toHaveLength(7);
    expect(JSON.stringify(propsOf(withMemory, withMemory.agent.dashboard!).DashboardBody)).toContain('MemoryFailures');
  });

  test('without memory: no memory alarm', () => {
    const t = defaults.template();
    expect(resourcesOf(t, 'AWS::Logs::LogGroup').filter((g) => g.props.LogGroupName !== undefined)).toEqual([]);
    t.resourceCountIs('AWS::Logs::MetricFilter', 0);
    expect(defaults.agent.memoryFailuresAlarm).toBeUndefined();
    expect(JSON.stringify(propsOf(defaults, defaults.agent.dashboard!).DashboardBody)).not.toContain('MemoryFailures');
  });

  test('the turn, dispatcher and runtime alarms watch the right metrics', () => {
    const turn = propsOf(defaults, defaults.agent.turnErrorsAlarm);
    expect([turn.Namespace, turn.MetricName, turn.Threshold]).toEqual(['HermesAgent/Serverless', 'TurnErrors', 3]);
    expect(turn.Dimensions).toEqual([{ Name: 'Agent', Value: 'Defaults/Agent' }]);
    const dispatcher = propsOf(defaults, defaults.agent.dispatcherErrorsAlarm);
    expect([dispatcher.Namespace, dispatcher.MetricName]).toEqual(['AWS/Lambda', 'Errors']);
    const runtime = propsOf(defaults, defaults.agent.runtimeErrorsAlarm);
    expect(runtime.Namespace).toBe('AWS/Bedrock-AgentCore');
  });

  test('metric helpers: the runtime\'s embedded metrics per agent, queue, dispatcher and AgentCore metrics', () => {
    const agent = defaults.agent;
    const stack = defaults.stack;
    const resolved = (m: cloudwatch.IMetric) => stack.resolve((m as cloudwatch.Metric).toMetricConfig().metricStat);
    for (const [metric, name] of [
      [agent.metricIngressAccepted(), 'IngressAccepted'], [agent.metricIngressRejected(), 'IngressRejected'],
      [agent.metricTurnDuration(), 'TurnDuration'], [agent.metricTurnErrors(), 'TurnErrors'],
      [agent.metricInputTokens(), 'InputTokens'], [agent.metricOutputTokens(), 'OutputTokens'],
      [agent.metricEstimatedCost(), 'EstimatedCost'], [agent.metricBudgetExceeded(), 'BudgetExceeded'],
      [agent.metricMemoryFailures(), 'MemoryFailures'],
    ] as Array<[cloudwatch.Metric, string]>) {
      const stat = resolved(metric);
      expect([stat.namespace, stat.metricName]).toEqual(['HermesAgent/Serverless', name]);
      expect(stat.dimensions).toEqual([{ name: 'Agent', value: 'Defaults/Agent' }]);
    }
    expect(resolved(agent.metricTurnDuration()).statistic).toBe('p90');
    expect(resolved(agent.metricUserEstimatedCost('telegram:1')).dimensions).toEqual(
      [{ name: 'Agent', value: 'Defaults/Agent' }, { name: 'User', value: 'telegram:1' }]);
    const tokens = agent.metricUserTokens('slack:U1') as cloudwatch.MathExpression;
    expect(tokens.expression).toBe('input + output');
    expect(resolved(agent.metricQueueAge()).metricName).toBe('ApproximateAgeOfOldestMessage');
    expect(resolved(agent.metricDeadLetterMessages()).metricName).toBe('ApproximateNumberOfMessagesVisible');
    expect(resolved(agent.metricDispatcherErrors()).metricName).toBe('Errors');
    for (const [metric, name] of [
      [agent.metricRuntimeInvocations(), 'Invocations'], [agent.metricRuntimeErrors(), 'TotalErrors'],
      [agent.metricRuntimeThrottles(), 'Throttles'], [agent.metricRuntimeLatency(), 'Latency'],
      [agent.metricRuntimeSessions(), 'SessionCount'],
    ] as Array<[cloudwatch.Metric, string]>) {
      const stat = resolved(metric);
      expect([stat.namespace, stat.metricName]).toEqual(['AWS/Bedrock-AgentCore', name]);
    }
  });
});

// ---------------------------------------------------------------------------
// Props
// ---------------------------------------------------------------------------

describe('HermesAgentCoreAgent props', () => {
  test('runtimeName, idleTimeout, maxLifetime', () => {
    const p = runtimeProps(tuned);
    expect(p.AgentRuntimeName).toBe('hermes_tuned');
    expect(p.LifecycleConfiguration).toEqual({ IdleRuntimeSessionTimeout: 300, MaxLifetime: 7200 });
  });

  test('environment is added to the runtime\'s own', () => {
    const env = runtimeEnv(tuned);
    expect(env.HERMES_LOG_LEVEL).toBe('DEBUG');
    expect(env.MY_FLAG).toBe('1');
    expect(env.HERMES_AWS_TABLE).toBeDefined();
  });

  test('turnTimeout: invoke timeout, dispatcher timeout and queue visibility follow', () => {
    expect(dispatcherEnv(tuned).HERMES_AWS_INVOKE_TIMEOUT_SECONDS).toBe('600');
    expect(propsOf(tuned, tuned.agent.dispatcherFunction).Timeout).toBe(660);
    expect(propsOf(tuned, tuned.agent.queue).VisibilityTimeout).toBe(6 * 660);
  });

  test('sessionTtl and historyMaxMessages reach the runtime; maxReceiveCount, dailyTokenBudget, tokenPrices the dispatcher', () => {
    const env = runtimeEnv(tuned);
    expect(env.HERMES_AWS_SESSION_TTL_DAYS).toBe('30');
    expect(env.HERMES_AWS_HISTORY_MAX_MESSAGES).toBe('100');
    const consumerOnly = [env.HERMES_AWS_MAX_RECEIVE_COUNT, env.HERMES_AWS_DAILY_TOKEN_BUDGET, env.HERMES_AWS_TOKEN_PRICES];
    expect(consumerOnly).toEqual([undefined, undefined, undefined]);
    const d = dispatcherEnv(tuned);
    expect(d.HERMES_AWS_SESSION_TTL_DAYS).toBeUndefined();
    expect(d.HERMES_AWS_MAX_RECEIVE_COUNT).toBe('5');
    expect(d.HERMES_AWS_DAILY_TOKEN_BUDGET).toBe('200000');
    expect(JSON.parse(d.HERMES_AWS_TOKEN_PRICES)).toEqual({ inputPerMillion: 0.5, outputPerMillion: 1.5 });
    expect(propsOf(tuned, tuned.agent.queue).RedrivePolicy.maxReceiveCount).toBe(5);
  });

  test('scheduleTimeZone reaches the runtime', () => {
    expect(runtimeEnv(tuned).HERMES_AWS_SCHEDULE_TIMEZONE).toBe('Europe/Berlin');
  });

  test('registerWebhook false, dashboard false, backup false, removalPolicy, logRetention, encryptionKey, alarmTopic, settings', () => {
    const t = tuned.template();
    t.resourceCountIs('Custom::HermesTelegramWebhook', 0);
    t.resourceCountIs('AWS::CloudWatch::Dashboard', 0);
    t.resourceCountIs('AWS::Backup::BackupSelection', 0);
    expect(t.toJSON().Resources[lid(tuned.agent.table)].DeletionPolicy).toBe('Delete');
    const group = propsOf(tuned, tuned.agent.runtimeLogGroup);
    expect(group.RetentionInDays).toBe(90);
    expect(group.KmsKeyId).toEqual({ 'Fn::GetAtt': [lid(ownKey), 'Arn'] });
    for (const a of resourcesOf(t, 'AWS::CloudWatch::Alarm')) {
      expect(a.props.AlarmActions).toEqual([{ Ref: lid(alarmTopic) }]);
      expect(a.props.OKActions).toEqual([{ Ref: lid(alarmTopic) }]);
    }
    expect(settingsDocument(tuned).soul).toBe('You are Ada.');
  });

  test('the settings turn off what the image cannot run, and cronjob only without scheduled jobs', () => {
    const on = settingsDocument(defaults).config.agent.disabled_toolsets;
    expect(on).toEqual(expect.arrayContaining(['terminal', 'browser', 'code_execution', 'delegation', 'computer_use']));
    expect(on).not.toContain('cronjob');
    expect(settingsDocument(noJobs).config.agent.disabled_toolsets).toContain('cronjob');
  });

  test('scheduledJobs false: no schedule group, no scheduler grants or environment', () => {
    noJobs.template().resourceCountIs('AWS::Scheduler::ScheduleGroup', 0);
    expect(noJobs.agent.scheduleGroup).toBeUndefined();
    expect(noJobs.agent.schedulerRole).toBeUndefined();
    expect(runtimeEnv(noJobs).HERMES_AWS_SCHEDULE_GROUP).toBeUndefined();
    expect(actionsOf(runtimeStatements(noJobs))).not.toContain('scheduler:CreateSchedule');
  });

  test('vpc, vpcSubnets, securityGroups: the runtime runs in the VPC', () => {
    const network = runtimeProps(inVpc).NetworkConfiguration;
    expect(network.NetworkMode).toBe('VPC');
    expect(network.NetworkModeConfig.SecurityGroups).toEqual([{ 'Fn::GetAtt': [lid(securityGroup), 'GroupId'] }]);
    const subnets = vpc.isolatedSubnets.map((s) => ({ Ref: lid(s.node.defaultChild as IConstruct) }));
    expect(network.NetworkModeConfig.Subnets).toEqual(subnets);
    // without security groups one is created for the runtime
    const own = runtimeProps(vpcDefaultSg).NetworkConfiguration;
    expect(own.NetworkMode).toBe('VPC');
    expect(own.NetworkModeConfig.SecurityGroups).toHaveLength(1);
    vpcDefaultSg.template().resourceCountIs('AWS::EC2::SecurityGroup', 1);
  });

  test('memory: its id and namespaces reach the runtime, which may use it', () => {
    const env = runtimeEnv(withMemory);
    expect(env.HERMES_AWS_MEMORY_ID).toEqual(withMemory.stack.resolve(agentMemory.memory.memoryId));
    expect(JSON.parse(env.HERMES_AWS_MEMORY_NAMESPACES)).toEqual(agentMemory.namespaces);
    const statements = allowing(runtimeStatements(withMemory), 'bedrock-agentcore:CreateEvent');
    expect(JSON.stringify(statements)).toContain(JSON.stringify(withMemory.stack.resolve(agentMemory.memory.memoryArn)));
    expect(withMemory.agent.memory).toBe(agentMemory);
    expect(actionsOf(dispatcherStatements(withMemory))).not.toContain('bedrock-agentcore:CreateEvent');
  });

  test('knowledgeBucket and model: the runtime uses the bucket given and reads the model\'s API key; the dispatcher does not', () => {
    expect(withMemory.agent.knowledgeBucket).toBe(teamKnowledge);
    expect(runtimeEnv(withMemory).HERMES_AWS_BUCKET).toEqual({ Ref: lid(teamKnowledge.bucket) });
    expect(apiKey.secretName).toBe('team/deepseek');
    expect(JSON.stringify(allowing(runtimeStatements(withMemory), 'secretsmanager:GetSecretValue'))).toContain('secret:team/deepseek');
    expect(JSON.stringify(allowing(dispatcherStatements(withMemory), 'secretsmanager:GetSecretValue'))).not.toContain('team/deepseek');
    expect(JSON.stringify(runtimeEnv(withMemory).HERMES_AWS_SECRET_ARNS)).toContain('HERMES_MODEL_API_KEY');
    expect(actionsOf(runtimeStatements(withMemory))).not.toContain('bedrock:InvokeModel');
  });

  test('access allowAll reaches the ingress', () => {
    expect(propsOf(withMemory, withMemory.agent.ingressFunction).Environment.Variables.HERMES_AWS_TELEGRAM_ALLOW_ALL).toBe('true');
  });

  test('slack only: no Telegram channel, the dispatcher gets the Slack bot token', () => {
    expect(slackOnly.agent.telegram).toBeUndefined();
    expect(slackOnly.agent.slack).toBe(slackSecrets);
    const env = dispatcherEnv(slackOnly);
    expect(env.HERMES_AWS_SLACK_BOT_TOKEN_ARN).toEqual({ Ref: lid(slackSecrets.botToken) });
    expect(env.HERMES_AWS_TELEGRAM_BOT_TOKEN_ARN).toBeUndefined();
    expect(runtimeEnv(slackOnly).HERMES_AWS_SLACK_BOT_TOKEN_ARN).toBeUndefined();
    slackOnly.template().resourceCountIs('Custom::HermesTelegramWebhook', 0);
  });

  test('telegram given: that channel is used, with both channels\' tokens for the dispatcher', () => {
    expect(bothChannels.agent.telegram).toBe(teamTelegram);
    const env = dispatcherEnv(bothChannels);
    expect(env.HERMES_AWS_TELEGRAM_BOT_TOKEN_ARN).toEqual({ Ref: lid(teamTelegram.botToken) });
    expect(env.HERMES_AWS_SLACK_BOT_TOKEN_ARN).toBeDefined();
  });
});

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

describe('HermesAgentCoreAgent validation', () => {
  test('access is required and must name a channel the agent has', () => {
    const stack = new Stack(new App(), 'NoAccess', { env: ENV });
    expectPropError(() => new HermesAgentCoreAgent(stack, 'Agent', {} as HermesAgentCoreAgentProps),
      'HermesAgentCoreAgentProps.access is required: choose AgentAccess.allowUsers({ telegram: [...] }) or AgentAccess.allowAll()');
    expectPropError(() => newAgent({ access: AgentAccess.allowUsers({ slack: ['U012ABCDEF'] }) }),
      'HermesAgentCoreAgentProps.access allows slack users, but HermesAgentCoreAgentProps.slack is not set, so the agent does not answer on Slack');
  });

  test('runtimeName follows AgentCore\'s rule', () => {
    expectPropError(() => newAgent({ runtimeName: 'hermes-agent' }),
      'HermesAgentCoreAgentProps.runtimeName must be a letter followed by up to 47 letters, digits or underscores (AgentCore allows no hyphens) (got "hermes-agent")');
    expectPropError(() => newAgent({ runtimeName: '1hermes' }),
      'HermesAgentCoreAgentProps.runtimeName must be a letter followed by up to 47 letters, digits or underscores (AgentCore allows no hyphens) (got "1hermes")');
    expectPropError(() => newAgent({ runtimeName: 'a'.repeat(49) }),
      `HermesAgentCoreAgentProps.runtimeName must be a letter followed by up to 47 letters, digits or underscores (AgentCore allows no hyphens) (got "${'a'.repeat(49)}")`);
    expect(() => newAgent({ runtimeName: 'a'.repeat(48) })).not.toThrow();
  });

  test('idleTimeout and maxLifetime: 1 minute to 8 hours, idle not longer than lifetime', () => {
    expectPropError(() => newAgent({ idleTimeout: Duration.seconds(30) }),
      'HermesAgentCoreAgentProps.idleTimeout (in seconds) must be an integer between 60 and 28800 (got 30)');
    expectPropError(() => newAgent({ maxLifetime: Duration.hours(9) }),
      'HermesAgentCoreAgentProps.maxLifetime (in seconds) must be an integer between 60 and 28800 (got 32400)');
    expectPropError(() => newAgent({ idleTimeout: Duration.hours(2), maxLifetime: Duration.hours(1) }),
      'HermesAgentCoreAgentProps.idleTimeout must not be longer than maxLifetime (7200 s > 3600 s)');
  });

  test('turnTimeout: 1 to 14 minutes', () => {
    expectPropError(() => newAgent({ turnTimeout: Duration.minutes(15) }),
      'HermesAgentCoreAgentProps.turnTimeout (in seconds) must be an integer between 60 and 840 (got 900)');
    expectPropError(() => newAgent({ turnTimeout: Duration.seconds(10) }),
      'HermesAgentCoreAgentProps.turnTimeout (in seconds) must be an integer between 60 and 840 (got 10)');
  });

  test('environment: valid names, none the construct sets, at most 50 in all', () => {
    expectPropError(() => newAgent({ environment: { 'MY-FLAG': '1' } }),
      'HermesAgentCoreAgentProps.environment must be keyed by names of letters, digits and "_" that do not start with a digit (at most 100 characters) (got "MY-FLAG")');
    expectPropError(() => newAgent({ environment: { HERMES_AWS_TABLE: 'other' } }),
      'HermesAgentCoreAgentProps.environment must not set HERMES_AWS_TABLE: the construct sets it');
    expectPropError(() => newAgent({ environment: { HERMES_HOME: '/data' } }),
      'HermesAgentCoreAgentProps.environment must not set HERMES_HOME: the construct sets it');
    // a variable the construct fills from a secret (the model's API key)
    const withKey = (environment: { [name: string]: string }) => newAgent({ environment }, (stack) => ({
      model: AgentModel.openAiCompatible({ baseUrl: 'https://api.example.com/v1', modelName: 'm', apiKey: new secretsmanager.Secret(stack, 'K') }),
    }));
    expectPropError(() => withKey({ HERMES_MODEL_API_KEY: 'plain' }),
      'HermesAgentCoreAgentProps.environment must not set HERMES_MODEL_API_KEY: the construct sets it');
    const many = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`VAR_${i}`, 'x']));
    expectPropError(() => newAgent({ environment: many }),
      'HermesAgentCoreAgentProps.environment has too many variables: AgentCore allows 50 per runtime and the construct sets 11');
  });

  test('vpcSubnets and securityGroups need vpc', () => {
    expectPropError(() => newAgent({ vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED } }),
      'HermesAgentCoreAgentProps.vpcSubnets is set, but vpc is not; the runtime uses the public network without a VPC');
    expectPropError(() => newAgent({}, (stack) => ({
      securityGroups: [ec2.SecurityGroup.fromSecurityGroupId(stack, 'Sg', 'sg-12345678')],
    })), 'HermesAgentCoreAgentProps.securityGroups is set, but vpc is not; the runtime uses the public network without a VPC');
  });

  test('scheduleTimeZone needs scheduled jobs', () => {
    expectPropError(() => newAgent({ scheduledJobs: false, scheduleTimeZone: TimeZone.EUROPE_BERLIN }),
      'HermesAgentCoreAgentProps.scheduleTimeZone is set, but scheduledJobs is false; remove one of them');
  });

  test('the shared checks name this construct\'s props', () => {
    expectPropError(() => newAgent({ maxReceiveCount: 11 }),
      'HermesAgentCoreAgentProps.maxReceiveCount must be an integer between 1 and 10 (got 11)');
    expectPropError(() => newAgent({ historyMaxMessages: 5 }),
      'HermesAgentCoreAgentProps.historyMaxMessages must be an integer between 10 and 2000 (got 5)');
    expectPropError(() => newAgent({ sessionTtl: Duration.days(4000) }),
      'HermesAgentCoreAgentProps.sessionTtl (in days) must be an integer between 1 and 3650 (got 4000)');
    expectPropError(() => newAgent({ dailyTokenBudget: 10 }),
      'HermesAgentCoreAgentProps.dailyTokenBudget must be an integer between 1000 and 1000000000 (got 10)');
    expectPropError(() => newAgent({ tokenPrices: { inputPerMillion: -1, outputPerMillion: 1 } }),
      'HermesAgentCoreAgentProps.tokenPrices.inputPerMillion must be a number between 0 and 1000 (got -1)');
  });
});

// ---------------------------------------------------------------------------
// Cross-stack
// ---------------------------------------------------------------------------

test('a KnowledgeBucket and TelegramSecrets of another stack: no cycle, grants stay on the agent\'s side', () => {
  const crossApp = new App();
  const shared = new Stack(crossApp, 'Shared', { env: ENV });
  const knowledgeBucket = new KnowledgeBucket(shared, 'Knowledge');
  const telegram = new TelegramSecrets(shared, 'Telegram');
  const agentStack = new Stack(crossApp, 'AgentStack', { env: ENV });
  new HermesAgentCoreAgent(agentStack, 'Agent', {
    access: AgentAccess.allowUsers({ telegram: TELEGRAM_USERS }), knowledgeBucket, telegram,
  });
  expect(() => crossApp.synth()).not.toThrow();
  expect(shared.dependencies).toEqual([]);
  expect(agentStack.dependencies).toEqual([shared]);
  const sharedTemplate = JSON.stringify(Template.fromStack(shared).toJSON());
  expect(sharedTemplate).not.toContain('AgentStack');
  Template.fromStack(agentStack).resourceCountIs('AWS::S3::Bucket', 0);
  Template.fromStack(agentStack).hasResourceProperties(RUNTIME_TYPE, {
    EnvironmentVariables: Match.objectLike({ HERMES_AWS_BUCKET: Match.anyValue() }),
  });
});
