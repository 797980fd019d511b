import { App, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import { expectNagClean } from './nag';
import { AgentEncryptionKey, AgentModel, AgentAccess, GatewayEgress, HermesFargateGateway, McpServer } from '../src';

const ENV = { account: '111111111111', region: 'us-east-1' };

// One App per stack: nagFindings() re-synthesizes the whole app each time.
function newStack(id: string): Stack {
  return new Stack(new App(), id, { env: ENV });
}

test('a default gateway passes all four packs', () => {
  const stack = newStack('Default');
  new HermesFargateGateway(stack, 'Gateway', { access: AgentAccess.allowUsers({ slack: ['U012ABCDEF'] }) });

  // the stack really holds what the packs are meant to check
  const template = Template.fromStack(stack);
  template.resourceCountIs('AWS::ECS::Service', 1);
  template.resourceCountIs('AWS::EFS::FileSystem', 1);
  template.resourceCountIs('AWS::EC2::NatGateway', 1);
  template.resourceCountIs('AWS::Backup::BackupSelection', 1);

  expectNagClean(stack);
});

test('a fully-featured gateway passes all four packs', () => {
  const stack = newStack('Full');

  // The alarm topic is this test's own resource, configured as the packs
  // require: KMS-encrypted (with a key CloudWatch may use to publish) and TLS only.
  const topicKey = new kms.Key(stack, 'AlarmTopicKey', { enableKeyRotation: true });
  topicKey.grant(new iam.ServicePrincipal('cloudwatch.amazonaws.com'), 'kms:Decrypt', 'kms:GenerateDataKey*');
  const alarmTopic = new sns.Topic(stack, 'Alarms', { masterKey: topicKey, enforceSSL: true });

  new HermesFargateGateway(stack, 'Gateway', {
    access: AgentAccess.allowUsers({ slack: ['U012ABCDEF'], telegram: ['123456789'], discord: ['123456789012345678'] }),
    egress: GatewayEgress.natInstance(),
    interfaceEndpoints: true,
    enableExecuteCommand: true,
    spot: true,
    telegramBotToken: secretsmanager.Secret.fromSecretNameV2(stack, 'TelegramBot', 'team/telegram-bot'),
    discordBotToken: secretsmanager.Secret.fromSecretNameV2(stack, 'DiscordBot', 'team/discord-bot'),
    model: AgentModel.bedrock('us.amazon.nova-pro-v1:0', { guardrail: { identifier: 'abc123def456', version: '2' } }),
    settings: {
      soul: 'You are the engineering team\'s helper.',
      mcpServers: [McpServer.stdio('github', {
        command: 'npx',
        args: ['-y', '@modelcontextprotocol/server-github'],
        secretEnvironment: { GITHUB_TOKEN: secretsmanager.Secret.fromSecretNameV2(stack, 'GitHubToken', 'team/github') },
      })],
    },
    cpu: 1024,
    memoryLimitMiB: 2048,
    logRetention: logs.RetentionDays.THREE_MONTHS,
    knowledgeSyncInterval: Duration.minutes(5),
    platformDownGracePeriod: Duration.minutes(10),
    alarmTopic,
  });

  const template = Template.fromStack(stack);
  template.resourceCountIs('AWS::EC2::Instance', 1);
  template.resourceCountIs('AWS::EC2::NatGateway', 0);
  template.resourceCountIs('AWS::EC2::VPCEndpoint', 6);
  template.hasResourceProperties('AWS::ECS::Service', { EnableExecuteCommand: true });
  template.hasResourceProperties('AWS::CloudWatch::Alarm', { AlarmActions: [{ Ref: stack.getLogicalId(alarmTopic.node.defaultChild as sns.CfnTopic) }] });

  expectNagClean(stack);
});

test('a gateway in a passed-in VPC and cluster passes all four packs', () => {
  const stack = newStack('Shared');

  // The VPC and cluster are this test's own resources, standing in for a
  // team's network, built the way the packs require: rejected flows logged to
  // an encrypted log group by a role with a managed (not inline) policy, and
  // Container Insights on the cluster.
  const key = new kms.Key(stack, 'NetworkKey', { enableKeyRotation: true });
  AgentEncryptionKey.allowLogGroups(key);
  const flowLogGroup = new logs.LogGroup(stack, 'FlowLogs', {
    encryptionKey: key,
    retention: logs.RetentionDays.ONE_YEAR,
    removalPolicy: RemovalPolicy.RETAIN,
  });
  const flowLogRole = new iam.Role(stack, 'FlowLogRole', { assumedBy: new iam.ServicePrincipal('vpc-flow-logs.amazonaws.com') });
  new iam.ManagedPolicy(stack, 'FlowLogPolicy', {
    roles: [flowLogRole],
    statements: [new iam.PolicyStatement({
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'],
      resources: [flowLogGroup.logGroupArn],
    })],
  });
  const vpc = new ec2.Vpc(stack, 'Vpc', {
    maxAzs: 2,
    natGateways: 1,
    subnetConfiguration: [
      { name: 'public', subnetType: ec2.SubnetType.PUBLIC, mapPublicIpOnLaunch: false },
      { name: 'app', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
    ],
    restrictDefaultSecurityGroup: false,
    flowLogs: {
      rejected: {
        trafficType: ec2.FlowLogTrafficType.REJECT,
        destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogGroup, flowLogRole.withoutPolicyUpdates()),
      },
    },
  });
  // What no configuration avoids in a VPC with internet egress: public subnets
  // routing to the internet gateway (they hold the NAT gateway), and an open
  // default security group (closing it takes a custom-resource Lambda).
  const vpcReason = 'Test-owned stand-in for a team VPC: public subnets hold only the NAT gateway, and nothing uses the default security group.';
  Validations.of(vpc).acknowledge(...[
    'NIST.800.53.R5-VPCNoUnrestrictedRouteToIGW', 'HIPAA.Security-VPCNoUnrestrictedRouteToIGW',
    'NIST.800.53.R5-VPCDefaultSecurityGroupClosed', 'HIPAA.Security-VPCDefaultSecurityGroupClosed',
  ].map((id) => ({ id, reason: vpcReason })));
  const cluster = new ecs.Cluster(stack, 'Cluster', {
    vpc,
    containerInsightsV2: ecs.ContainerInsights.ENABLED,
    enableFargateCapacityProviders: true,
  });

  const gateway = new HermesFargateGateway(stack, 'Gateway', {
    access: AgentAccess.allowAll(),
    vpc,
    cluster,
  });

  const template = Template.fromStack(stack);
  template.resourceCountIs('AWS::EC2::VPC', 1);
  template.resourceCountIs('AWS::ECS::Cluster', 1);
  template.resourceCountIs('AWS::EC2::FlowLog', 1);
  expect(gateway.vpc).toBe(vpc);
  expect(gateway.cluster).toBe(cluster);

  expectNagClean(stack);
});
