import { CfnOutput, Duration, RemovalPolicy, TimeZone, Token } from 'aws-cdk-lib';
import * as agentcore from 'aws-cdk-lib/aws-bedrockagentcore';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as lambdaEvents from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { HermesAgentProps } from '../agent-props';
import { KnowledgeBucket } from '../knowledge-bucket';
import { AgentMemory } from '../memory';
import { AgentModel, TokenPrices } from '../model';
import { acknowledge } from '../private/acknowledge';
import { agentDashboard } from '../private/dashboard';
import { acknowledgeWildcards } from '../private/iam-wildcards';
import { FunctionRole, functionDefaults, latestPythonRuntime, runtimeZipCode } from '../private/lambda';
import { acknowledgeDefaultPolicies, wireAlarms } from '../private/operations';
import { RUNTIME_ASSET_DIR, RUNTIME_ASSET_OPTIONS, RuntimeTarget } from '../private/runtime-assets';
import { ScheduleBridge } from '../private/schedule-bridge';
import { grantSecretRead } from '../private/secret-access';
import { ServerlessCore } from '../private/serverless-core';
import { PropError, checkInteger, checkPattern } from '../private/validate';
import { SlackSecrets, TelegramSecrets } from '../secrets';
import { HermesConfig } from '../settings';

const PROPS = 'HermesAgentCoreAgentProps';
/** Toolsets the AgentCore image does not support (as on Lambda: no shell, browser, sandbox or sub-agents). */
const AGENTCORE_DISABLED_TOOLSETS = ['terminal', 'browser', 'code_execution', 'delegation', 'computer_use'];
/** Hermes's cron tools: only with the EventBridge Scheduler bridge (`scheduledJobs`). */
const CRONJOB_TOOLSET = 'cronjob';
/** Where the image keeps HERMES_HOME (a per-session cache; state lives in DynamoDB and S3). */
const HERMES_HOME = '/tmp/hermes';
/** Where the runtime keeps file memories in the bucket (the serverless shape's prefix). */
const MEMORIES_PREFIX = 'memories/';
/** AgentCore's runtime name rule (CloudFormation `AgentRuntimeName`). */
const RUNTIME_NAME = /^[a-zA-Z][a-zA-Z0-9_]{0,47}$/;
/** AgentCore's environment variable name rule. */
const ENV_NAME = /^[a-zA-Z_][a-zA-Z0-9_]{0,99}$/;
/** AgentCore accepts at most this many environment variables per runtime. */
const MAX_ENV = 50;
/** Time the dispatcher keeps after the runtime's answer: delivery, ledger, metrics. */
const DISPATCH_MARGIN = Duration.seconds(60);
/** Environment variables the bot tokens reach consumers through (the runtime never replies itself). */
const CHANNEL_ENV = ['HERMES_AWS_TELEGRAM_BOT_TOKEN_ARN', 'HERMES_AWS_SLACK_BOT_TOKEN_ARN'];

/**
 * Properties of a {@link HermesAgentCoreAgent}.
 */
export interface HermesAgentCoreAgentProps extends HermesAgentProps {
  /**
   * The Telegram channel: bot token and generated webhook secret, served at
   * `<function url>telegram`.
   *
   * @default - a new TelegramSecrets (placeholder bot token to fill in) when
   * `slack` is not set either; otherwise no Telegram channel
   */
  readonly telegram?: TelegramSecrets;

  /**
   * The Slack channel (Events API at `<function url>slack`): the ingress
   * verifies requests with the signing secret, the dispatcher replies with the
   * bot token. Slack member ids in `access` need this prop.
   *
   * @default - no Slack channel
   */
  readonly slack?: SlackSecrets;

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
   * queue's visibility timeout six times that.
   *
   * @default Duration.minutes(5)
   */
  readonly turnTimeout?: Duration;

  /**
   * Let the agent schedule jobs with Hermes's `cronjob` tool: one-off,
   * interval and cron jobs become EventBridge Scheduler schedules in a
   * schedule group of this agent, which put the job on the agent's queue
   * when due; the dispatcher runs them on the runtime like messages. When
   * false, the `cronjob` toolset is off.
   *
   * @default true
   */
  readonly scheduledJobs?: boolean;

  /**
   * Time zone of cron expressions of scheduled jobs.
   *
   * @default - UTC
   */
  readonly scheduleTimeZone?: TimeZone;

  /**
   * Long-term memory on Amazon Bedrock AgentCore Memory: turns are recorded
   * as events (the user is the actor, the chat the session) and relevant
   * facts, preferences and summaries are recalled before each turn.
   *
   * @default - no AgentCore memory: Hermes's file memories (synced through the bucket's `memories/`)
   */
  readonly memory?: AgentMemory;

  /**
   * Tokens (input + output) each user may spend per UTC day, 1000 to
   * 1,000,000,000. Checked by the dispatcher before the runtime is invoked:
   * a user over budget gets a short message and no microVM starts.
   *
   * @default - no budget
   */
  readonly dailyTokenBudget?: number;

  /**
   * Token prices behind the `EstimatedCost` metric (an estimate, not a bill).
   *
   * @default - the model's `tokenPrices` (Bedrock list prices for known
   * Claude and Nova models); without them no cost is estimated
   */
  readonly tokenPrices?: TokenPrices;

  /**
   * Create a CloudWatch dashboard: ingress, queue age, turns, errors, dead
   * letters, tokens and estimated cost (in total and per user).
   *
   * @default true
   */
  readonly dashboard?: boolean;

  /**
   * Delete a chat's conversation after this long without a message
   * (DynamoDB TTL), 1-3650 days.
   *
   * @default - conversations are kept
   */
  readonly sessionTtl?: Duration;

  /**
   * Number of past messages handed to the model each turn, 10-2000.
   *
   * @default 200
   */
  readonly historyMaxMessages?: number;

  /**
   * Attempts per message before it goes to the dead-letter queue (and the
   * user gets one short apology), 1-10. Throttled and failed invocations are
   * retried after a short back-off.
   *
   * @default 3
   */
  readonly maxReceiveCount?: number;

  /**
   * Register the Function URL with Telegram (`setWebhook`) on deploy and
   * remove it (`deleteWebhook`) on delete. Only with a Telegram channel.
   *
   * @default true
   */
  readonly registerWebhook?: boolean;
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
export class HermesAgentCoreAgent extends Construct implements iam.IGrantable {
  /** The AgentCore runtime. */
  public readonly runtime: agentcore.Runtime;
  /** The runtime's execution role. */
  public readonly runtimeRole: iam.IRole;
  /** Where the runtime's application and usage logs are delivered. */
  public readonly runtimeLogGroup: logs.LogGroup;
  /** The dispatcher function (queue -> runtime -> channel). */
  public readonly dispatcherFunction: lambda.Function;
  /** The ingress function (behind the Function URL). */
  public readonly ingressFunction: lambda.Function;
  /** The Function URL Telegram (`/telegram`) and Slack (`/slack`) call. */
  public readonly functionUrl: lambda.FunctionUrl;
  /** The FIFO queue between ingress (and schedules) and dispatcher. */
  public readonly queue: sqs.Queue;
  /** Messages that failed every attempt. */
  public readonly deadLetterQueue: sqs.Queue;
  /** Conversation history, idempotency records, token budgets, cron jobs. */
  public readonly table: dynamodb.Table;
  /** Skills, memories and the rendered settings. */
  public readonly knowledgeBucket: KnowledgeBucket;
  /** The Telegram channel's secrets, if the agent answers on Telegram. */
  public readonly telegram?: TelegramSecrets;
  /** The Slack channel's secrets, if the agent answers on Slack. */
  public readonly slack?: SlackSecrets;
  /** The AgentCore memory, if any. */
  public readonly memory?: AgentMemory;
  /** The schedule group of the agent's scheduled jobs, if on. */
  public readonly scheduleGroup?: scheduler.ScheduleGroup;
  /** The role EventBridge Scheduler assumes to queue scheduled jobs, if on. */
  public readonly schedulerRole?: iam.IRole;
  /** The CloudWatch dashboard, if on. */
  public readonly dashboard?: cloudwatch.Dashboard;
  /** The rendered Hermes configuration. */
  public readonly hermesConfig: HermesConfig;
  /** The model. */
  public readonly model: AgentModel;
  /** Token prices behind the cost metric, if known. */
  public readonly tokenPrices?: TokenPrices;
  /** The function that registers the webhook, if any. */
  public readonly webhookRegistrationFunction?: lambda.Function;
  /** Alarm: a message reached the dead-letter queue. */
  public readonly deadLetterAlarm: cloudwatch.Alarm;
  /** Alarm: messages wait too long in the queue. */
  public readonly queueAgeAlarm: cloudwatch.Alarm;
  /** Alarm: a burst of rejected webhook requests. */
  public readonly rejectedWebhooksAlarm: cloudwatch.Alarm;
  /** Alarm: turns keep failing (throttling, runtime errors, timeouts). */
  public readonly turnErrorsAlarm: cloudwatch.Alarm;
  /** Alarm: the dispatcher function itself keeps failing. */
  public readonly dispatcherErrorsAlarm: cloudwatch.Alarm;
  /** Alarm: the AgentCore runtime reports errors. */
  public readonly runtimeErrorsAlarm: cloudwatch.Alarm;
  /** The runtime's role (where Hermes runs). */
  public readonly grantPrincipal: iam.IPrincipal;

  private readonly core: ServerlessCore;

  constructor(scope: Construct, id: string, props: HermesAgentCoreAgentProps) {
    super(scope, id);
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
    const scheduledJobs = props?.scheduledJobs ?? true;
    if (!scheduledJobs && props?.scheduleTimeZone) {
      throw new PropError(`${PROPS}.scheduleTimeZone`, 'is set, but scheduledJobs is false; remove one of them');
    }
    const dispatcherTimeout = turnTimeout.plus(DISPATCH_MARGIN);

    const core = new ServerlessCore(this, {
      propsName: PROPS,
      props,
      telegram: props?.telegram,
      slack: props?.slack,
      registerWebhook: props?.registerWebhook ?? true,
      consumerTimeout: dispatcherTimeout,
      maxReceiveCount: props?.maxReceiveCount ?? 3,
      historyMaxMessages: props?.historyMaxMessages ?? 200,
      sessionTtl: props?.sessionTtl,
      dailyTokenBudget: props?.dailyTokenBudget,
      tokenPrices: props?.tokenPrices,
      shapeDisabledToolsets: scheduledJobs ? AGENTCORE_DISABLED_TOOLSETS : [...AGENTCORE_DISABLED_TOOLSETS, CRONJOB_TOOLSET],
      shapeConfig: { terminal: { cwd: HERMES_HOME } },
    });
    this.core = core;
    this.table = core.table;
    this.knowledgeBucket = core.knowledgeBucket;
    this.telegram = core.telegram;
    this.slack = core.slack;
    this.queue = core.queue;
    this.deadLetterQueue = core.deadLetterQueue;
    this.model = core.model;
    this.tokenPrices = core.tokenPrices;
    this.hermesConfig = core.hermesConfig;
    this.ingressFunction = core.ingressFunction;
    this.functionUrl = core.functionUrl;
    this.webhookRegistrationFunction = core.webhookRegistrationFunction;
    this.memory = props.memory;

    // --- Scheduled jobs -------------------------------------------------------------
    const schedules = scheduledJobs ? new ScheduleBridge(this, 'Schedules', { queue: core.queue, timeZone: props.scheduleTimeZone }) : undefined;
    this.scheduleGroup = schedules?.group;
    this.schedulerRole = schedules?.role;

    // --- Runtime ---------------------------------------------------------------------
    // The runtime runs turns; it never replies on a channel, so it gets no bot token.
    const agentEnvironment = core.agentEnvironment();
    for (const name of CHANNEL_ENV) delete agentEnvironment[name];
    const environment: { [name: string]: string } = {
      ...agentEnvironment,
      ...(schedules ? schedules.environment() : {}),
      ...(props.memory ? props.memory._environment() : {}),
    };
    for (const [name, value] of Object.entries(props.environment ?? {})) {
      checkPattern(`${PROPS}.environment`, name, ENV_NAME, 'keyed by names of letters, digits and "_" that do not start with a digit (at most 100 characters)');
      if (name.startsWith('HERMES_AWS_') || name === 'HERMES_HOME' || environment[name] !== undefined) {
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
    this.grantRuntime(this.runtime.role);
    schedules?.grantManage(this.runtime.role);
    props.memory?.grantUse(this.runtime.role);

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
        ...pick(core.agentEnvironment(), [
          'HERMES_AWS_TABLE', ...CHANNEL_ENV, 'HERMES_AWS_MAX_RECEIVE_COUNT', 'HERMES_AWS_DAILY_TOKEN_BUDGET',
          'HERMES_AWS_TOKEN_PRICES', 'HERMES_AWS_AGENT_NAME',
        ]),
      },
    });
    this.dispatcherFunction.addEventSource(new lambdaEvents.SqsEventSource(core.queue, {
      batchSize: 1,
      reportBatchItemFailures: true,
    }));
    acknowledge(this.dispatcherFunction,
      'SQS event sources cannot have an on-failure destination; failed messages go to the queue\'s own dead-letter queue (maxReceiveCount).',
      'Serverless-LambdaEventSourceMappingDestination');
    core.acknowledgeFunction(this.dispatcherFunction, false);
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
    this.deadLetterAlarm = core.deadLetterAlarm;
    this.queueAgeAlarm = core.queueAgeAlarm;
    this.rejectedWebhooksAlarm = core.rejectedWebhooksAlarm;
    this.turnErrorsAlarm = new cloudwatch.Alarm(this, 'TurnErrorsAlarm', {
      alarmDescription: `Hermes agent ${this.node.path}: 3 or more turns failed in 5 minutes (throttling, runtime errors or timeouts; each is retried).`,
      metric: this.metricTurnErrors({ period: Duration.minutes(5) }),
      threshold: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.dispatcherErrorsAlarm = new cloudwatch.Alarm(this, 'DispatcherErrorsAlarm', {
      alarmDescription: `Hermes agent ${this.node.path}: the dispatcher function failed 3 or more times in 5 minutes (configuration or permissions).`,
      metric: this.metricDispatcherErrors({ period: Duration.minutes(5), statistic: 'Sum' }),
      threshold: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.runtimeErrorsAlarm = new cloudwatch.Alarm(this, 'RuntimeErrorsAlarm', {
      alarmDescription: `Hermes agent ${this.node.path}: the AgentCore runtime reported 3 or more errors in 5 minutes.`,
      metric: this.metricRuntimeErrors({ period: Duration.minutes(5) }),
      threshold: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    wireAlarms(this, [
      this.deadLetterAlarm, this.queueAgeAlarm, this.rejectedWebhooksAlarm,
      this.turnErrorsAlarm, this.dispatcherErrorsAlarm, this.runtimeErrorsAlarm,
    ], props.alarmTopic, PROPS);

    if (props.dashboard ?? true) {
      this.dashboard = agentDashboard(this, 'Dashboard', {
        agentName: core.agentName,
        consumerLabel: 'Dispatcher',
        ingressAccepted: this.metricIngressAccepted(),
        ingressRejected: this.metricIngressRejected(),
        queueAge: this.metricQueueAge({ statistic: 'Maximum' }),
        deadLetters: this.metricDeadLetterMessages(),
        turnDuration: this.metricTurnDuration(),
        turnErrors: this.metricTurnErrors(),
        consumerErrors: this.metricDispatcherErrors({ statistic: 'Sum' }),
        inputTokens: this.metricInputTokens(),
        outputTokens: this.metricOutputTokens(),
        estimatedCost: this.metricEstimatedCost(),
        budgetExceeded: this.metricBudgetExceeded(),
      });
    }

    new CfnOutput(this, 'RuntimeArn', { value: this.runtime.agentRuntimeArn, description: 'ARN of the Hermes agent\'s AgentCore runtime' });
  }

  /** Webhook requests accepted by the ingress. */
  public metricIngressAccepted(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.core.metric('IngressAccepted', props);
  }

  /** Webhook requests the ingress rejected (bad secret or signature, method, body...). */
  public metricIngressRejected(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.core.metric('IngressRejected', props);
  }

  /** Duration of agent turns as the dispatcher sees them, invocation and reply (ms). */
  public metricTurnDuration(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.core.metric('TurnDuration', { statistic: 'p90', ...props });
  }

  /** Failed agent turns (each failure is retried until maxReceiveCount). */
  public metricTurnErrors(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.core.metric('TurnErrors', props);
  }

  /** Model input tokens. */
  public metricInputTokens(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.core.metric('InputTokens', props);
  }

  /** Model output tokens. */
  public metricOutputTokens(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.core.metric('OutputTokens', props);
  }

  /** Estimated model cost in USD (from `tokenPrices`; zero without them). */
  public metricEstimatedCost(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.core.metric('EstimatedCost', props);
  }

  /** Turns refused because the user had spent the daily token budget. */
  public metricBudgetExceeded(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.core.metric('BudgetExceeded', props);
  }

  /**
   * Model tokens (input + output) of one user, e.g. `telegram:123456789` or
   * `slack:U012ABCDEF`.
   */
  public metricUserTokens(user: string, props?: cloudwatch.MetricOptions): cloudwatch.IMetric {
    const dimensions = { Agent: this.core.agentName, User: user };
    return new cloudwatch.MathExpression({
      expression: 'input + output',
      usingMetrics: {
        input: this.core.metric('InputTokens', { ...props, dimensionsMap: dimensions }),
        output: this.core.metric('OutputTokens', { ...props, dimensionsMap: dimensions }),
      },
      label: `Tokens of ${user}`,
      period: props?.period,
    });
  }

  /** Estimated model cost (USD) of one user, e.g. `telegram:123456789`. */
  public metricUserEstimatedCost(user: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.core.metric('EstimatedCost', { ...props, dimensionsMap: { Agent: this.core.agentName, User: user } });
  }

  /** Age of the oldest queued message (seconds). */
  public metricQueueAge(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.queue.metricApproximateAgeOfOldestMessage(props);
  }

  /** Messages in the dead-letter queue. */
  public metricDeadLetterMessages(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.core.metricDeadLetterMessages(props);
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

  /**
   * What runs Hermes turns gets: the table, the bucket's skills/ and
   * memories/ prefixes, its settings document, the settings' secrets and the
   * model. No bot token: the dispatcher replies.
   */
  private grantRuntime(role: iam.IRole): void {
    for (const secret of Object.values(this.core.hermesConfig.secretEnvironment)) grantSecretRead(secret, role);
    this.core.table.grantReadWriteData(role);
    this.core.knowledgeBucket.grantReadWrite(role, KnowledgeBucket.SKILLS_PREFIX);
    this.core.knowledgeBucket.grantReadWrite(role, MEMORIES_PREFIX);
    this.core.knowledgeBucket.grantRead(role, this.core.settingsKey);
    this.core.model.grantInvoke(role);
  }
}

function pick(values: { [name: string]: string }, names: string[]): { [name: string]: string } {
  return Object.fromEntries(names.filter((n) => values[n] !== undefined).map((n) => [n, values[n]]));
}
