import * as fs from 'fs';
import * as path from 'path';
import { App, CfnElement, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as cxapi from 'aws-cdk-lib/cx-api';
import {
  AgentEncryptionKey, AgentModel, AgentAccess, GatewayEgress, HermesFargateGateway, HermesFargateGatewayProps,
  KnowledgeBucket, McpServer, SecretPlaceholder, SlackSecrets,
} from '../src';
import { lazyTemplate, lid, resourcesOf } from './util';

const ENV = { account: '111111111111', region: 'us-east-1' };
/** Logical id of the stack's shared key (construct id `HermesAgentKey` directly under the stack). */
const SHARED_KEY = 'HermesAgentKey2DBA7C9F';
const SLACK_USER = 'U012ABCDEF';
const TELEGRAM_USER = '123456789';
const DISCORD_USER = '123456789012345678';

// ---------------------------------------------------------------------------
// One App for every synthesized stack of this file: the Docker build context is
// staged once, and the first Template.fromStack synthesizes all stacks in one go.
// Stacks are therefore all built while jest collects the tests (describe bodies),
// before any template is read; the app cannot change after its first synthesis.
// ---------------------------------------------------------------------------
const app = new App();

interface Built {
  readonly stack: Stack;
  readonly gateway: HermesFargateGateway;
  /** The stack's template, synthesized on first use. */
  readonly template: () => Template;
}

function build(id: string, props: Partial<HermesFargateGatewayProps> = {}, setup?: (stack: Stack) => Partial<HermesFargateGatewayProps>): Built {
  const stack = new Stack(app, id, { env: ENV });
  const gateway = new HermesFargateGateway(stack, 'Gateway', {
    access: AgentAccess.allowUsers({ slack: [SLACK_USER] }),
    ...props,
    ...(setup ? setup(stack) : {}),
  });
  return { stack, gateway, template: lazyTemplate(stack) };
}


/** The one container definition of the one task definition of the template. */
function container(template: Template): any {
  const taskDefinitions = resourcesOf(template, 'AWS::ECS::TaskDefinition');
  expect(taskDefinitions).toHaveLength(1);
  expect(taskDefinitions[0].props.ContainerDefinitions).toHaveLength(1);
  return taskDefinitions[0].props.ContainerDefinitions[0];
}

function environmentOf(containerDefinition: any): { [name: string]: any } {
  return Object.fromEntries(containerDefinition.Environment.map((e: any) => [e.Name, e.Value]));
}

function environment(template: Template): { [name: string]: any } {
  return environmentOf(container(template));
}

function secrets(template: Template): { [name: string]: any } {
  return Object.fromEntries(container(template).Secrets.map((s: any) => [s.Name, s.ValueFrom]));
}

/** The parsed HERMES_AWS_SETTINGS document. */
function settings(template: Template): any {
  const value = environment(template).HERMES_AWS_SETTINGS;
  expect(typeof value).toBe('string');
  return JSON.parse(value);
}

/** Statements of the default policy attached to `role`. */
function roleStatements(template: Template, roleLogicalId: string): any[] {
  const policies = resourcesOf(template, 'AWS::IAM::Policy')
    .filter((p) => JSON.stringify(p.props.Roles) === JSON.stringify([{ Ref: roleLogicalId }]));
  expect(policies).toHaveLength(1);
  return policies[0].props.PolicyDocument.Statement;
}

function taskRoleStatements(built: Built): any[] {
  return roleStatements(built.template(), lid(built.gateway.taskDefinition.taskRole));
}

function executionRoleStatements(built: Built): any[] {
  return roleStatements(built.template(), lid(built.gateway.taskDefinition.executionRole!));
}

function asArray<T>(value: T | T[]): T[] {
  return Array.isArray(value) ? value : [value];
}

function actionsOf(statements: any[]): string[] {
  return statements.flatMap((s) => asArray(s.Action));
}

/** Fails unless `fn` throws a PropError with exactly `message`. */
function expectPropError(fn: () => unknown, message: string): void {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(Error);
  expect((error as Error).name).toBe('PropError');
  expect((error as Error).message).toBe(message);
}

/** A VPC of the user's: public subnets and two private-with-egress subnet groups. */
function userVpc(stack: Stack): ec2.Vpc {
  return new ec2.Vpc(stack, 'TeamVpc', {
    maxAzs: 2,
    natGateways: 1,
    subnetConfiguration: [
      { name: 'public', subnetType: ec2.SubnetType.PUBLIC },
      { name: 'app', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      { name: 'data', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
    ],
  });
}

function subnetRefs(vpc: ec2.IVpc, selection: ec2.SubnetSelection): any[] {
  return vpc.selectSubnets(selection).subnets.map((s) => ({ Ref: lid(s.node.defaultChild as CfnElement) }));
}

// ---------------------------------------------------------------------------
// Stacks (built at collection time, see above)
// ---------------------------------------------------------------------------

const defaults = build('Defaults');

const allowAll = build('AllowAll', { access: AgentAccess.allowAll() });
const allowAllPlatforms = build('AllowAllPlatforms', { access: AgentAccess.allowAll() }, (stack) => ({
  telegramBotToken: secretsmanager.Secret.fromSecretNameV2(stack, 'TelegramBot', 'team/telegram-bot'),
  discordBotToken: secretsmanager.Secret.fromSecretNameV2(stack, 'DiscordBot', 'team/discord-bot'),
}));
const slackUsersOnly = build('SlackUsersOnly', {
  access: AgentAccess.allowUsers({ slack: [SLACK_USER, 'W0ABCDE12'] }),
});
const platforms = build('Platforms', {
  access: AgentAccess.allowUsers({ slack: [SLACK_USER], telegram: [TELEGRAM_USER, '42'], discord: [DISCORD_USER] }),
}, (stack) => ({
  telegramBotToken: secretsmanager.Secret.fromSecretNameV2(stack, 'TelegramBot', 'team/telegram-bot'),
  discordBotToken: secretsmanager.Secret.fromSecretNameV2(stack, 'DiscordBot', 'team/discord-bot'),
}));

const slackPassed = build('SlackPassed', {}, (stack) => ({
  slack: new SlackSecrets(stack, 'TeamSlack', {
    botToken: secretsmanager.Secret.fromSecretNameV2(stack, 'Bot', 'team/slack-bot'),
    appToken: secretsmanager.Secret.fromSecretNameV2(stack, 'App', 'team/slack-app'),
    signingSecret: secretsmanager.Secret.fromSecretNameV2(stack, 'Signing', 'team/slack-signing'),
  }),
}));

const openAi = build('OpenAi', {}, (stack) => ({
  model: AgentModel.openAiCompatible({
    baseUrl: 'https://api.deepseek.com/v1',
    modelName: 'deepseek-chat',
    apiKey: secretsmanager.Secret.fromSecretNameV2(stack, 'DeepSeekKey', 'team/deepseek'),
  }),
}));

const SOUL = 'You are Ada, the platform team\'s on-call helper.';
const configured = build('Configured', {}, (stack) => ({
  settings: {
    soul: SOUL,
    projectContext: 'Runbooks live in knowledge/runbooks.',
    maxTurns: 40,
    mcpServers: [McpServer.stdio('github', {
      command: 'npx',
      args: ['-y', '@modelcontextprotocol/server-github'],
      secretEnvironment: { GITHUB_TOKEN: secretsmanager.Secret.fromSecretNameV2(stack, 'GitHubToken', 'team/github') },
    })],
  },
}));

let teamKnowledge: KnowledgeBucket;
const knowledgePassed = build('KnowledgePassed', { knowledgeSyncInterval: Duration.hours(1) }, (stack) => {
  teamKnowledge = new KnowledgeBucket(stack, 'TeamKnowledge');
  return { knowledgeBucket: teamKnowledge };
});

let teamVpc: ec2.Vpc;
let teamCluster: ecs.Cluster;
const vpcAndCluster = build('VpcAndCluster', {}, (stack) => {
  teamVpc = userVpc(stack);
  teamCluster = new ecs.Cluster(stack, 'TeamCluster', { vpc: teamVpc, enableFargateCapacityProviders: true });
  return { vpc: teamVpc, cluster: teamCluster };
});

let subnetVpc: ec2.Vpc;
const subnets = build('Subnets', {}, (stack) => {
  subnetVpc = userVpc(stack);
  return { vpc: subnetVpc, vpcSubnets: { subnetGroupName: 'app' } };
});

const natInstance = build('NatInstance', { egress: GatewayEgress.natInstance(), interfaceEndpoints: true });
const natInstanceX86 = build('NatInstanceX86', {
  egress: GatewayEgress.natInstance(ec2.InstanceType.of(ec2.InstanceClass.T3A, ec2.InstanceSize.MICRO)),
});

const x86 = build('X86', { cpuArchitecture: ecs.CpuArchitecture.X86_64 });

let alarmTopic: sns.Topic;
const operations = build('Operations', {
  cpu: 1024,
  memoryLimitMiB: 4096,
  spot: true,
  enableExecuteCommand: true,
  logRetention: logs.RetentionDays.ONE_WEEK,
  platformDownGracePeriod: Duration.minutes(10),
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

// Two agents with their own identity in one stack, sharing a network and a cluster.
const multiStack = new Stack(app, 'MultiAgent', { env: ENV });
const multiVpc = userVpc(multiStack);
const multiCluster = new ecs.Cluster(multiStack, 'Cluster', { vpc: multiVpc, containerInsightsV2: ecs.ContainerInsights.ENABLED });
const ada = new HermesFargateGateway(multiStack, 'Ada', {
  access: AgentAccess.allowUsers({ slack: [SLACK_USER] }),
  vpc: multiVpc,
  cluster: multiCluster,
  settings: { soul: 'You are Ada, the on-call helper.' },
});
const grace = new HermesFargateGateway(multiStack, 'Grace', {
  access: AgentAccess.allowAll(),
  vpc: multiVpc,
  cluster: multiCluster,
  settings: { soul: 'You are Grace, the release manager.' },
});
const multiTemplate = lazyTemplate(multiStack);

// ---------------------------------------------------------------------------
// Defaults
// ---------------------------------------------------------------------------

describe('HermesFargateGateway defaults: network', () => {
  test('creates a VPC with 2 AZs, public and private subnets and one NAT gateway', () => {
    const t = defaults.template();
    t.resourceCountIs('AWS::EC2::VPC', 1);
    t.resourceCountIs('AWS::EC2::NatGateway', 1);
    t.resourceCountIs('AWS::EC2::Instance', 0);
    const subnetResources = resourcesOf(t, 'AWS::EC2::Subnet');
    expect(subnetResources).toHaveLength(4);
    expect(new Set(subnetResources.map((s) => s.props.AvailabilityZone)).size).toBe(2);
    expect(subnetResources.filter((s) => s.props.MapPublicIpOnLaunch === true)).toHaveLength(0);
    expect(defaults.gateway.vpc.publicSubnets).toHaveLength(2);
    expect(defaults.gateway.vpc.privateSubnets).toHaveLength(2);
  });

  test('adds an S3 gateway endpoint', () => {
    defaults.template().hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Gateway',
      ServiceName: { 'Fn::Join': ['', ['com.amazonaws.', { Ref: 'AWS::Region' }, '.s3']] },
      VpcId: { Ref: lid(defaults.gateway.vpc as ec2.Vpc) },
    });
    defaults.template().resourceCountIs('AWS::EC2::VPCEndpoint', 1);
  });

  test('logs rejected flows to a KMS-encrypted, retained log group', () => {
    const t = defaults.template();
    const flowLogs = resourcesOf(t, 'AWS::EC2::FlowLog');
    expect(flowLogs).toHaveLength(1);
    expect(flowLogs[0].props).toMatchObject({
      ResourceType: 'VPC',
      ResourceId: { Ref: lid(defaults.gateway.vpc as ec2.Vpc) },
      TrafficType: 'REJECT',
      LogDestinationType: 'cloud-watch-logs',
    });
    const logGroupId = flowLogs[0].props.LogGroupName.Ref;
    expect(t.toJSON().Resources[logGroupId]).toMatchObject({
      Type: 'AWS::Logs::LogGroup',
      Properties: { KmsKeyId: { 'Fn::GetAtt': [SHARED_KEY, 'Arn'] }, RetentionInDays: 30 },
      DeletionPolicy: 'Retain',
    });
  });

  test('the task security group has no ingress and egress only HTTPS anywhere and NFS to its file system', () => {
    const t = defaults.template();
    const taskSg = lid(defaults.gateway.securityGroup);
    const fsSg = lid(defaults.gateway.fileSystem.connections.securityGroups[0]);
    const sg = t.toJSON().Resources[taskSg];
    expect(sg.Properties.SecurityGroupIngress).toBeUndefined();
    expect(sg.Properties.SecurityGroupEgress).toEqual([
      expect.objectContaining({ CidrIp: '0.0.0.0/0', IpProtocol: 'tcp', FromPort: 443, ToPort: 443 }),
    ]);
    const ingressToTask = resourcesOf(t, 'AWS::EC2::SecurityGroupIngress')
      .filter((r) => JSON.stringify(r.props.GroupId).includes(taskSg));
    expect(ingressToTask).toEqual([]);
    const egressFromTask = resourcesOf(t, 'AWS::EC2::SecurityGroupEgress')
      .filter((r) => JSON.stringify(r.props.GroupId).includes(taskSg));
    expect(egressFromTask.map((r) => r.props)).toEqual([expect.objectContaining({
      IpProtocol: 'tcp', FromPort: 2049, ToPort: 2049, DestinationSecurityGroupId: { 'Fn::GetAtt': [fsSg, 'GroupId'] },
    })]);
  });

  test('the file system security group admits NFS from the task only', () => {
    const t = defaults.template();
    const taskSg = lid(defaults.gateway.securityGroup);
    const fsSg = lid(defaults.gateway.fileSystem.connections.securityGroups[0]);
    expect(t.toJSON().Resources[fsSg].Properties.SecurityGroupIngress).toBeUndefined();
    const ingress = resourcesOf(t, 'AWS::EC2::SecurityGroupIngress')
      .filter((r) => JSON.stringify(r.props.GroupId).includes(fsSg));
    expect(ingress.map((r) => r.props)).toEqual([expect.objectContaining({
      IpProtocol: 'tcp', FromPort: 2049, ToPort: 2049, SourceSecurityGroupId: { 'Fn::GetAtt': [taskSg, 'GroupId'] },
    })]);
  });
});

describe('HermesFargateGateway defaults: state', () => {
  test('EFS is encrypted with the shared key, moves to IA after 30 days and is retained', () => {
    const t = defaults.template();
    t.resourceCountIs('AWS::EFS::FileSystem', 1);
    t.hasResource('AWS::EFS::FileSystem', {
      Properties: Match.objectLike({
        Encrypted: true,
        KmsKeyId: { 'Fn::GetAtt': [SHARED_KEY, 'Arn'] },
        LifecyclePolicies: Match.arrayWith([{ TransitionToIA: 'AFTER_30_DAYS' }]),
        ThroughputMode: 'elastic',
        BackupPolicy: Match.absent(),
      }),
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
  });

  test('one mount target per private subnet', () => {
    const t = defaults.template();
    const mountTargets = resourcesOf(t, 'AWS::EFS::MountTarget');
    expect(mountTargets.map((m) => m.props.SubnetId)).toEqual(subnetRefs(defaults.gateway.vpc, { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS }));
  });

  test('the access point is owned by uid/gid 10000 at /hermes, created with an ACL', () => {
    defaults.template().hasResourceProperties('AWS::EFS::AccessPoint', {
      FileSystemId: { Ref: lid(defaults.gateway.fileSystem) },
      PosixUser: { Uid: '10000', Gid: '10000' },
      RootDirectory: {
        Path: '/hermes',
        CreationInfo: { OwnerUid: '10000', OwnerGid: '10000', Permissions: '750' },
      },
    });
  });

  test('the file system is selected by the shared AWS Backup plan', () => {
    const t = defaults.template();
    t.resourceCountIs('AWS::Backup::BackupPlan', 1);
    t.resourceCountIs('AWS::Backup::BackupVault', 1);
    const selections = resourcesOf(t, 'AWS::Backup::BackupSelection');
    expect(selections).toHaveLength(1);
    expect(JSON.stringify(selections[0].props.BackupSelection.Resources)).toContain(`{"Ref":"${lid(defaults.gateway.fileSystem)}"}`);
    expect(selections[0].props.BackupPlanId).toEqual({ 'Fn::GetAtt': ['HermesAgentBackupPlanAA07B468', 'BackupPlanId'] });
  });

  test('one shared KMS key, one knowledge bucket and placeholder Slack secrets encrypted with it', () => {
    const t = defaults.template();
    t.resourceCountIs('AWS::KMS::Key', 1);
    t.resourceCountIs('AWS::S3::Bucket', 1);
    expect(defaults.stack.node.tryFindChild(AgentEncryptionKey.ID)).toBeDefined();
    const secretResources = resourcesOf(t, 'AWS::SecretsManager::Secret');
    // bot token, app token, signing secret, API server key
    expect(secretResources).toHaveLength(4);
    for (const s of secretResources) expect(s.props.KmsKeyId).toEqual({ 'Fn::GetAtt': [SHARED_KEY, 'Arn'] });
  });
});

describe('HermesFargateGateway defaults: compute', () => {
  test('the cluster has Container Insights and the Fargate capacity providers', () => {
    const t = defaults.template();
    t.resourceCountIs('AWS::ECS::Cluster', 1);
    t.hasResourceProperties('AWS::ECS::Cluster', { ClusterSettings: [{ Name: 'containerInsights', Value: 'enabled' }] });
    t.hasResourceProperties('AWS::ECS::ClusterCapacityProviderAssociations', {
      CapacityProviders: Match.arrayWith(['FARGATE', 'FARGATE_SPOT']),
    });
  });

  test('the task definition is ARM64, 512 CPU, 1024 MiB, with the EFS volume over TLS and IAM', () => {
    defaults.template().hasResourceProperties('AWS::ECS::TaskDefinition', {
      Cpu: '512',
      Memory: '1024',
      RequiresCompatibilities: ['FARGATE'],
      NetworkMode: 'awsvpc',
      RuntimePlatform: { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' },
      Volumes: [{
        Name: 'hermes-home',
        EFSVolumeConfiguration: {
          FilesystemId: { Ref: lid(defaults.gateway.fileSystem) },
          TransitEncryption: 'ENABLED',
          AuthorizationConfig: { AccessPointId: { Ref: lid(defaults.gateway.accessPoint) }, IAM: 'ENABLED' },
        },
      }],
    });
  });

  test('the container runs the image asset with init, a 120 s stop timeout and HERMES_HOME on EFS', () => {
    const c = container(defaults.template());
    expect(c.Image['Fn::Sub']).toMatch(/container-assets-111111111111-us-east-1:[0-9a-f]{64}$/);
    expect(c).toMatchObject({
      Name: 'gateway',
      Essential: true,
      StopTimeout: 120,
      LinuxParameters: { InitProcessEnabled: true },
      MountPoints: [{ SourceVolume: 'hermes-home', ContainerPath: '/data/hermes', ReadOnly: false }],
    });
  });

  test('the container logs to a 30-day, KMS-encrypted log group, non-blocking', () => {
    const t = defaults.template();
    const c = container(t);
    const logGroup = lid(defaults.gateway.logGroup);
    expect(c.LogConfiguration).toMatchObject({
      LogDriver: 'awslogs',
      Options: { 'awslogs-group': { Ref: logGroup }, 'awslogs-stream-prefix': 'gateway', 'mode': 'non-blocking' },
    });
    expect(t.toJSON().Resources[logGroup]).toMatchObject({
      Properties: { RetentionInDays: 30, KmsKeyId: { 'Fn::GetAtt': [SHARED_KEY, 'Arn'] } },
      DeletionPolicy: 'Retain',
    });
  });

  test('the health check runs hermes_aws.health with a 180 s start period', () => {
    expect(container(defaults.template()).HealthCheck).toEqual({
      Command: ['CMD', 'python', '-m', 'hermes_aws.health'],
      Interval: 30,
      Timeout: 10,
      Retries: 3,
      StartPeriod: 180,
    });
  });
});

describe('HermesFargateGateway defaults: environment and secrets', () => {
  test('plain settings: HERMES_HOME, loopback API server, platforms, intervals, gateway id, allow-list', () => {
    const env = environment(defaults.template());
    expect(env).toEqual({
      HERMES_HOME: '/data/hermes',
      HERMES_AWS_SETTINGS: expect.any(String),
      HERMES_AWS_KNOWLEDGE_BUCKET: { Ref: lid(defaults.gateway.knowledgeBucket.bucket) },
      HERMES_AWS_KNOWLEDGE_SYNC_SECONDS: '900',
      HERMES_AWS_PLATFORMS: 'slack',
      HERMES_AWS_PLATFORM_GRACE_SECONDS: '300',
      HERMES_AWS_GATEWAY_ID: 'Defaults/Gateway',
      API_SERVER_ENABLED: 'true',
      API_SERVER_HOST: '127.0.0.1',
      API_SERVER_PORT: '8642',
      SLACK_ALLOWED_USERS: SLACK_USER,
    });
  });

  test('HERMES_AWS_SETTINGS is a version-1 document with the shape config merged in', () => {
    const doc = settings(defaults.template());
    expect(doc.version).toBe(1);
    expect(doc.config.terminal).toEqual({ backend: 'local', cwd: '/data/hermes' });
    expect(doc.config.agent.restart_drain_timeout).toBe(90);
    expect(doc.config.security.allow_lazy_installs).toBe(false);
    expect(doc.config.security.redact_secrets).toBe(true);
    expect(doc.config.model).toEqual({ provider: 'bedrock', default: 'us.anthropic.claude-sonnet-4-6', context_length: 1_000_000 });
    expect(doc.soul).toBeNull();
    expect(doc.secretEnv).toEqual([]);
    expect(defaults.gateway.hermesConfig.config.terminal.cwd).toBe('/data/hermes');
  });

  test('Slack tokens and the API server key come from Secrets Manager', () => {
    const g = defaults.gateway;
    expect(secrets(defaults.template())).toEqual({
      SLACK_BOT_TOKEN: { Ref: lid(g.slack.botToken) },
      SLACK_APP_TOKEN: { Ref: lid(g.slack.appToken) },
      API_SERVER_KEY: { Ref: lid(g.apiServerKey) },
    });
  });

  test('no token value or secret reference is in Environment', () => {
    const t = defaults.template();
    const envJson = JSON.stringify(container(t).Environment);
    for (const s of resourcesOf(t, 'AWS::SecretsManager::Secret')) expect(envJson).not.toContain(s.id);
    expect(envJson).not.toContain(SecretPlaceholder.VALUE);
    expect(envJson).not.toMatch(/:secret:|secretsmanager/);
    expect(Object.keys(environment(t)).filter((name) => /TOKEN|_KEY$/.test(name))).toEqual([]);
  });

  test('the execution role reads exactly the three injected secrets', () => {
    const g = defaults.gateway;
    const reads = executionRoleStatements(defaults).filter((s) => asArray(s.Action).includes('secretsmanager:GetSecretValue'));
    expect(reads.map((s) => s.Resource)).toEqual([
      { Ref: lid(g.slack.botToken) }, { Ref: lid(g.slack.appToken) }, { Ref: lid(g.apiServerKey) },
    ]);
  });

  test('the API server key is generated, encrypted with the shared key and deleted with the stack', () => {
    defaults.template().hasResource('AWS::SecretsManager::Secret', {
      Properties: Match.objectLike({
        GenerateSecretString: Match.objectLike({ PasswordLength: 48, ExcludePunctuation: true }),
        KmsKeyId: { 'Fn::GetAtt': [SHARED_KEY, 'Arn'] },
      }),
      DeletionPolicy: 'Delete',
    });
  });
});

describe('HermesFargateGateway defaults: service', () => {
  test('exactly one task: desired 1, min healthy 0, max 100, circuit breaker with rollback', () => {
    defaults.template().hasResourceProperties('AWS::ECS::Service', {
      DesiredCount: 1,
      DeploymentConfiguration: Match.objectLike({
        MinimumHealthyPercent: 0,
        MaximumPercent: 100,
        DeploymentCircuitBreaker: { Enable: true, Rollback: true },
      }),
    });
  });

  test('private subnets, no public IP, the task security group, exec disabled, FARGATE capacity', () => {
    const g = defaults.gateway;
    defaults.template().hasResourceProperties('AWS::ECS::Service', {
      Cluster: { Ref: lid(g.cluster as ecs.Cluster) },
      TaskDefinition: { Ref: lid(g.taskDefinition) },
      NetworkConfiguration: {
        AwsvpcConfiguration: {
          AssignPublicIp: 'DISABLED',
          SecurityGroups: [{ 'Fn::GetAtt': [lid(g.securityGroup), 'GroupId'] }],
          Subnets: subnetRefs(g.vpc, { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS }),
        },
      },
      EnableExecuteCommand: false,
      CapacityProviderStrategy: [{ CapacityProvider: 'FARGATE', Weight: 1 }],
      LaunchType: Match.absent(),
    });
  });

  test('outputs the cluster and service names', () => {
    const t = defaults.template();
    t.hasOutput('*', { Value: { Ref: lid(defaults.gateway.cluster as ecs.Cluster) }, Description: 'ECS cluster of the Hermes gateway' });
    t.hasOutput('*', { Value: { 'Fn::GetAtt': [lid(defaults.gateway.service), 'Name'] }, Description: 'ECS service of the Hermes gateway' });
    expect(Object.keys(t.findOutputs('*'))).toHaveLength(2);
  });
});

describe('HermesFargateGateway defaults: operations', () => {
  test('NoTaskRunning alarm: no CPU sample (no running task) for 5 of 5 minutes, missing data breaching, no actions', () => {
    const g = defaults.gateway;
    // AWS/ECS metrics exist with or without Container Insights on the cluster.
    defaults.template().hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/ECS',
      MetricName: 'CPUUtilization',
      Dimensions: Match.arrayWith([
        { Name: 'ClusterName', Value: { Ref: lid(g.cluster as ecs.Cluster) } },
        { Name: 'ServiceName', Value: { 'Fn::GetAtt': [lid(g.service), 'Name'] } },
      ]),
      Statistic: 'SampleCount',
      Period: 60,
      Threshold: 1,
      ComparisonOperator: 'LessThanThreshold',
      EvaluationPeriods: 5,
      DatapointsToAlarm: 5,
      TreatMissingData: 'breaching',
      AlarmActions: Match.absent(),
      OKActions: Match.absent(),
    });
  });

  test('Unhealthy alarm: UnhealthyProbes of this gateway >= 1 in 3 of 5 minutes, no actions', () => {
    defaults.template().hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'HermesAgent/Gateway',
      MetricName: 'UnhealthyProbes',
      Dimensions: [{ Name: 'Gateway', Value: 'Defaults/Gateway' }],
      Statistic: 'Sum',
      Period: 60,
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      EvaluationPeriods: 5,
      DatapointsToAlarm: 3,
      TreatMissingData: 'notBreaching',
      AlarmActions: Match.absent(),
      OKActions: Match.absent(),
    });
    defaults.template().resourceCountIs('AWS::CloudWatch::Alarm', 2);
  });

  test('metric filters count failed probes and syncs per gateway, from the gateway log group', () => {
    const t = defaults.template();
    const filters = resourcesOf(t, 'AWS::Logs::MetricFilter').map((f) => f.props);
    const transformation = (metricName: string) => [{
      MetricNamespace: 'HermesAgent/Gateway',
      MetricName: metricName,
      MetricValue: '1',
      Dimensions: [{ Key: 'Gateway', Value: '$.gateway' }],
    }];
    expect(filters).toEqual([
      {
        LogGroupName: { Ref: lid(defaults.gateway.logGroup) },
        FilterPattern: '{ ($.event = "health") && ($.healthy IS FALSE) }',
        MetricTransformations: transformation('UnhealthyProbes'),
      },
      {
        LogGroupName: { Ref: lid(defaults.gateway.logGroup) },
        FilterPattern: '{ ($.event = "knowledge_sync") && ($.ok IS FALSE) }',
        MetricTransformations: transformation('KnowledgeSyncFailures'),
      },
    ]);
  });

  test('the alarm dimension is the gateway id the runtime is given to log (the filter cannot add a constant)', () => {
    const env = environment(defaults.template());
    const unhealthy = defaults.gateway.metricUnhealthyProbes();
    expect(unhealthy.dimensions).toEqual({ Gateway: env.HERMES_AWS_GATEWAY_ID });
    expect(defaults.gateway.metricKnowledgeSyncFailures().dimensions).toEqual({ Gateway: env.HERMES_AWS_GATEWAY_ID });
    expect(unhealthy.namespace).toBe('HermesAgent/Gateway');
  });

  test('metric helpers', () => {
    const g = defaults.gateway;
    expect(g.metricRunningTaskCount().metricName).toBe('RunningTaskCount');
    expect(g.metricRunningTaskCount({ statistic: 'Maximum' }).statistic).toBe('Maximum');
    expect(g.metricCpuUtilization().metricName).toBe('CPUUtilization');
    expect(g.metricMemoryUtilization().metricName).toBe('MemoryUtilization');
    expect(g.metricKnowledgeSyncFailures().metricName).toBe('KnowledgeSyncFailures');
  });
});

describe('HermesFargateGateway defaults: task role', () => {
  test('Bedrock: the inference profile, and the foundation model only through that profile', () => {
    const statements = taskRoleStatements(defaults);
    const profileArn = {
      'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':bedrock:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' },
        ':inference-profile/us.anthropic.claude-sonnet-4-6']],
    };
    expect(statements).toContainEqual({
      Effect: 'Allow',
      Action: ['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream'],
      Resource: profileArn,
    });
    expect(statements).toContainEqual({
      Effect: 'Allow',
      Action: ['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream'],
      Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':bedrock:*::foundation-model/anthropic.claude-sonnet-4-6']] },
      Condition: { StringEquals: { 'bedrock:InferenceProfileArn': profileArn } },
    });
    expect(actionsOf(statements).filter((a) => a.startsWith('bedrock:'))).toHaveLength(4);
  });

  test('S3: read only, limited to knowledge/* and projects/*', () => {
    const bucket = lid(defaults.gateway.knowledgeBucket.bucket);
    const s3Statements = taskRoleStatements(defaults).filter((s) => asArray(s.Action).some((a: string) => a.startsWith('s3:')));
    expect(s3Statements.flatMap((s) => asArray(s.Action)).every((a: string) => /^s3:(GetObject\*|GetBucket\*|List\*)$/.test(a))).toBe(true);
    const objectResources = s3Statements.flatMap((s) => asArray(s.Resource)).filter((r: any) => r['Fn::Join']);
    expect(objectResources).toEqual([
      { 'Fn::Join': ['', [{ 'Fn::GetAtt': [bucket, 'Arn'] }, '/knowledge/*']] },
      { 'Fn::Join': ['', [{ 'Fn::GetAtt': [bucket, 'Arn'] }, '/projects/*']] },
    ]);
  });

  test('EFS: ClientMount and ClientWrite on the file system, no root access', () => {
    const statements = taskRoleStatements(defaults);
    expect(statements).toContainEqual({
      Effect: 'Allow',
      Action: ['elasticfilesystem:ClientMount', 'elasticfilesystem:ClientWrite'],
      Resource: { 'Fn::GetAtt': [lid(defaults.gateway.fileSystem), 'Arn'] },
    });
    expect(actionsOf(statements)).not.toContain('elasticfilesystem:ClientRootAccess');
  });

  test('no write, delete or exec permissions by default', () => {
    const actions = actionsOf(taskRoleStatements(defaults));
    expect(actions.filter((a) => /^s3:(Put|Delete)|^ssmmessages:|^secretsmanager:/.test(a))).toEqual([]);
  });

  test('grantPrincipal is the task role and connections are the task security group', () => {
    const g = defaults.gateway;
    expect(g.grantPrincipal).toBe(g.taskDefinition.taskRole);
    expect(g.connections.securityGroups).toEqual([g.securityGroup]);
  });
});

// ---------------------------------------------------------------------------
// Props
// ---------------------------------------------------------------------------

describe('HermesFargateGateway access', () => {
  test('allowAll sets SLACK_ALLOW_ALL_USERS and no allow-list', () => {
    const env = environment(allowAll.template());
    expect(env.SLACK_ALLOW_ALL_USERS).toBe('true');
    expect(Object.keys(env).filter((n) => /ALLOWED_USERS|ALLOW_ALL_USERS/.test(n))).toEqual(['SLACK_ALLOW_ALL_USERS']);
    expect(AgentAccess.allowAll().allowsEveryone).toBe(true);
  });

  test('allowAll with Telegram and Discord allows everyone on each platform', () => {
    const env = environment(allowAllPlatforms.template());
    expect(Object.keys(env).filter((n) => /ALLOWED_USERS|ALLOW_ALL_USERS/.test(n)).sort())
      .toEqual(['DISCORD_ALLOW_ALL_USERS', 'SLACK_ALLOW_ALL_USERS', 'TELEGRAM_ALLOW_ALL_USERS']);
    expect(env.TELEGRAM_ALLOW_ALL_USERS).toBe('true');
    expect(env.DISCORD_ALLOW_ALL_USERS).toBe('true');
  });

  test('allowUsers joins ids with commas; platform variables only for platforms with a token', () => {
    const env = environment(slackUsersOnly.template());
    expect(env.SLACK_ALLOWED_USERS).toBe(`${SLACK_USER},W0ABCDE12`);
    expect(Object.keys(env).filter((n) => /^(TELEGRAM|DISCORD)_/.test(n))).toEqual([]);
    expect(env.HERMES_AWS_PLATFORMS).toBe('slack');
    expect(AgentAccess.allowUsers({ slack: [SLACK_USER] }).allowsEveryone).toBe(false);
  });

  test.each([
    ['telegram', { telegram: [TELEGRAM_USER] }],
    ['discord', { discord: [DISCORD_USER] }],
  ])('allowUsers with %s ids but no %s bot token fails synth instead of silently ignoring them', (platform, users) => {
    const stack = new Stack(new App(), 'NoToken', { env: { account: '111111111111', region: 'us-east-1' } });
    expect(() => new HermesFargateGateway(stack, 'Gateway', { access: AgentAccess.allowUsers({ slack: [SLACK_USER], ...users }) }))
      .toThrow(`HermesFargateGatewayProps.access allows ${platform} users, but the gateway has no ${platform} bot token (set HermesFargateGatewayProps.${platform}BotToken)`);
  });

  test('allowUsers with Telegram and Discord tokens sets each allow-list', () => {
    const env = environment(platforms.template());
    expect(env.SLACK_ALLOWED_USERS).toBe(SLACK_USER);
    expect(env.TELEGRAM_ALLOWED_USERS).toBe(`${TELEGRAM_USER},42`);
    expect(env.DISCORD_ALLOWED_USERS).toBe(DISCORD_USER);
    expect(Object.keys(env).filter((n) => n.endsWith('ALLOW_ALL_USERS'))).toEqual([]);
  });

  test('a platform with a token but no ids gets an empty allow-list (denies everyone there)', () => {
    const env = environment(allowAllPlatforms.template());
    expect(env.SLACK_ALLOWED_USERS).toBeUndefined();
    // allowUsers with only Slack ids and a Telegram token: TELEGRAM_ALLOWED_USERS is empty
    expect(AgentAccess.allowUsers({ slack: [SLACK_USER] })._environment(['slack', 'telegram']))
      .toEqual({ SLACK_ALLOWED_USERS: SLACK_USER, TELEGRAM_ALLOWED_USERS: '' });
  });
});

describe('HermesFargateGateway secrets and platforms', () => {
  test('slack passed in: its secrets are injected and no Slack secret is created', () => {
    const t = slackPassed.template();
    const created = resourcesOf(t, 'AWS::SecretsManager::Secret');
    expect(created.map((s) => s.id)).toEqual([lid(slackPassed.gateway.apiServerKey)]);
    const s = secrets(t);
    expect(JSON.stringify(s.SLACK_BOT_TOKEN)).toContain(':secret:team/slack-bot');
    expect(JSON.stringify(s.SLACK_APP_TOKEN)).toContain(':secret:team/slack-app');
    expect(Object.keys(s).sort()).toEqual(['API_SERVER_KEY', 'SLACK_APP_TOKEN', 'SLACK_BOT_TOKEN']);
  });

  test('telegramBotToken and discordBotToken are injected as secrets and enable the platforms', () => {
    const t = platforms.template();
    const s = secrets(t);
    expect(Object.keys(s).sort()).toEqual(['API_SERVER_KEY', 'DISCORD_BOT_TOKEN', 'SLACK_APP_TOKEN', 'SLACK_BOT_TOKEN', 'TELEGRAM_BOT_TOKEN']);
    expect(JSON.stringify(s.TELEGRAM_BOT_TOKEN)).toContain(':secret:team/telegram-bot');
    expect(JSON.stringify(s.DISCORD_BOT_TOKEN)).toContain(':secret:team/discord-bot');
    expect(environment(t).HERMES_AWS_PLATFORMS).toBe('slack,telegram,discord');
    const reads = executionRoleStatements(platforms).filter((st) => asArray(st.Action).includes('secretsmanager:GetSecretValue'));
    expect(JSON.stringify(reads)).toContain(':secret:team/telegram-bot');
    expect(JSON.stringify(reads)).toContain(':secret:team/discord-bot');
    expect(JSON.stringify(container(t).Environment)).not.toContain(':secret:');
  });

  test('openAiCompatible with apiKey: HERMES_MODEL_API_KEY secret, custom provider, no Bedrock permissions', () => {
    const t = openAi.template();
    const s = secrets(t);
    expect(JSON.stringify(s.HERMES_MODEL_API_KEY)).toContain(':secret:team/deepseek');
    const doc = settings(t);
    expect(doc.config.model).toEqual({
      provider: 'custom', default: 'deepseek-chat', base_url: 'https://api.deepseek.com/v1', api_key: '${HERMES_MODEL_API_KEY}',
    });
    expect(doc.config.bedrock).toBeUndefined();
    expect(doc.secretEnv).toEqual(['HERMES_MODEL_API_KEY']);
    const allActions = resourcesOf(t, 'AWS::IAM::Policy').flatMap((p) => actionsOf(p.props.PolicyDocument.Statement));
    expect(allActions.filter((a) => a.startsWith('bedrock:'))).toEqual([]);
    expect(JSON.stringify(container(t).Environment)).not.toContain('deepseek:');
  });

  test('settings: SOUL, project context and MCP secretEnvironment reach the task, secrets as secrets', () => {
    const t = configured.template();
    const doc = settings(t);
    expect(doc.soul).toBe(SOUL);
    expect(doc.projectContext).toBe('Runbooks live in knowledge/runbooks.');
    expect(doc.config.agent).toEqual({ max_turns: 40, restart_drain_timeout: 90 });
    expect(doc.config.mcp_servers.github).toEqual({
      command: 'npx', args: ['-y', '@modelcontextprotocol/server-github'], env: { GITHUB_TOKEN: '${HERMES_MCP_GITHUB_GITHUB_TOKEN}' },
    });
    expect(doc.secretEnv).toEqual(['HERMES_MCP_GITHUB_GITHUB_TOKEN']);
    const s = secrets(t);
    expect(JSON.stringify(s.HERMES_MCP_GITHUB_GITHUB_TOKEN)).toContain(':secret:team/github');
    expect(environment(t).HERMES_MCP_GITHUB_GITHUB_TOKEN).toBeUndefined();
    const reads = executionRoleStatements(configured).filter((st) => asArray(st.Action).includes('secretsmanager:GetSecretValue'));
    expect(JSON.stringify(reads)).toContain(':secret:team/github');
  });
});

describe('HermesFargateGateway knowledge', () => {
  test('knowledgeBucket passed in: used and no new bucket', () => {
    const t = knowledgePassed.template();
    t.resourceCountIs('AWS::S3::Bucket', 1);
    expect(knowledgePassed.gateway.knowledgeBucket).toBe(teamKnowledge);
    expect(knowledgePassed.gateway.node.tryFindChild('Knowledge')).toBeUndefined();
    expect(environment(t).HERMES_AWS_KNOWLEDGE_BUCKET).toEqual({ Ref: lid(teamKnowledge.bucket) });
    expect(JSON.stringify(taskRoleStatements(knowledgePassed))).toContain(`"${lid(teamKnowledge.bucket)}","Arn"]},"/knowledge/*"`);
  });

  test('knowledgeSyncInterval sets the sync period in seconds', () => {
    expect(environment(knowledgePassed.template()).HERMES_AWS_KNOWLEDGE_SYNC_SECONDS).toBe('3600');
  });
});

describe('HermesFargateGateway network props', () => {
  test('vpc and cluster passed in: no VPC, flow log or cluster is created', () => {
    const t = vpcAndCluster.template();
    t.resourceCountIs('AWS::EC2::VPC', 1);
    t.resourceCountIs('AWS::ECS::Cluster', 1);
    t.resourceCountIs('AWS::EC2::FlowLog', 0);
    expect(vpcAndCluster.gateway.vpc).toBe(teamVpc);
    expect(vpcAndCluster.gateway.cluster).toBe(teamCluster);
    expect(vpcAndCluster.gateway.node.tryFindChild('Vpc')).toBeUndefined();
    expect(vpcAndCluster.gateway.node.tryFindChild('Cluster')).toBeUndefined();
    t.hasResourceProperties('AWS::ECS::Service', { Cluster: { Ref: lid(teamCluster) } });
    t.hasResourceProperties('AWS::EC2::SecurityGroup', {
      GroupDescription: Match.stringLikeRegexp('^Hermes gateway task'),
      VpcId: { Ref: lid(teamVpc) },
    });
  });

  test('the task uses every private subnet; the file system has one mount target per AZ', () => {
    const t = vpcAndCluster.template();
    const privateSubnets = subnetRefs(teamVpc, { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS });
    expect(privateSubnets).toHaveLength(4);
    t.hasResourceProperties('AWS::ECS::Service', {
      NetworkConfiguration: { AwsvpcConfiguration: Match.objectLike({ Subnets: privateSubnets }) },
    });
    // EFS refuses two mount targets in one AZ.
    const mountTargets = resourcesOf(t, 'AWS::EFS::MountTarget');
    expect(mountTargets).toHaveLength(2);
  });

  test('vpcSubnets places the task and the mount targets in those subnets', () => {
    const t = subnets.template();
    const appSubnets = subnetRefs(subnetVpc, { subnetGroupName: 'app' });
    expect(appSubnets).toHaveLength(2);
    t.hasResourceProperties('AWS::ECS::Service', {
      NetworkConfiguration: { AwsvpcConfiguration: Match.objectLike({ Subnets: appSubnets }) },
    });
    expect(resourcesOf(t, 'AWS::EFS::MountTarget').map((m) => m.props.SubnetId)).toEqual(appSubnets);
  });

  test('egress natInstance: a hardened NAT instance with a public IP and no NAT gateway', () => {
    const t = natInstance.template();
    t.resourceCountIs('AWS::EC2::NatGateway', 0);
    t.resourceCountIs('AWS::EC2::Instance', 1);
    t.hasResourceProperties('AWS::EC2::Instance', {
      InstanceType: 't4g.nano',
      Monitoring: true,
      DisableApiTermination: true,
      SourceDestCheck: false,
      BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: Match.objectLike({ Encrypted: true, VolumeType: 'gp3' }) }],
      MetadataOptions: Match.objectLike({ HttpTokens: 'required' }),
      NetworkInterfaces: [Match.objectLike({ AssociatePublicIpAddress: true, DeviceIndex: '0' })],
    });
    const instance = resourcesOf(t, 'AWS::EC2::Instance')[0];
    const routes = resourcesOf(t, 'AWS::EC2::Route').filter((r) => r.props.InstanceId);
    expect(routes).toHaveLength(2);
    for (const r of routes) expect(r.props).toMatchObject({ DestinationCidrBlock: '0.0.0.0/0', InstanceId: { Ref: instance.id } });
  });

  test('egress natInstance: the NAT security group forwards HTTPS from the private subnets only', () => {
    const t = natInstance.template();
    const instance = resourcesOf(t, 'AWS::EC2::Instance')[0];
    const natSg = instance.props.NetworkInterfaces[0].GroupSet[0]['Fn::GetAtt'][0];
    const sg = t.toJSON().Resources[natSg];
    const privateCidrs = natInstance.gateway.vpc.privateSubnets.map((s) => s.ipv4CidrBlock);
    expect(privateCidrs).toEqual(['10.0.4.0/22', '10.0.8.0/22']);
    expect(sg.Properties.SecurityGroupIngress).toEqual(privateCidrs.map((cidr) => expect.objectContaining({
      CidrIp: cidr, IpProtocol: 'tcp', FromPort: 443, ToPort: 443,
    })));
    expect(resourcesOf(t, 'AWS::EC2::SecurityGroupIngress').filter((r) => JSON.stringify(r.props.GroupId).includes(natSg))).toEqual([]);
  });

  test('egress natInstance with an instance type', () => {
    natInstanceX86.template().hasResourceProperties('AWS::EC2::Instance', { InstanceType: 't3a.micro' });
    natInstanceX86.template().resourceCountIs('AWS::EC2::VPCEndpoint', 1);
  });

  test('interfaceEndpoints: 5 endpoints sharing one security group that admits HTTPS from the task only', () => {
    const t = natInstance.template();
    const endpoints = resourcesOf(t, 'AWS::EC2::VPCEndpoint').filter((e) => e.props.VpcEndpointType === 'Interface');
    expect(endpoints.map((e) => e.props.ServiceName).sort()).toEqual([
      'com.amazonaws.us-east-1.bedrock-runtime',
      'com.amazonaws.us-east-1.ecr.api',
      'com.amazonaws.us-east-1.ecr.dkr',
      'com.amazonaws.us-east-1.logs',
      'com.amazonaws.us-east-1.secretsmanager',
    ]);
    const groups = new Set(endpoints.map((e) => JSON.stringify(e.props.SecurityGroupIds)));
    expect(groups.size).toBe(1);
    for (const e of endpoints) {
      expect(e.props.PrivateDnsEnabled).toBe(true);
      expect(e.props.SubnetIds).toEqual(subnetRefs(natInstance.gateway.vpc, { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS }));
    }
    const [endpointSg] = JSON.parse([...groups][0]);
    const sgId = endpointSg['Fn::GetAtt'][0];
    expect(t.toJSON().Resources[sgId].Properties.SecurityGroupIngress).toBeUndefined();
    const ingress = resourcesOf(t, 'AWS::EC2::SecurityGroupIngress').filter((r) => JSON.stringify(r.props.GroupId).includes(sgId));
    expect(ingress.map((r) => r.props)).toEqual([expect.objectContaining({
      IpProtocol: 'tcp',
      FromPort: 443,
      ToPort: 443,
      SourceSecurityGroupId: { 'Fn::GetAtt': [lid(natInstance.gateway.securityGroup), 'GroupId'] },
    })]);
  });
});

describe('HermesFargateGateway task props', () => {
  test('cpuArchitecture X86_64: task platform and an amd64 image', () => {
    const t = x86.template();
    t.hasResourceProperties('AWS::ECS::TaskDefinition', { RuntimePlatform: { CpuArchitecture: 'X86_64', OperatingSystemFamily: 'LINUX' } });
    expect(container(t).Image).not.toEqual(container(defaults.template()).Image);
    const platformOf = (built: Built) => {
      const manifestFile = path.join(app.outdir, `${built.stack.artifactId}.assets.json`);
      const images = Object.values<any>(JSON.parse(fs.readFileSync(manifestFile, 'utf-8')).dockerImages);
      expect(images).toHaveLength(1);
      return images[0].source;
    };
    expect(platformOf(x86)).toMatchObject({ platform: 'linux/amd64', dockerBuildTarget: 'gateway' });
    expect(platformOf(defaults)).toMatchObject({ platform: 'linux/arm64', dockerBuildTarget: 'gateway' });
  });

  test('cpu and memoryLimitMiB size the task', () => {
    operations.template().hasResourceProperties('AWS::ECS::TaskDefinition', { Cpu: '1024', Memory: '4096' });
  });

  test('spot runs on FARGATE_SPOT only', () => {
    operations.template().hasResourceProperties('AWS::ECS::Service', {
      CapacityProviderStrategy: [{ CapacityProvider: 'FARGATE_SPOT', Weight: 1 }],
    });
  });

  test('enableExecuteCommand turns on ECS Exec and grants the SSM channel', () => {
    operations.template().hasResourceProperties('AWS::ECS::Service', { EnableExecuteCommand: true });
    expect(actionsOf(taskRoleStatements(operations))).toEqual(expect.arrayContaining([
      'ssmmessages:CreateControlChannel', 'ssmmessages:OpenDataChannel',
    ]));
  });

  test('logRetention sets the gateway log retention', () => {
    expect(operations.template().toJSON().Resources[lid(operations.gateway.logGroup)].Properties.RetentionInDays).toBe(7);
  });

  test('platformDownGracePeriod reaches the runtime in seconds', () => {
    expect(environment(operations.template()).HERMES_AWS_PLATFORM_GRACE_SECONDS).toBe('600');
  });

  test('alarmTopic gets alarm and OK notifications of both alarms', () => {
    const alarms = resourcesOf(operations.template(), 'AWS::CloudWatch::Alarm');
    expect(alarms).toHaveLength(2);
    for (const a of alarms) {
      expect(a.props.AlarmActions).toEqual([{ Ref: lid(alarmTopic) }]);
      expect(a.props.OKActions).toEqual([{ Ref: lid(alarmTopic) }]);
    }
  });

  test('removalPolicy DESTROY deletes the file system', () => {
    operations.template().hasResource('AWS::EFS::FileSystem', { DeletionPolicy: 'Delete', UpdateReplacePolicy: 'Delete' });
  });

  test('encryptionKey: used for the file system, logs and secrets, no shared key; CloudWatch Logs may use it', () => {
    const t = ownKeyNoBackup.template();
    const key = { 'Fn::GetAtt': [lid(ownKey), 'Arn'] };
    t.resourceCountIs('AWS::KMS::Key', 1);
    expect(ownKeyNoBackup.stack.node.tryFindChild(AgentEncryptionKey.ID)).toBeUndefined();
    t.hasResourceProperties('AWS::EFS::FileSystem', { KmsKeyId: key });
    for (const g of resourcesOf(t, 'AWS::Logs::LogGroup')) expect(g.props.KmsKeyId).toEqual(key);
    expect(resourcesOf(t, 'AWS::Logs::LogGroup')).toHaveLength(2);
    for (const s of resourcesOf(t, 'AWS::SecretsManager::Secret')) expect(s.props.KmsKeyId).toEqual(key);
    t.hasResourceProperties('AWS::KMS::Key', {
      KeyPolicy: { Statement: Match.arrayWith([Match.objectLike({ Sid: 'AllowCloudWatchLogsOfThisAccount' })]) },
    });
  });

  test('backup false: no backup selection, plan or vault', () => {
    const t = ownKeyNoBackup.template();
    t.resourceCountIs('AWS::Backup::BackupSelection', 0);
    t.resourceCountIs('AWS::Backup::BackupPlan', 0);
    t.resourceCountIs('AWS::Backup::BackupVault', 0);
  });
});

// ---------------------------------------------------------------------------
// Rollout and multi-agent
// ---------------------------------------------------------------------------

describe('HermesFargateGateway settings rollout', () => {
  /** Same stack and construct path in separate apps, so only the settings can differ. */
  function containerDefinitions(soul: string): any {
    const stack = new Stack(new App(), 'Agent', { env: ENV });
    new HermesFargateGateway(stack, 'Gateway', { access: AgentAccess.allowAll(), settings: { soul } });
    return resourcesOf(Template.fromStack(stack), 'AWS::ECS::TaskDefinition')[0].props.ContainerDefinitions;
  }

  test('a settings change changes the task definition (a new revision rolls out)', () => {
    const before = containerDefinitions('You are Ada.');
    const same = containerDefinitions('You are Ada.');
    const after = containerDefinitions('You are Ada, and you answer in French.');
    expect(same).toEqual(before);
    expect(after).not.toEqual(before);
    expect(JSON.parse(environmentOf(after[0]).HERMES_AWS_SETTINGS).soul).toBe('You are Ada, and you answer in French.');
    // only the settings document differs
    const withoutSettings = (defs: any) => defs[0].Environment.filter((e: any) => e.Name !== 'HERMES_AWS_SETTINGS');
    expect(withoutSettings(after)).toEqual(withoutSettings(before));
  });
});

describe('HermesFargateGateway multi-agent', () => {
  test('two services and two file systems in the shared VPC and cluster', () => {
    const t = multiTemplate();
    t.resourceCountIs('AWS::ECS::Service', 2);
    t.resourceCountIs('AWS::EFS::FileSystem', 2);
    t.resourceCountIs('AWS::EFS::AccessPoint', 2);
    t.resourceCountIs('AWS::ECS::TaskDefinition', 2);
    t.resourceCountIs('AWS::EC2::VPC', 1);
    t.resourceCountIs('AWS::ECS::Cluster', 1);
    for (const s of resourcesOf(t, 'AWS::ECS::Service')) expect(s.props.Cluster).toEqual({ Ref: lid(multiCluster) });
  });

  test('a passed Cluster gets the Fargate capacity providers the services\' strategy needs', () => {
    multiTemplate().hasResourceProperties('AWS::ECS::ClusterCapacityProviderAssociations', {
      Cluster: { Ref: lid(multiCluster) },
      CapacityProviders: Match.arrayWith(['FARGATE', 'FARGATE_SPOT']),
    });
    multiTemplate().resourceCountIs('AWS::ECS::ClusterCapacityProviderAssociations', 1);
  });

  test('one shared KMS key and one backup plan selecting both file systems', () => {
    const t = multiTemplate();
    t.resourceCountIs('AWS::KMS::Key', 1);
    expect(Object.keys(t.findResources('AWS::KMS::Key'))).toEqual([SHARED_KEY]);
    t.resourceCountIs('AWS::Backup::BackupPlan', 1);
    const selected = JSON.stringify(resourcesOf(t, 'AWS::Backup::BackupSelection').map((s) => s.props.BackupSelection.Resources));
    expect(resourcesOf(t, 'AWS::Backup::BackupSelection')).toHaveLength(2);
    expect(selected).toContain(`"${lid(ada.fileSystem)}"`);
    expect(selected).toContain(`"${lid(grace.fileSystem)}"`);
  });

  test('distinct settings, allow-lists and alarm dimensions per agent', () => {
    const t = multiTemplate();
    const byId = (g: HermesFargateGateway) => t.toJSON().Resources[lid(g.taskDefinition)].Properties.ContainerDefinitions[0];
    const adaEnv = environmentOf(byId(ada));
    const graceEnv = environmentOf(byId(grace));
    expect(JSON.parse(adaEnv.HERMES_AWS_SETTINGS).soul).toBe('You are Ada, the on-call helper.');
    expect(JSON.parse(graceEnv.HERMES_AWS_SETTINGS).soul).toBe('You are Grace, the release manager.');
    expect(adaEnv.SLACK_ALLOWED_USERS).toBe(SLACK_USER);
    expect(graceEnv.SLACK_ALLOW_ALL_USERS).toBe('true');
    expect(adaEnv.HERMES_AWS_GATEWAY_ID).toBe('MultiAgent/Ada');
    expect(graceEnv.HERMES_AWS_GATEWAY_ID).toBe('MultiAgent/Grace');
    const gatewayDimensions = resourcesOf(t, 'AWS::CloudWatch::Alarm')
      .filter((a) => a.props.Namespace === 'HermesAgent/Gateway').map((a) => a.props.Dimensions[0].Value).sort();
    expect(gatewayDimensions).toEqual(['MultiAgent/Ada', 'MultiAgent/Grace']);
    expect(adaEnv.HERMES_AWS_KNOWLEDGE_BUCKET).not.toEqual(graceEnv.HERMES_AWS_KNOWLEDGE_BUCKET);
  });
});

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

describe('HermesFargateGateway validation', () => {
  const access = AgentAccess.allowAll();
  /** A fresh, never-synthesized stack (a failed constructor leaves a partial construct behind). */
  const newStack = () => new Stack(new App(), 'Invalid', { env: ENV });

  test('access is required', () => {
    const message = 'HermesFargateGatewayProps.access is required: choose AgentAccess.allowUsers({...}) or AgentAccess.allowAll()';
    expectPropError(() => new HermesFargateGateway(newStack(), 'G', {} as any), message);
    expectPropError(() => new HermesFargateGateway(newStack(), 'G', undefined as any), message);
  });

  test('allowUsers needs at least one id', () => {
    const message = 'AgentAccess.allowUsers needs at least one user id (use AgentAccess.allowAll() to let everyone in)';
    expectPropError(() => AgentAccess.allowUsers({}), message);
    expectPropError(() => AgentAccess.allowUsers({ slack: [], telegram: [], discord: [] }), message);
  });

  test.each([
    [{ slack: ['u012abcdef'] }, 'AllowedUsers.slack must be Slack member ids such as "U012ABCDEF" (got "u012abcdef")'],
    [{ slack: ['@alice'] }, 'AllowedUsers.slack must be Slack member ids such as "U012ABCDEF" (got "@alice")'],
    [{ telegram: ['@bob'] }, 'AllowedUsers.telegram must be numeric Telegram user ids (got "@bob")'],
    [{ discord: ['12345'] }, 'AllowedUsers.discord must be Discord user ids (15-21 digits) (got "12345")'],
    [{ slack: [SLACK_USER], discord: ['alice#1234'] }, 'AllowedUsers.discord must be Discord user ids (15-21 digits) (got "alice#1234")'],
  ])('allowUsers rejects %j', (users, message) => {
    expectPropError(() => AgentAccess.allowUsers(users), message);
  });

  test('cpu must be a Fargate size', () => {
    expectPropError(() => new HermesFargateGateway(newStack(), 'G', { access, cpu: 300 }),
      'HermesFargateGatewayProps.cpu must be one of 256, 512, 1024, 2048, 4096, 8192, 16384 (got 300)');
  });

  test.each([
    [512, 999, 'must be a size Fargate allows with 512 CPU units: 1024-4096 in steps of 1024 (got 999)'],
    [512, 8192, 'must be a size Fargate allows with 512 CPU units: 1024-4096 in steps of 1024 (got 8192)'],
    [8192, 18432, 'must be a size Fargate allows with 8192 CPU units: 16384-61440 in steps of 4096 (got 18432)'],
    [256, 1536, 'must be a size Fargate allows with 256 CPU units: 512, 1024, 2048 (got 1536)'],
    [undefined, 512, 'must be a size Fargate allows with 512 CPU units: 1024-4096 in steps of 1024 (got 512)'],
  ])('cpu %s with memoryLimitMiB %d is refused with the allowed sizes', (cpu, memoryLimitMiB, problem) => {
    expectPropError(() => new HermesFargateGateway(newStack(), 'G', { access, cpu, memoryLimitMiB }),
      `HermesFargateGatewayProps.memoryLimitMiB ${problem}`);
  });

  test('egress and interfaceEndpoints only apply to a created VPC; a cluster needs its vpc', () => {
    const stack = newStack();
    const vpc = new ec2.Vpc(stack, 'Vpc');
    const cluster = new ecs.Cluster(stack, 'Cluster', { vpc });
    expectPropError(() => new HermesFargateGateway(stack, 'A', { access, vpc, egress: GatewayEgress.natGateway() }),
      'HermesFargateGatewayProps.egress only applies to a VPC the construct creates; remove it or remove `vpc`');
    expectPropError(() => new HermesFargateGateway(stack, 'B', { access, vpc, interfaceEndpoints: true }),
      'HermesFargateGatewayProps.interfaceEndpoints only applies to a VPC the construct creates; add endpoints to your own VPC yourself');
    expectPropError(() => new HermesFargateGateway(stack, 'C', { access, cluster }),
      'HermesFargateGatewayProps.cluster requires `vpc` too (the cluster\'s VPC), so the task and its file system share one network');
  });

  test.each([
    ['knowledgeSyncInterval', Duration.seconds(30), 'must be an integer between 60 and 86400 (got 30)'],
    ['knowledgeSyncInterval', Duration.days(2), 'must be an integer between 60 and 86400 (got 172800)'],
    ['platformDownGracePeriod', Duration.seconds(30), 'must be an integer between 60 and 3600 (got 30)'],
    ['platformDownGracePeriod', Duration.hours(2), 'must be an integer between 60 and 3600 (got 7200)'],
  ])('%s %s is out of range', (prop, value, problem) => {
    expectPropError(() => new HermesFargateGateway(newStack(), 'G', { access, [prop]: value }),
      `HermesFargateGatewayProps.${prop} (in seconds) ${problem}`);
  });

  test('the bounds themselves are accepted', () => {
    expect(() => new HermesFargateGateway(newStack(), 'G', {
      access,
      knowledgeSyncInterval: Duration.minutes(1),
      platformDownGracePeriod: Duration.hours(1),
      cpu: 16384,
      memoryLimitMiB: 122880,
    })).not.toThrow();
    expect(() => new HermesFargateGateway(newStack(), 'G', {
      access,
      knowledgeSyncInterval: Duration.hours(24),
      platformDownGracePeriod: Duration.minutes(1),
      cpu: 256,
      memoryLimitMiB: 512,
    })).not.toThrow();
    const stack = newStack();
    const vpc = new ec2.Vpc(stack, 'Vpc');
    expect(() => new HermesFargateGateway(stack, 'G', { access, vpc, interfaceEndpoints: false })).not.toThrow();
  });
});

describe('HermesFargateGateway caCertificatePem', () => {
  const PEM = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ==\n-----END CERTIFICATE-----\n';

  test('is passed to the image build as EXTRA_CA_CERT_PEM and changes the image', () => {
    const imageOf = (pem?: string) => {
      const stack = new Stack(new App(), 'Ca', { env: { account: '111111111111', region: 'us-east-1' } });
      const g = new HermesFargateGateway(stack, 'Gateway', { access: AgentAccess.allowAll(), caCertificatePem: pem });
      return (g.taskDefinition.defaultContainer!.imageName as string);
    };
    const withCa = imageOf(PEM);
    const without = imageOf();
    expect(withCa).not.toEqual(without);
    const assembly = new App();
    const stack = new Stack(assembly, 'CaArgs', { env: { account: '111111111111', region: 'us-east-1' } });
    new HermesFargateGateway(stack, 'Gateway', { access: AgentAccess.allowAll(), caCertificatePem: PEM });
    const manifest = assembly.synth().artifacts.find((a) => a instanceof cxapi.AssetManifestArtifact) as cxapi.AssetManifestArtifact;
    const images = Object.values(manifest.contents.dockerImages ?? {});
    expect(images).toHaveLength(1);
    expect(images[0].source.dockerBuildArgs).toEqual({ EXTRA_CA_CERT_PEM: PEM.trim() });
    expect(images[0].source.dockerBuildTarget).toBe('gateway');
    expect(images[0].source.platform).toBe('linux/arm64');
  });

  test('must look like PEM certificates', () => {
    const stack = new Stack(new App(), 'BadCa', { env: { account: '111111111111', region: 'us-east-1' } });
    expect(() => new HermesFargateGateway(stack, 'Gateway', { access: AgentAccess.allowAll(), caCertificatePem: 'not a cert' }))
      .toThrow('HermesFargateGatewayProps.caCertificatePem must be one or more PEM certificates (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)');
  });
});
