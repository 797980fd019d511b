import { CfnOutput, Duration, RemovalPolicy, Token } from 'aws-cdk-lib';
import * as agentcore from 'aws-cdk-lib/aws-bedrockagentcore';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as lambdaEvents from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { acknowledge } from '../private/acknowledge';
import { acknowledgeWildcards } from '../private/iam-wildcards';
import { FunctionRole, functionDefaults, latestPythonRuntime, runtimeZipCode } from '../private/lambda';
import { acknowledgeDefaultPolicies, countAlarm } from '../private/operations';
import { RUNTIME_ASSET_DIR, RUNTIME_ASSET_OPTIONS, RuntimeTarget } from '../private/runtime-assets';
import { PropError, checkInteger, checkPattern } from '../private/validate';
import { HermesServerlessAgentBase, ServerlessAgentProps } from '../serverless/base';

const PROPS = 'HermesAgentCoreAgentProps';
/** AgentCore's runtime name rule (CloudFormation `AgentRuntimeName`). */
const RUNTIME_NAME = /^[a-zA-Z][a-zA-Z0-9_]{0,47}$/;
/** AgentCore's environment variable name rule. */
const ENV_NAME = /^[a-zA-Z_][a-zA-Z0-9_]{0,99}$/;
/** AgentCore accepts at most this many environment variables per runtime. */
const MAX_ENV = 50;
/** Time the dispatcher keeps after the runtime's answer: delivery, ledger, metrics. */
const DISPATCH_MARGIN = Duration.seconds(60);

/**
 * Properties of a {@link HermesAgentCoreAgent}.
 */
export interface HermesAgentCoreAgentProps extends ServerlessAgentProps {
  /**
   * Name of the AgentCore runtime: a letter, then up to 47 letters, digits
   * and underscores (AgentCore allows no hyphens).
   *
   * @default - generated from the construct path
   */
  readonly runtimeName?: string;

  /**
   * A chat's microVM is stopped after this long without an invocation,
   * 1 minute to 8 hours. A warm microVM answers faster (Hermes is imported,
   * the chat's history is in memory) but its memory is billed while it waits.
   *
   * @default Duration.minutes(15)
   */
  readonly idleTimeout?: Duration;

  /**
   * A chat's microVM is replaced after this long even when busy, 1 minute to
   * 8 hours, at least `idleTimeout`. Nothing is lost: the next message starts
   * a new microVM that resumes from DynamoDB and S3.
   *
   * @default Duration.hours(8)
   */
  readonly maxLifetime?: Duration;

  /**
   * Extra environment variables of the runtime container (for MCP servers,
   * Hermes options...). Names: letters, digits and `_`, not starting with a
   * digit; `HERMES_AWS_*` and `HERMES_HOME` are set by this construct. Never
   * put secrets here: use the model's or MCP servers' secret props.
   *
   * @default - none
   */
  readonly environment?: { [name: string]: string };

  /**
   * Run the microVMs in this VPC instead of AgentCore's public network. The
   * runtime then needs a route to Bedrock, DynamoDB, S3, Secrets Manager and
   * CloudWatch (NAT or VPC endpoints) and, for OpenAI-compatible models or MCP
   * servers, to the internet. The public network needs none of that and costs
   * nothing while idle.
   *
   * @default - the public network
   */
  readonly vpc?: ec2.IVpc;

  /**
   * Subnets of the microVMs' network interfaces. Only with `vpc`.
   *
   * @default - the VPC's private subnets
   */
  readonly vpcSubnets?: ec2.SubnetSelection;

  /**
   * Security groups of the microVMs. Only with `vpc`.
   *
   * @default - a new security group allowing all outbound traffic
   */
  readonly securityGroups?: ec2.ISecurityGroup[];

  /**
   * How long the dispatcher waits for one turn, 1-14 minutes. The
   * dispatcher's timeout is one minute longer (for the reply), and the
   * queue's visibility timeout six times that. Throttled and failed
   * invocations are retried after a short back-off, up to `maxReceiveCount`.
   *
   * @default Duration.minutes(5)
   */
  readonly turnTimeout?: Duration;
}

/**
 * A Hermes Agent on Amazon Bedrock AgentCore Runtime, driven by Telegram
 * and/or Slack.
 *
 * The same ingress as {@link HermesLambdaAgent} (Function URL, verified
 * webhooks, allow-list, SQS FIFO queue with one message group per chat) feeds
 * a small dispatcher function, which invokes the AgentCore runtime with one
 * runtime session per chat and replies on the channel. Each chat gets its own
 * microVM running the Hermes container; a turn loads the chat's history from
 * DynamoDB and its skills and memories from S3, runs Hermes, stores the turn
 * and answers. A microVM that is stopped (idle timeout, maximum lifetime)
 * loses nothing: the next message starts a new one that resumes exactly
 * there. Scheduled jobs fire through EventBridge Scheduler into the same
 * queue; long-term memory can live in AgentCore Memory.
 */
export class HermesAgentCoreAgent extends HermesServerlessAgentBase {
  /** The AgentCore runtime. */
  public readonly runtime: agentcore.Runtime;
  /** The runtime's execution role. */
  public readonly runtimeRole: iam.IRole;
  /** The runtime's role (where Hermes runs). */
  public readonly grantPrincipal: iam.IPrincipal;
  /** Where the runtime's application (invocation) and usage logs are delivered. */
  public readonly runtimeLogGroup: logs.LogGroup;
  /** The dispatcher function (queue -> runtime -> channel). */
  public readonly dispatcherFunction: lambda.Function;
  /** Alarm: turns keep failing (throttling, runtime errors, timeouts). */
  public readonly turnErrorsAlarm: cloudwatch.Alarm;
  /** Alarm: the dispatcher function itself keeps failing. */
  public readonly dispatcherErrorsAlarm: cloudwatch.Alarm;
  /** Alarm: the AgentCore runtime reports errors. */
  public readonly runtimeErrorsAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: HermesAgentCoreAgentProps) {
    const { turnTimeout, idleTimeout, maxLifetime } = checkRuntimeProps(props);
    const dispatcherTimeout = turnTimeout.plus(DISPATCH_MARGIN);
    super(scope, id, props, PROPS, dispatcherTimeout);
    const core = this._core;

    // --- Runtime ---------------------------------------------------------------------
    // The runtime runs turns; it never replies on a channel, so it gets no bot token.
    const environment = this._agentEnvironment({ channelTokens: false });
    for (const [name, value] of Object.entries(props.environment ?? {})) {
      checkPattern(`${PROPS}.environment`, name, ENV_NAME, 'keyed by names of letters, digits and "_" that do not start with a digit (at most 100 characters)');
      if (name.startsWith('HERMES_AWS_') || name === 'HERMES_HOME' || name in core.hermesConfig.secretEnvironment) {
        throw new PropError(`${PROPS}.environment`, `must not set ${name}: the construct sets it`);
      }
      environment[name] = value;
    }
    if (Object.keys(environment).length > MAX_ENV) {
      throw new PropError(`${PROPS}.environment`, `has too many variables: AgentCore allows ${MAX_ENV} per runtime and the construct sets ${Object.keys(environment).length - Object.keys(props.environment ?? {}).length}`);
    }

    this.runtimeLogGroup = new logs.LogGroup(this, 'RuntimeLogs', {
      retention: core.logRetention,
      encryptionKey: core.key,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.runtime = new agentcore.Runtime(this, 'Runtime', {
      runtimeName: props.runtimeName,
      description: `Hermes Agent ${this.node.path}: one microVM per chat`,
      agentRuntimeArtifact: agentcore.AgentRuntimeArtifact.fromAsset(RUNTIME_ASSET_DIR, {
        ...RUNTIME_ASSET_OPTIONS,
        target: RuntimeTarget.AGENTCORE,
        // AgentCore runs ARM64 (Graviton) images only.
        platform: ecrAssets.Platform.LINUX_ARM64,
      }),
      protocolConfiguration: agentcore.ProtocolType.HTTP,
      authorizerConfiguration: agentcore.RuntimeAuthorizerConfiguration.usingIAM(),
      networkConfiguration: props.vpc
        ? agentcore.RuntimeNetworkConfiguration.usingVpc(this, {
          vpc: props.vpc,
          vpcSubnets: props.vpcSubnets,
          securityGroups: props.securityGroups,
        })
        : agentcore.RuntimeNetworkConfiguration.usingPublicNetwork(),
      lifecycleConfiguration: { idleRuntimeSessionTimeout: idleTimeout, maxLifetime },
      environmentVariables: environment,
      tracingEnabled: true,
      loggingConfigs: [
        { logType: agentcore.LogType.APPLICATION_LOGS, destination: agentcore.LoggingDestination.cloudWatchLogs(this.runtimeLogGroup) },
        { logType: agentcore.LogType.USAGE_LOGS, destination: agentcore.LoggingDestination.cloudWatchLogs(this.runtimeLogGroup) },
      ],
    });
    this.runtime.node.addDependency(core.settingsUpload);
    this.runtimeRole = this.runtime.role;
    this.grantPrincipal = this.runtime.role;
    this._grantAgent(this.runtime.role, { channelTokens: false });

    // --- Dispatcher --------------------------------------------------------------------
    const dispatcherRole = new FunctionRole(this, 'DispatcherRole', {
      logRetention: core.logRetention, encryptionKey: core.key, description: `Hermes dispatcher of ${this.node.path}: invokes the AgentCore runtime and replies`,
    });
    this.dispatcherFunction = new lambda.Function(this, 'Dispatcher', {
      ...functionDefaults(dispatcherRole, 256, dispatcherTimeout),
      description: 'Hermes Agent dispatcher: invokes the AgentCore runtime per queued message and replies on the channel',
      runtime: latestPythonRuntime(),
      handler: 'hermes_aws.agentcore_dispatcher.handler',
      code: runtimeZipCode(),
      environment: {
        HERMES_AWS_AGENT_RUNTIME_ARN: this.runtime.agentRuntimeArn,
        HERMES_AWS_INVOKE_TIMEOUT_SECONDS: String(turnTimeout.toSeconds()),
        HERMES_AWS_QUEUE_URL: core.queue.queueUrl,
        ...core.consumerEnvironment(),
      },
    });
    this.dispatcherFunction.addEventSource(new lambdaEvents.SqsEventSource(core.queue, {
      batchSize: 1,
      reportBatchItemFailures: true,
    }));
    acknowledge(this.dispatcherFunction,
      'SQS event sources cannot have an on-failure destination; failed messages go to the queue\'s own dead-letter queue (maxReceiveCount).',
      'Serverless-LambdaEventSourceMappingDestination');
    core.acknowledgeFunction(this.dispatcherFunction);
    // The idempotency ledger and the token budgets: read and update items, nothing else.
    core.table.grant(dispatcherRole.role, 'dynamodb:GetItem', 'dynamodb:UpdateItem');
    core.key.grant(dispatcherRole.role, 'kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey');
    core.grantChannels(dispatcherRole.role);
    this.runtime.grantInvoke(dispatcherRole.role);

    acknowledgeWildcards(this,
      'Runtime role: object-level S3 access under the agent\'s skills/, memories/ and settings keys, the Bedrock foundation model in the regions its inference profile routes to, ' +
      'AgentCore\'s own runtime log groups and X-Ray (the Runtime construct\'s grants), the image\'s ECR authorization token (no resource-level permissions), ' +
      'schedules of the agent\'s own schedule group (names are chosen at run time) and scheduler:ListSchedules (no resource-level permissions). ' +
      'Dispatcher role: the runtime and its endpoints (runtime ARN /*), X-Ray trace upload.');
    acknowledgeDefaultPolicies(this, 'runtime and function roles');

    // --- Operations ------------------------------------------------------------------
    this.turnErrorsAlarm = countAlarm(this, 'TurnErrorsAlarm',
      `Hermes agent ${this.node.path}: 3 or more turns failed in 5 minutes (throttling, runtime errors or timeouts; each is retried).`,
      this.metricTurnErrors({ period: Duration.minutes(5) }), 3);
    this.dispatcherErrorsAlarm = countAlarm(this, 'DispatcherErrorsAlarm',
      `Hermes agent ${this.node.path}: the dispatcher function failed 3 or more times in 5 minutes (configuration or permissions).`,
      this.metricDispatcherErrors({ period: Duration.minutes(5), statistic: 'Sum' }), 3);
    this.runtimeErrorsAlarm = countAlarm(this, 'RuntimeErrorsAlarm',
      `Hermes agent ${this.node.path}: the AgentCore runtime reported 3 or more errors in 5 minutes.`,
      this.metricRuntimeErrors({ period: Duration.minutes(5) }), 3);
    this._addOperations({
      consumerLabel: 'Dispatcher',
      consumerErrors: this.metricDispatcherErrors({ statistic: 'Sum' }),
      alarms: [this.turnErrorsAlarm, this.dispatcherErrorsAlarm, this.runtimeErrorsAlarm],
    });

    new CfnOutput(this, 'RuntimeArn', { value: this.runtime.agentRuntimeArn, description: 'ARN of the Hermes agent\'s AgentCore runtime' });
  }

  /** Errors of the dispatcher function itself (not of the turns it dispatches). */
  public metricDispatcherErrors(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.dispatcherFunction.metricErrors(props);
  }

  /** Invocations of the AgentCore runtime. */
  public metricRuntimeInvocations(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.runtime.metricInvocations(props);
  }

  /** Errors the AgentCore runtime reports (system and user errors). */
  public metricRuntimeErrors(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.runtime.metricTotalErrors({ statistic: 'Sum', ...props });
  }

  /** Throttled invocations of the AgentCore runtime. */
  public metricRuntimeThrottles(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.runtime.metricThrottles({ statistic: 'Sum', ...props });
  }

  /** Latency of the AgentCore runtime's invocations (ms). */
  public metricRuntimeLatency(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.runtime.metricLatency(props);
  }

  /** Sessions (chat microVMs) of the AgentCore runtime. */
  public metricRuntimeSessions(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.runtime.metricSessionCount(props);
  }
}

/** Validates the runtime's props (before anything is created); returns its timeouts. */
function checkRuntimeProps(props: HermesAgentCoreAgentProps | undefined): { turnTimeout: Duration; idleTimeout: Duration; maxLifetime: Duration } {
  const turnTimeout = props?.turnTimeout ?? Duration.minutes(5);
  checkInteger(`${PROPS}.turnTimeout (in seconds)`, turnTimeout.toSeconds(), 60, 840);
  const idleTimeout = props?.idleTimeout ?? Duration.minutes(15);
  const maxLifetime = props?.maxLifetime ?? Duration.hours(8);
  checkInteger(`${PROPS}.idleTimeout (in seconds)`, idleTimeout.toSeconds(), 60, 28800);
  checkInteger(`${PROPS}.maxLifetime (in seconds)`, maxLifetime.toSeconds(), 60, 28800);
  if (!Token.isUnresolved(idleTimeout.toSeconds()) && !Token.isUnresolved(maxLifetime.toSeconds())
    && idleTimeout.toSeconds() > maxLifetime.toSeconds()) {
    throw new PropError(`${PROPS}.idleTimeout`, `must not be longer than maxLifetime (${idleTimeout.toSeconds()} s > ${maxLifetime.toSeconds()} s)`);
  }
  checkPattern(`${PROPS}.runtimeName`, props?.runtimeName, RUNTIME_NAME,
    'a letter followed by up to 47 letters, digits or underscores (AgentCore allows no hyphens)');
  if (!props?.vpc && (props?.vpcSubnets || props?.securityGroups)) {
    throw new PropError(`${PROPS}.${props.vpcSubnets ? 'vpcSubnets' : 'securityGroups'}`, 'is set, but vpc is not; the runtime uses the public network without a VPC');
  }
  return { turnTimeout, idleTimeout, maxLifetime };
}

