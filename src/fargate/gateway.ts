import { CfnOutput, Duration, RemovalPolicy, Token } from 'aws-cdk-lib';
import * as backup from 'aws-cdk-lib/aws-backup';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as efs from 'aws-cdk-lib/aws-efs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { GatewayEgress } from './egress';
import { HermesAgentProps } from '../agent-props';
import { AgentBackupPlan } from '../backup-plan';
import { AgentEncryptionKey } from '../encryption-key';
import { KnowledgeBucket } from '../knowledge-bucket';
import { AgentModel } from '../model';
import { acknowledge } from '../private/acknowledge';
import { acknowledgeWildcards } from '../private/iam-wildcards';
import { acknowledgeDefaultPolicies, requireAccess, wireAlarms } from '../private/operations';
import { RUNTIME_ASSET_DIR, RUNTIME_ASSET_OPTIONS, RuntimeTarget } from '../private/runtime-assets';
import { ecsSecret } from '../private/secret-access';
import { PropError, checkInteger } from '../private/validate';
import { SlackSecrets } from '../secrets';
import { HermesConfig } from '../settings';

/** Where HERMES_HOME lives in the container (the EFS mount). */
const HERMES_HOME = '/data/hermes';
/** UID/GID of the image's non-root `hermes` user; owns the EFS access point. */
const HERMES_UID = '10000';
/** Loopback port of Hermes's API server, used only by the health check. */
const API_SERVER_PORT = 8642;
/** Metric namespace of the gateway's own log-derived metrics. */
const METRIC_NAMESPACE = 'HermesAgent/Gateway';

/** Fargate's allowed memory sizes (MiB) per CPU size. */
const FARGATE_SIZES: { [cpu: number]: number[] } = {
  256: [512, 1024, 2048],
  512: range(1024, 4096, 1024),
  1024: range(2048, 8192, 1024),
  2048: range(4096, 16384, 1024),
  4096: range(8192, 30720, 1024),
  8192: range(16384, 61440, 4096),
  16384: range(32768, 122880, 8192),
};

/**
 * Properties of a {@link HermesFargateGateway}.
 */
export interface HermesFargateGatewayProps extends HermesAgentProps {
  /**
   * The Slack bot and app-level tokens (Socket Mode: no inbound endpoint).
   *
   * @default - new placeholder secrets to fill in after the first deploy
   */
  readonly slack?: SlackSecrets;

  /**
   * Telegram bot token: the gateway also answers on Telegram (long polling).
   * Never share one bot token between a polling gateway and a webhook
   * deployment: polling deletes the webhook.
   *
   * @default - no Telegram
   */
  readonly telegramBotToken?: secretsmanager.ISecret;

  /**
   * Discord bot token: the gateway also answers on Discord.
   *
   * @default - no Discord
   */
  readonly discordBotToken?: secretsmanager.ISecret;

  /**
   * How often the knowledge bucket is synced after start, 1 minute to 24 hours.
   *
   * @default Duration.minutes(15)
   */
  readonly knowledgeSyncInterval?: Duration;

  /**
   * VPC to run in. Its chosen subnets need a route to the internet (Slack).
   *
   * @default - a new VPC: 2 AZs, public and private subnets, `egress`, S3 gateway endpoint, flow logs
   */
  readonly vpc?: ec2.IVpc;

  /**
   * Subnets of the task.
   *
   * @default - private subnets with egress
   */
  readonly vpcSubnets?: ec2.SubnetSelection;

  /**
   * Internet egress of a created VPC. Only without `vpc`.
   *
   * @default GatewayEgress.natGateway()
   */
  readonly egress?: GatewayEgress;

  /**
   * Add interface endpoints (Bedrock runtime, Secrets Manager, ECR, CloudWatch
   * Logs) to a created VPC, so that AWS traffic stays off the NAT. About
   * $7.30/month per endpoint per AZ. Only without `vpc`.
   *
   * @default false
   */
  readonly interfaceEndpoints?: boolean;

  /**
   * ECS cluster to run in (it must be in `vpc`). The FARGATE and FARGATE_SPOT
   * capacity providers are added to a `Cluster` construct; an imported
   * cluster must have them already.
   *
   * @default - a new cluster with Container Insights
   */
  readonly cluster?: ecs.ICluster;

  /**
   * CPU architecture of the task and its image.
   *
   * @default ecs.CpuArchitecture.ARM64
   */
  readonly cpuArchitecture?: ecs.CpuArchitecture;

  /**
   * Task CPU units: 256, 512, 1024, 2048, 4096, 8192 or 16384.
   *
   * @default 512
   */
  readonly cpu?: number;

  /**
   * Task memory (MiB); must be a size Fargate allows for `cpu` (e.g. 1024-4096 for 512).
   *
   * @default 1024
   */
  readonly memoryLimitMiB?: number;

  /**
   * Run on Fargate Spot (up to 70% cheaper; the task may be interrupted with
   * two minutes' notice and is then restarted). An imported cluster must have
   * the FARGATE_SPOT capacity provider.
   *
   * @default false
   */
  readonly spot?: boolean;

  /**
   * Allow `aws ecs execute-command` into the container.
   *
   * @default false
   */
  readonly enableExecuteCommand?: boolean;

  /**
   * How long a chat platform (Slack, ...) may stay disconnected before the
   * health check fails and ECS replaces the task, 1-60 minutes.
   *
   * @default Duration.minutes(5)
   */
  readonly platformDownGracePeriod?: Duration;

  /**
   * Extra CA certificate (PEM) trusted by the image build (pip) and at run
   * time (Python, Node.js, AWS SDK), for networks behind a TLS-inspecting proxy.
   *
   * @default - the public CAs of the base image only
   */
  readonly caCertificatePem?: string;

}

/**
 * An always-on Hermes Agent gateway on ECS Fargate: Slack Socket Mode (no
 * inbound endpoint), optionally Telegram polling and Discord, HERMES_HOME on
 * EFS, knowledge synced from S3, a health check that catches a deaf gateway.
 *
 * Exactly one task runs at a time (desired 1, minimum healthy 0%, maximum
 * 100%): a second Socket Mode connection would split Slack's events between
 * two agents, and a second writer would corrupt Hermes's `state.db` on EFS.
 * Two gateways with different settings are two constructs, each with its own
 * file system.
 */
export class HermesFargateGateway extends Construct implements ec2.IConnectable, iam.IGrantable {
  /** The VPC. */
  public readonly vpc: ec2.IVpc;
  /** The cluster. */
  public readonly cluster: ecs.ICluster;
  /** The service (one task). */
  public readonly service: ecs.FargateService;
  /** The task definition. */
  public readonly taskDefinition: ecs.FargateTaskDefinition;
  /** The gateway container. */
  public readonly container: ecs.ContainerDefinition;
  /** The file system holding HERMES_HOME. */
  public readonly fileSystem: efs.FileSystem;
  /** The access point the task mounts. */
  public readonly accessPoint: efs.AccessPoint;
  /** The gateway's log group. */
  public readonly logGroup: logs.LogGroup;
  /** Security group of the task (no inbound rules). */
  public readonly securityGroup: ec2.SecurityGroup;
  /** The knowledge bucket. */
  public readonly knowledgeBucket: KnowledgeBucket;
  /** The Slack secrets. */
  public readonly slack: SlackSecrets;
  /** Generated key of the loopback API server the health check uses. */
  public readonly apiServerKey: secretsmanager.Secret;
  /** The rendered Hermes configuration. */
  public readonly hermesConfig: HermesConfig;
  /** The model. */
  public readonly model: AgentModel;
  /** Alarm: no gateway task running. */
  public readonly noTaskRunningAlarm: cloudwatch.Alarm;
  /** Alarm: the health probe keeps failing. */
  public readonly unhealthyAlarm: cloudwatch.Alarm;
  /** Network connections of the task. */
  public readonly connections: ec2.Connections;
  /** The task role. */
  public readonly grantPrincipal: iam.IPrincipal;

  private readonly gatewayId: string;

  constructor(scope: Construct, id: string, props: HermesFargateGatewayProps) {
    super(scope, id);
    requireAccess(props, 'HermesFargateGatewayProps', '{...}');
    validateProps(props);

    const key = props.encryptionKey ?? AgentEncryptionKey.of(this);
    // The key encrypts the gateway's log groups, which CloudWatch Logs can only create
    // when the key policy lets it use the key (already true of the shared key).
    if (props.encryptionKey) AgentEncryptionKey.allowLogGroups(props.encryptionKey);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const architecture = props.cpuArchitecture ?? ecs.CpuArchitecture.ARM64;
    this.gatewayId = this.node.path;

    // --- Network -----------------------------------------------------------
    this.vpc = props.vpc ?? this.createVpc(props, key);
    const subnets = props.vpcSubnets ?? { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };
    this.securityGroup = new ec2.SecurityGroup(this, 'TaskSecurityGroup', {
      vpc: this.vpc,
      description: 'Hermes gateway task: no inbound, outbound HTTPS and NFS to its file system',
      allowAllOutbound: false,
    });
    this.securityGroup.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'HTTPS to Slack, model endpoints and AWS APIs');
    this.connections = this.securityGroup.connections;
    if (props.interfaceEndpoints) this.addInterfaceEndpoints(this.vpc as ec2.Vpc);

    // --- State: EFS --------------------------------------------------------
    const fsSecurityGroup = new ec2.SecurityGroup(this, 'FileSystemSecurityGroup', {
      vpc: this.vpc,
      description: 'Hermes gateway file system: NFS from the gateway task only',
      allowAllOutbound: false,
    });
    this.fileSystem = new efs.FileSystem(this, 'FileSystem', {
      vpc: this.vpc,
      // EFS allows one mount target per AZ; the task's subnets may hold several per AZ.
      vpcSubnets: { ...subnets, onePerAz: true },
      securityGroup: fsSecurityGroup,
      encrypted: true,
      kmsKey: key,
      lifecyclePolicy: efs.LifecyclePolicy.AFTER_30_DAYS,
      outOfInfrequentAccessPolicy: efs.OutOfInfrequentAccessPolicy.AFTER_1_ACCESS,
      performanceMode: efs.PerformanceMode.GENERAL_PURPOSE,
      throughputMode: efs.ThroughputMode.ELASTIC,
      enableAutomaticBackups: false, // the shared AWS Backup plan below is explicit and auditable
      allowAnonymousAccess: false,
      removalPolicy,
    });
    this.fileSystem.connections.allowFrom(this.securityGroup, ec2.Port.tcp(2049), 'NFS from the Hermes gateway task');
    this.securityGroup.connections.allowTo(this.fileSystem, ec2.Port.tcp(2049), 'NFS to the Hermes file system');
    this.accessPoint = this.fileSystem.addAccessPoint('HermesHome', {
      path: '/hermes',
      createAcl: { ownerUid: HERMES_UID, ownerGid: HERMES_UID, permissions: '750' },
      posixUser: { uid: HERMES_UID, gid: HERMES_UID },
    });
    if (props.backup ?? true) {
      AgentBackupPlan.protect(this, 'FileSystemBackup', backup.BackupResource.fromEfsFileSystem(this.fileSystem), key);
    } else {
      acknowledge(this.fileSystem, 'Backups were switched off explicitly (HermesFargateGatewayProps.backup = false).',
        'NIST.800.53.R5-EFSInBackupPlan', 'HIPAA.Security-EFSInBackupPlan');
    }

    // --- Cluster -----------------------------------------------------------
    this.cluster = props.cluster ?? new ecs.Cluster(this, 'Cluster', {
      vpc: this.vpc,
      containerInsightsV2: ecs.ContainerInsights.ENABLED,
      enableFargateCapacityProviders: true,
    });
    // The service's capacity provider strategy only works with providers associated with the cluster.
    if (props.cluster instanceof ecs.Cluster) props.cluster.enableFargateCapacityProviders();

    // --- Settings, model, secrets --------------------------------------------
    this.model = props.model ?? AgentModel.bedrock('us.anthropic.claude-sonnet-4-6');
    this.slack = props.slack ?? new SlackSecrets(this, 'Slack', { encryptionKey: key });
    this.knowledgeBucket = props.knowledgeBucket ?? new KnowledgeBucket(this, 'Knowledge', { encryptionKey: key });
    this.hermesConfig = HermesConfig.render({
      model: this.model,
      settings: props.settings,
      shapeConfig: {
        // .hermes.md is discovered from terminal.cwd: keep it at HERMES_HOME (seed gotcha 5).
        terminal: { backend: 'local', cwd: HERMES_HOME },
        // Let in-flight turns finish on SIGTERM, inside ECS's 120 s stop timeout.
        agent: { restart_drain_timeout: 90 },
      },
    });
    this.apiServerKey = new secretsmanager.Secret(this, 'ApiServerKey', {
      description: `Key of the loopback-only Hermes API server of ${this.node.path}, used by its health check. Generated; do not edit.`,
      encryptionKey: key,
      generateSecretString: { passwordLength: 48, excludePunctuation: true, includeSpace: false },
      removalPolicy: RemovalPolicy.DESTROY,
    });
    acknowledge(this.apiServerKey,
      'A random key for an API server bound to 127.0.0.1 inside the task; it never leaves the task, and re-creating the secret replaces it.',
      'AwsSolutions-SMG4', 'NIST.800.53.R5-SecretsManagerRotationEnabled', 'HIPAA.Security-SecretsManagerRotationEnabled');

    // --- Task ----------------------------------------------------------------
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      encryptionKey: key,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.taskDefinition = new ecs.FargateTaskDefinition(this, 'TaskDefinition', {
      cpu: props.cpu ?? 512,
      memoryLimitMiB: props.memoryLimitMiB ?? 1024,
      runtimePlatform: { cpuArchitecture: architecture, operatingSystemFamily: ecs.OperatingSystemFamily.LINUX },
      volumes: [{
        name: 'hermes-home',
        efsVolumeConfiguration: {
          fileSystemId: this.fileSystem.fileSystemId,
          transitEncryption: 'ENABLED',
          authorizationConfig: { accessPointId: this.accessPoint.accessPointId, iam: 'ENABLED' },
        },
      }],
    });
    this.grantPrincipal = this.taskDefinition.taskRole;
    this.fileSystem.grant(this.taskDefinition.taskRole, 'elasticfilesystem:ClientMount', 'elasticfilesystem:ClientWrite');

    const platforms = ['slack', ...(props.telegramBotToken ? ['telegram'] : []), ...(props.discordBotToken ? ['discord'] : [])];
    for (const platform of props.access._platforms()) {
      if (!platforms.includes(platform)) {
        throw new PropError('HermesFargateGatewayProps.access',
          `allows ${platform} users, but the gateway has no ${platform} bot token (set HermesFargateGatewayProps.${platform}BotToken)`);
      }
    }
    const executionRole = this.taskDefinition.obtainExecutionRole();
    const secretSources: { [name: string]: secretsmanager.ISecret } = {
      SLACK_BOT_TOKEN: this.slack.botToken,
      SLACK_APP_TOKEN: this.slack.appToken,
      API_SERVER_KEY: this.apiServerKey,
      ...(props.telegramBotToken ? { TELEGRAM_BOT_TOKEN: props.telegramBotToken } : {}),
      ...(props.discordBotToken ? { DISCORD_BOT_TOKEN: props.discordBotToken } : {}),
      ...this.hermesConfig.secretEnvironment,
    };
    const secrets: { [name: string]: ecs.Secret } = {};
    for (const [name, secret] of Object.entries(secretSources)) {
      secrets[name] = ecsSecret(this, `SecretRef${name}`, secret, executionRole);
    }

    this.container = this.taskDefinition.addContainer('gateway', {
      image: ecs.ContainerImage.fromAsset(RUNTIME_ASSET_DIR, {
        ...RUNTIME_ASSET_OPTIONS,
        target: RuntimeTarget.GATEWAY,
        buildArgs: props.caCertificatePem ? { EXTRA_CA_CERT_PEM: props.caCertificatePem.trim() } : undefined,
        platform: architecture === ecs.CpuArchitecture.X86_64 ? ecrAssets.Platform.LINUX_AMD64 : ecrAssets.Platform.LINUX_ARM64,
      }),
      essential: true,
      logging: ecs.LogDrivers.awsLogs({ logGroup: this.logGroup, streamPrefix: 'gateway', mode: ecs.AwsLogDriverMode.NON_BLOCKING }),
      linuxParameters: new ecs.LinuxParameters(this, 'LinuxParameters', { initProcessEnabled: true }),
      stopTimeout: Duration.seconds(120),
      environment: {
        HERMES_HOME,
        [HermesConfig.SETTINGS_ENV]: this.hermesConfig.toDocument(this),
        HERMES_AWS_KNOWLEDGE_BUCKET: this.knowledgeBucket.bucket.bucketName,
        HERMES_AWS_KNOWLEDGE_SYNC_SECONDS: String((props.knowledgeSyncInterval ?? Duration.minutes(15)).toSeconds()),
        HERMES_AWS_PLATFORMS: platforms.join(','),
        HERMES_AWS_PLATFORM_GRACE_SECONDS: String((props.platformDownGracePeriod ?? Duration.minutes(5)).toSeconds()),
        // Logged as `gateway` on every probe and sync line: the Gateway dimension of the log metrics.
        HERMES_AWS_GATEWAY_ID: this.gatewayId,
        API_SERVER_ENABLED: 'true',
        API_SERVER_HOST: '127.0.0.1',
        API_SERVER_PORT: String(API_SERVER_PORT),
        ...props.access._environment(platforms),
      },
      secrets,
      healthCheck: {
        command: ['CMD', 'python', '-m', 'hermes_aws.health'],
        interval: Duration.seconds(30),
        timeout: Duration.seconds(10),
        retries: 3,
        startPeriod: Duration.seconds(180),
      },
    });
    this.container.addMountPoints({ sourceVolume: 'hermes-home', containerPath: HERMES_HOME, readOnly: false });
    acknowledge(this.taskDefinition,
      'The environment holds only non-secret settings (the rendered Hermes settings document, bucket name, allow-lists); ' +
      'every token comes from Secrets Manager through `secrets`. Settings stay in the task definition so a change rolls out as a new revision.',
      'AwsSolutions-ECS2');

    // --- Grants ----------------------------------------------------------------
    this.model.grantInvoke(this.taskDefinition.taskRole);
    this.knowledgeBucket.grantRead(this.taskDefinition.taskRole, KnowledgeBucket.KNOWLEDGE_PREFIX);
    this.knowledgeBucket.grantRead(this.taskDefinition.taskRole, KnowledgeBucket.PROJECTS_PREFIX);

    // --- Service -----------------------------------------------------------------
    this.service = new ecs.FargateService(this, 'Service', {
      cluster: this.cluster,
      taskDefinition: this.taskDefinition,
      desiredCount: 1,
      minHealthyPercent: 0,
      maxHealthyPercent: 100,
      circuitBreaker: { enable: true, rollback: true },
      enableExecuteCommand: props.enableExecuteCommand ?? false,
      vpcSubnets: subnets,
      securityGroups: [this.securityGroup],
      assignPublicIp: false,
      platformVersion: ecs.FargatePlatformVersion.LATEST,
      propagateTags: ecs.PropagatedTagSource.SERVICE,
      capacityProviderStrategies: props.spot
        ? [{ capacityProvider: 'FARGATE_SPOT', weight: 1 }]
        : [{ capacityProvider: 'FARGATE', weight: 1 }],
    });

    acknowledgeWildcards(this.taskDefinition,
      'Task and execution roles: object-level S3 read under the knowledge/ and projects/ prefixes (s3:GetObject*/List* on prefix/*), ' +
      'KMS data-key actions on the agent key, the Bedrock foundation model in the regions its inference profile routes to, ' +
      'and the ECS Exec / log actions ECS requires on "*".');
    acknowledgeDefaultPolicies(this.taskDefinition, 'task and execution roles');

    // --- Operations --------------------------------------------------------------
    this.addLogMetrics();
    this.noTaskRunningAlarm = new cloudwatch.Alarm(this, 'NoTaskRunningAlarm', {
      alarmDescription: `Hermes gateway ${this.node.path} has had no running task for 5 minutes: the agent is not answering.`,
      // AWS/ECS service metrics exist without Container Insights: no running
      // task means no CPU samples at all, which counts as breaching.
      metric: this.service.metricCpuUtilization({ period: Duration.minutes(1), statistic: 'SampleCount' }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 5,
      datapointsToAlarm: 5,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
    this.unhealthyAlarm = new cloudwatch.Alarm(this, 'UnhealthyAlarm', {
      alarmDescription: `Hermes gateway ${this.node.path} has failed its health probe (gateway or a chat platform down) for 3 of the last 5 minutes.`,
      metric: this.metricUnhealthyProbes({ period: Duration.minutes(1), statistic: 'Sum' }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 5,
      datapointsToAlarm: 3,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    wireAlarms(this, [this.noTaskRunningAlarm, this.unhealthyAlarm], props.alarmTopic, 'HermesFargateGatewayProps');

    new CfnOutput(this, 'ClusterName', { value: this.cluster.clusterName, description: 'ECS cluster of the Hermes gateway' });
    new CfnOutput(this, 'ServiceName', { value: this.service.serviceName, description: 'ECS service of the Hermes gateway' });
  }

  /** Running gateway tasks (Container Insights). */
  public metricRunningTaskCount(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: 'ECS/ContainerInsights',
      metricName: 'RunningTaskCount',
      dimensionsMap: { ClusterName: this.cluster.clusterName, ServiceName: this.service.serviceName },
      statistic: 'Minimum',
      ...props,
    });
  }

  /** CPU utilization of the gateway service. */
  public metricCpuUtilization(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.service.metricCpuUtilization(props);
  }

  /** Memory utilization of the gateway service. */
  public metricMemoryUtilization(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.service.metricMemoryUtilization(props);
  }

  /** Failed health probes (gateway down or a chat platform disconnected), from the gateway's logs. */
  public metricUnhealthyProbes(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.logMetric('UnhealthyProbes', props);
  }

  /** Failed knowledge syncs, from the gateway's logs. */
  public metricKnowledgeSyncFailures(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.logMetric('KnowledgeSyncFailures', props);
  }

  private logMetric(metricName: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: METRIC_NAMESPACE,
      metricName,
      dimensionsMap: { Gateway: this.gatewayId },
      statistic: 'Sum',
      ...props,
    });
  }

  /**
   * The runtime logs one JSON line per probe and per sync, with `gateway` set
   * to HERMES_AWS_GATEWAY_ID; count the failures per gateway. A metric filter
   * cannot publish a constant dimension (only log fields), and a dimensioned
   * filter cannot have a default value.
   */
  private addLogMetrics(): void {
    const filters: Array<[string, string]> = [
      ['UnhealthyProbes', '{ ($.event = "health") && ($.healthy IS FALSE) }'],
      ['KnowledgeSyncFailures', '{ ($.event = "knowledge_sync") && ($.ok IS FALSE) }'],
    ];
    for (const [metricName, pattern] of filters) {
      new logs.MetricFilter(this, `${metricName}Filter`, {
        logGroup: this.logGroup,
        filterPattern: logs.FilterPattern.literal(pattern),
        metricNamespace: METRIC_NAMESPACE,
        metricName,
        metricValue: '1',
        dimensions: { Gateway: '$.gateway' },
      });
    }
  }

  /** Interface endpoints reachable from the gateway task only. */
  private addInterfaceEndpoints(vpc: ec2.Vpc): void {
    const endpointSecurityGroup = new ec2.SecurityGroup(this, 'EndpointSecurityGroup', {
      vpc,
      description: 'Hermes gateway interface endpoints: HTTPS from the gateway task only',
      allowAllOutbound: false,
    });
    endpointSecurityGroup.connections.allowFrom(this.securityGroup, ec2.Port.tcp(443), 'HTTPS from the Hermes gateway task');
    const services: { [name: string]: ec2.InterfaceVpcEndpointAwsService } = {
      BedrockRuntime: ec2.InterfaceVpcEndpointAwsService.BEDROCK_RUNTIME,
      SecretsManager: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
      Ecr: ec2.InterfaceVpcEndpointAwsService.ECR,
      EcrDocker: ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
      Logs: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    };
    for (const [name, service] of Object.entries(services)) {
      vpc.addInterfaceEndpoint(name, {
        service,
        privateDnsEnabled: true,
        open: false,
        securityGroups: [endpointSecurityGroup],
        subnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      });
    }
  }

  private createVpc(props: HermesFargateGatewayProps, key: kms.IKey): ec2.Vpc {
    const egress = props.egress ?? GatewayEgress.natGateway();
    const natInstance = egress.kind === 'nat-instance'
      ? ec2.NatProvider.instanceV2({
        instanceType: egress.instanceType!,
        defaultAllowedTraffic: ec2.NatTrafficDirection.OUTBOUND_ONLY,
        // The public subnets do not map public IPs on launch; without one the instance cannot NAT.
        associatePublicIpAddress: true,
      })
      : undefined;
    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: 1,
      natGatewayProvider: natInstance ?? ec2.NatProvider.gateway(),
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24, mapPublicIpOnLaunch: false },
        { name: 'private', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 22 },
      ],
      gatewayEndpoints: { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
      restrictDefaultSecurityGroup: false,
    });
    vpc.addFlowLog('FlowLog', {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(new logs.LogGroup(this, 'FlowLogs', {
        retention: logs.RetentionDays.ONE_MONTH,
        encryptionKey: key,
        removalPolicy: RemovalPolicy.RETAIN,
      })),
      trafficType: ec2.FlowLogTrafficType.REJECT,
    });
    if (natInstance) {
      // OUTBOUND_ONLY leaves the NAT security group without inbound rules, which would drop
      // the forwarded traffic; the gateway task only sends HTTPS out. Literal subnet CIDRs
      // (not the VPC's CidrBlock attribute) keep the rule checkable at synth time.
      for (const subnet of vpc.privateSubnets) {
        natInstance.connections.allowFrom(ec2.Peer.ipv4(subnet.ipv4CidrBlock), ec2.Port.tcp(443), 'HTTPS from a private subnet to forward');
      }
      hardenNatInstances(natInstance);
    }
    acknowledge(vpc,
      'Public subnets exist only to hold the NAT that gives the private subnets outbound internet access (Slack, model endpoints); nothing else is placed in them.',
      'NIST.800.53.R5-VPCNoUnrestrictedRouteToIGW', 'HIPAA.Security-VPCNoUnrestrictedRouteToIGW');
    acknowledge(vpc,
      'Nothing is placed in the default security group; closing it needs a custom-resource Lambda (restrictDefaultSecurityGroup) that would bring findings of its own.',
      'NIST.800.53.R5-VPCDefaultSecurityGroupClosed', 'HIPAA.Security-VPCDefaultSecurityGroupClosed');
    acknowledge(vpc,
      'The flow-log role gets its single logs:* statement on its own log group through a CDK default policy.',
      'NIST.800.53.R5-IAMNoInlinePolicy', 'HIPAA.Security-IAMNoInlinePolicy');
    return vpc;
  }
}

/** NAT instances: IMDSv2, encrypted root volume, detailed monitoring, termination protection. */
function hardenNatInstances(nat: ec2.NatInstanceProviderV2): void {
  for (const instance of nat.gatewayInstances) {
    const cfn = instance.instance;
    cfn.monitoring = true;
    cfn.disableApiTermination = true;
    cfn.blockDeviceMappings = [{ deviceName: '/dev/xvda', ebs: { encrypted: true, volumeType: 'gp3', deleteOnTermination: true } }];
    cfn.metadataOptions = { httpTokens: 'required', httpEndpoint: 'enabled' };
    acknowledge(instance,
      'A NAT instance must sit in a public subnet with a public IP to forward the private subnets\' outbound traffic; it accepts only HTTPS from the private subnets, to forward, and keeps no data.',
      'NIST.800.53.R5-EC2InstanceNoPublicIp', 'HIPAA.Security-EC2InstanceNoPublicIp',
      'NIST.800.53.R5-EC2EBSInBackupPlan', 'HIPAA.Security-EC2EBSInBackupPlan',
      'HIPAA.Security-EC2InstanceProfileAttached', 'NIST.800.53.R5-EC2InstanceProfileAttached');
    acknowledge(instance,
      'The NAT instance is in a public subnet of the VPC through its primary network interface (NetworkInterfaces[0].SubnetId, needed to ' +
      'associate a public IP at launch); the rule reads only the top-level SubnetId, which CloudFormation forbids alongside NetworkInterfaces.',
      'NIST.800.53.R5-EC2InstancesInVPC', 'HIPAA.Security-EC2InstancesInVPC');
  }
}

function validateProps(props: HermesFargateGatewayProps): void {
  const cpu = props.cpu ?? 512;
  const memory = props.memoryLimitMiB ?? 1024;
  if (!Token.isUnresolved(cpu) && !FARGATE_SIZES[cpu]) {
    throw new PropError('HermesFargateGatewayProps.cpu', `must be one of ${Object.keys(FARGATE_SIZES).join(', ')} (got ${cpu})`);
  }
  if (!Token.isUnresolved(cpu) && !Token.isUnresolved(memory) && !FARGATE_SIZES[cpu].includes(memory)) {
    const sizes = FARGATE_SIZES[cpu];
    const step = sizes[1] - sizes[0];
    const evenSteps = sizes.every((size, i) => i === 0 || size - sizes[i - 1] === step);
    const allowed = evenSteps ? `${sizes[0]}-${sizes[sizes.length - 1]} in steps of ${step}` : sizes.join(', ');
    throw new PropError('HermesFargateGatewayProps.memoryLimitMiB',
      `must be a size Fargate allows with ${cpu} CPU units: ${allowed} (got ${memory})`);
  }
  if (props.vpc && props.egress) {
    throw new PropError('HermesFargateGatewayProps.egress', 'only applies to a VPC the construct creates; remove it or remove `vpc`');
  }
  if (props.vpc && props.interfaceEndpoints) {
    throw new PropError('HermesFargateGatewayProps.interfaceEndpoints', 'only applies to a VPC the construct creates; add endpoints to your own VPC yourself');
  }
  if (props.cluster && !props.vpc) {
    throw new PropError('HermesFargateGatewayProps.cluster', 'requires `vpc` too (the cluster\'s VPC), so the task and its file system share one network');
  }
  if (props.caCertificatePem !== undefined && !/^-----BEGIN CERTIFICATE-----\s[\s\S]+\s-----END CERTIFICATE-----$/.test(props.caCertificatePem.trim())) {
    throw new PropError('HermesFargateGatewayProps.caCertificatePem', 'must be one or more PEM certificates (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)');
  }
  checkSeconds('HermesFargateGatewayProps.knowledgeSyncInterval', props.knowledgeSyncInterval, 60, 86_400);
  checkSeconds('HermesFargateGatewayProps.platformDownGracePeriod', props.platformDownGracePeriod, 60, 3_600);
}

function checkSeconds(prop: string, value: Duration | undefined, min: number, max: number): void {
  if (value === undefined) return;
  checkInteger(`${prop} (in seconds)`, value.toSeconds(), min, max);
}

function range(from: number, to: number, step: number): number[] {
  const out: number[] = [];
  for (let v = from; v <= to; v += step) out.push(v);
  return out;
}
