/**
 * The baseline for the synth benchmark: the same resources as a default
 * HermesFargateGateway, written by hand with plain aws-cdk-lib L2s (no
 * validation, no settings rendering, no acknowledgements).
 */
import * as path from 'path';
import { Duration, RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as backup from 'aws-cdk-lib/aws-backup';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as efs from 'aws-cdk-lib/aws-efs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';

export class HandWrittenGatewayStack extends Stack {
  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);
    const key = new kms.Key(this, 'Key', { enableKeyRotation: true });
    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: 1,
      gatewayEndpoints: { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
      restrictDefaultSecurityGroup: false,
    });
    vpc.addFlowLog('FlowLog', {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(new logs.LogGroup(this, 'FlowLogs', { retention: logs.RetentionDays.ONE_MONTH, encryptionKey: key })),
      trafficType: ec2.FlowLogTrafficType.REJECT,
    });
    const taskSg = new ec2.SecurityGroup(this, 'TaskSg', { vpc, allowAllOutbound: false });
    taskSg.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443));
    const fsSg = new ec2.SecurityGroup(this, 'FsSg', { vpc, allowAllOutbound: false });
    const fileSystem = new efs.FileSystem(this, 'Fs', {
      vpc, securityGroup: fsSg, encrypted: true, kmsKey: key, lifecyclePolicy: efs.LifecyclePolicy.AFTER_30_DAYS, removalPolicy: RemovalPolicy.RETAIN,
    });
    fileSystem.connections.allowFrom(taskSg, ec2.Port.tcp(2049));
    taskSg.connections.allowTo(fileSystem, ec2.Port.tcp(2049));
    const accessPoint = fileSystem.addAccessPoint('Ap', {
      path: '/hermes', createAcl: { ownerUid: '10000', ownerGid: '10000', permissions: '750' }, posixUser: { uid: '10000', gid: '10000' },
    });
    const plan = new backup.BackupPlan(this, 'Plan', {
      backupVault: new backup.BackupVault(this, 'Vault', { encryptionKey: key }),
      backupPlanRules: [backup.BackupPlanRule.daily()],
    });
    plan.addSelection('Efs', { resources: [backup.BackupResource.fromEfsFileSystem(fileSystem)] });
    const bucket = new s3.Bucket(this, 'Knowledge', {
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: key,
      enforceSSL: true,
      versioned: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const botToken = new secretsmanager.Secret(this, 'BotToken', { encryptionKey: key });
    const appToken = new secretsmanager.Secret(this, 'AppToken', { encryptionKey: key });
    const signing = new secretsmanager.Secret(this, 'Signing', { encryptionKey: key });
    void signing;
    const apiKey = new secretsmanager.Secret(this, 'ApiKey', { encryptionKey: key, generateSecretString: { excludePunctuation: true } });
    const cluster = new ecs.Cluster(this, 'Cluster', { vpc, containerInsightsV2: ecs.ContainerInsights.ENABLED, enableFargateCapacityProviders: true });
    const logGroup = new logs.LogGroup(this, 'Logs', { retention: logs.RetentionDays.ONE_MONTH, encryptionKey: key });
    const taskDef = new ecs.FargateTaskDefinition(this, 'TaskDef', {
      cpu: 512,
      memoryLimitMiB: 1024,
      runtimePlatform: { cpuArchitecture: ecs.CpuArchitecture.ARM64, operatingSystemFamily: ecs.OperatingSystemFamily.LINUX },
      volumes: [{
        name: 'home',
        efsVolumeConfiguration: {
          fileSystemId: fileSystem.fileSystemId,
          transitEncryption: 'ENABLED',
          authorizationConfig: { accessPointId: accessPoint.accessPointId, iam: 'ENABLED' },
        },
      }],
    });
    fileSystem.grant(taskDef.taskRole, 'elasticfilesystem:ClientMount', 'elasticfilesystem:ClientWrite');
    bucket.grantRead(taskDef.taskRole);
    taskDef.taskRole.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream'],
      resources: [`arn:aws:bedrock:*:${this.account}:inference-profile/us.anthropic.claude-sonnet-4-6`, 'arn:aws:bedrock:*::foundation-model/anthropic.claude-sonnet-4-6'],
    }));
    const container = taskDef.addContainer('gateway', {
      image: ecs.ContainerImage.fromAsset(path.join(__dirname, '..', 'assets'), { target: 'gateway', platform: ecrAssets.Platform.LINUX_ARM64 }),
      logging: ecs.LogDrivers.awsLogs({ logGroup, streamPrefix: 'gateway' }),
      environment: { HERMES_HOME: '/data/hermes', KNOWLEDGE_BUCKET: bucket.bucketName },
      secrets: {
        SLACK_BOT_TOKEN: ecs.Secret.fromSecretsManager(botToken),
        SLACK_APP_TOKEN: ecs.Secret.fromSecretsManager(appToken),
        API_SERVER_KEY: ecs.Secret.fromSecretsManager(apiKey),
      },
      healthCheck: { command: ['CMD', 'python', '-m', 'hermes_aws.health'] },
      stopTimeout: Duration.seconds(120),
    });
    container.addMountPoints({ sourceVolume: 'home', containerPath: '/data/hermes', readOnly: false });
    const service = new ecs.FargateService(this, 'Service', {
      cluster,
      taskDefinition: taskDef,
      desiredCount: 1,
      minHealthyPercent: 0,
      maxHealthyPercent: 100,
      circuitBreaker: { enable: true, rollback: true },
      securityGroups: [taskSg],
    });
    for (const name of ['UnhealthyProbes', 'KnowledgeSyncFailures']) {
      new logs.MetricFilter(this, `${name}Filter`, {
        logGroup, filterPattern: logs.FilterPattern.literal('{ $.event = "x" }'), metricNamespace: 'Bench', metricName: name,
      });
    }
    new cloudwatch.Alarm(this, 'NoTask', {
      metric: new cloudwatch.Metric({ namespace: 'ECS/ContainerInsights', metricName: 'RunningTaskCount', dimensionsMap: { ServiceName: service.serviceName } }),
      threshold: 1,
      evaluationPeriods: 5,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
    });
    new cloudwatch.Alarm(this, 'Unhealthy', {
      metric: new cloudwatch.Metric({ namespace: 'Bench', metricName: 'UnhealthyProbes' }), threshold: 1, evaluationPeriods: 5,
    });
  }
}
