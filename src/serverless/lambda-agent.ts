import { Duration, TimeZone } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as lambdaEvents from 'aws-cdk-lib/aws-lambda-event-sources';
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
import { FunctionRole, functionDefaults } from '../private/lambda';
import { acknowledgeDefaultPolicies, wireAlarms } from '../private/operations';
import { RUNTIME_ASSET_DIR, RUNTIME_ASSET_OPTIONS, RuntimeTarget } from '../private/runtime-assets';
import { ScheduleBridge } from '../private/schedule-bridge';
import { ServerlessCore } from '../private/serverless-core';
import { PropError, checkInteger } from '../private/validate';
import { SlackSecrets, TelegramSecrets } from '../secrets';
import { HermesConfig } from '../settings';

/** Where the worker keeps HERMES_HOME (the only writable place on Lambda). */
const HERMES_HOME = '/tmp/hermes';
/** Toolsets that cannot work on Lambda: no shell, browser, sandbox or sub-agents. */
const LAMBDA_DISABLED_TOOLSETS = ['terminal', 'browser', 'code_execution', 'delegation', 'computer_use'];
/** Hermes's cron tools: only with the EventBridge Scheduler bridge (`scheduledJobs`). */
const CRONJOB_TOOLSET = 'cronjob';

/**
 * Properties of a {@link HermesLambdaAgent}.
 */
export interface HermesLambdaAgentProps extends HermesAgentProps {
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
   * verifies requests with the signing secret, the worker replies with the
   * bot token. The app-level token is not used. Slack member ids in `access`
   * need this prop.
   *
   * @default - no Slack channel
   */
  readonly slack?: SlackSecrets;

  /**
   * Let the agent schedule jobs with Hermes's `cronjob` tool: one-off,
   * interval and cron jobs become EventBridge Scheduler schedules in a
   * schedule group of this agent, which put the job on the agent's queue
   * when due. When false, the `cronjob` toolset is off.
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
   * facts, preferences and summaries are recalled before each turn. Several
   * agents may share one.
   *
   * @default - no AgentCore memory: Hermes's file memories (synced through the bucket's `memories/`)
   */
  readonly memory?: AgentMemory;

  /**
   * Tokens (input + output) each user may spend per UTC day, 1000 to
   * 1,000,000,000. Checked before every turn: a user over budget gets a short
   * message and the model is not called.
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
   * Create a CloudWatch dashboard: ingress accepted and rejected, queue age,
   * turn duration and errors, dead letters, tokens and estimated cost (in
   * total and per user).
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
   * Memory of the worker function (MiB), 1024-10240. Hermes imports a lot.
   *
   * @default 2048
   */
  readonly workerMemorySize?: number;

  /**
   * Timeout of one turn, 1-15 minutes. The queue's visibility timeout is six
   * times this, as AWS recommends for SQS event sources.
   *
   * @default Duration.minutes(5)
   */
  readonly workerTimeout?: Duration;

  /**
   * Attempts per message before it goes to the dead-letter queue (and the
   * user gets one short apology), 1-10.
   *
   * @default 3
   */
  readonly maxReceiveCount?: number;

  /**
   * Reserved concurrency of the worker (also caps parallel chats). AWS keeps
   * 10 executions unreserved per account, so small accounts may not allow it.
   *
   * @default - no reservation
   */
  readonly workerReservedConcurrency?: number;

  /**
   * Register the Function URL with Telegram (`setWebhook`) on deploy and
   * remove it (`deleteWebhook`) on delete. Only with a Telegram channel.
   *
   * @default true
   */
  readonly registerWebhook?: boolean;
}

/**
 * A wake-on-demand Hermes Agent on AWS Lambda, driven by Telegram and/or Slack.
 *
 * Telegram and Slack call a Function URL; a small ingress function verifies
 * the webhook secret or Slack signature, applies the allow-list, puts the
 * update on an SQS FIFO queue (one message group per chat) and answers at
 * once. A container worker runs the Hermes turn with the chat's history from
 * DynamoDB and its skills and memories from S3, persists the turn and
 * replies. Scheduled jobs fire through EventBridge Scheduler into the same
 * queue; long-term memory can live in AgentCore Memory. Nothing runs (or
 * costs) between messages.
 */
export class HermesLambdaAgent extends Construct implements iam.IGrantable {
  /** The ingress function (behind the Function URL). */
  public readonly ingressFunction: lambda.Function;
  /** The Function URL Telegram (`/telegram`) and Slack (`/slack`) call. */
  public readonly functionUrl: lambda.FunctionUrl;
  /** The worker function (container image). */
  public readonly workerFunction: lambda.DockerImageFunction;
  /** The FIFO queue between ingress (and schedules) and worker. */
  public readonly queue: sqs.Queue;
  /** Messages that failed every attempt. */
  public readonly deadLetterQueue: sqs.Queue;
  /** Conversation history, idempotency records, token budgets. */
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
  /** Alarm: the worker keeps failing. */
  public readonly workerErrorsAlarm: cloudwatch.Alarm;
  /** Alarm: messages wait too long in the queue. */
  public readonly queueAgeAlarm: cloudwatch.Alarm;
  /** Alarm: a burst of rejected webhook requests. */
  public readonly rejectedWebhooksAlarm: cloudwatch.Alarm;
  /** The worker's role. */
  public readonly grantPrincipal: iam.IPrincipal;

  private readonly core: ServerlessCore;

  constructor(scope: Construct, id: string, props: HermesLambdaAgentProps) {
    super(scope, id);
    const workerTimeout = props?.workerTimeout ?? Duration.minutes(5);
    const scheduledJobs = props?.scheduledJobs ?? true;
    checkInteger('HermesLambdaAgentProps.workerTimeout (in seconds)', workerTimeout.toSeconds(), 60, 900);
    const memorySize = props?.workerMemorySize ?? 2048;
    checkInteger('HermesLambdaAgentProps.workerMemorySize', memorySize, 1024, 10240);
    checkInteger('HermesLambdaAgentProps.workerReservedConcurrency', props?.workerReservedConcurrency, 1, 1000);
    if (!scheduledJobs && props?.scheduleTimeZone) {
      throw new PropError('HermesLambdaAgentProps.scheduleTimeZone', 'is set, but scheduledJobs is false; remove one of them');
    }
    const core = new ServerlessCore(this, {
      propsName: 'HermesLambdaAgentProps',
      props,
      telegram: props?.telegram,
      slack: props?.slack,
      registerWebhook: props?.registerWebhook ?? true,
      consumerTimeout: workerTimeout,
      maxReceiveCount: props?.maxReceiveCount ?? 3,
      historyMaxMessages: props?.historyMaxMessages ?? 200,
      sessionTtl: props?.sessionTtl,
      dailyTokenBudget: props?.dailyTokenBudget,
      tokenPrices: props?.tokenPrices,
      shapeDisabledToolsets: scheduledJobs ? LAMBDA_DISABLED_TOOLSETS : [...LAMBDA_DISABLED_TOOLSETS, CRONJOB_TOOLSET],
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

    // --- Worker --------------------------------------------------------------------
    const workerRole = new FunctionRole(this, 'WorkerRole', {
      logRetention: core.logRetention, encryptionKey: core.key, description: `Hermes worker of ${this.node.path}: runs agent turns`,
    });
    this.grantPrincipal = workerRole.role;
    this.workerFunction = new lambda.DockerImageFunction(this, 'Worker', {
      ...functionDefaults(workerRole, memorySize, workerTimeout),
      description: 'Hermes Agent worker: runs one agent turn per queued update',
      code: lambda.DockerImageCode.fromImageAsset(RUNTIME_ASSET_DIR, { ...RUNTIME_ASSET_OPTIONS, target: RuntimeTarget.LAMBDA }),
      reservedConcurrentExecutions: props.workerReservedConcurrency,
      environment: {
        HERMES_HOME,
        ...core.agentEnvironment(),
        ...(schedules ? schedules.environment() : {}),
        ...(props.memory ? props.memory._environment() : {}),
      },
    });
    this.workerFunction.node.addDependency(core.settingsUpload);
    this.workerFunction.addEventSource(new lambdaEvents.SqsEventSource(core.queue, {
      batchSize: 1,
      reportBatchItemFailures: true,
    }));
    acknowledge(this.workerFunction,
      'SQS event sources cannot have an on-failure destination; failed messages go to the queue\'s own dead-letter queue (maxReceiveCount).',
      'Serverless-LambdaEventSourceMappingDestination');
    core.acknowledgeFunction(this.workerFunction, props.workerReservedConcurrency !== undefined);
    core.grantAgent(workerRole.role);
    schedules?.grantManage(workerRole.role);
    props.memory?.grantUse(workerRole.role);

    acknowledgeWildcards(this,
      'Function roles: object-level S3 access under the agent\'s skills/, memories/ and settings keys, KMS data-key actions on the agent key, ' +
      'the Bedrock foundation model in the regions its inference profile routes to, X-Ray trace upload (no resource-level permissions), ' +
      'schedules of the agent\'s own schedule group (names are chosen at run time) and scheduler:ListSchedules (no resource-level permissions).');
    acknowledgeDefaultPolicies(this, 'function roles');

    // --- Operations ------------------------------------------------------------------
    this.deadLetterAlarm = core.deadLetterAlarm;
    this.queueAgeAlarm = core.queueAgeAlarm;
    this.rejectedWebhooksAlarm = core.rejectedWebhooksAlarm;
    this.workerErrorsAlarm = new cloudwatch.Alarm(this, 'WorkerErrorsAlarm', {
      alarmDescription: `Hermes agent ${this.node.path}: the worker failed 3 or more times in 5 minutes.`,
      metric: this.workerFunction.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }),
      threshold: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    wireAlarms(this, [this.deadLetterAlarm, this.workerErrorsAlarm, this.queueAgeAlarm, this.rejectedWebhooksAlarm], props.alarmTopic, 'HermesLambdaAgentProps');

    if (props.dashboard ?? true) {
      this.dashboard = agentDashboard(this, 'Dashboard', {
        agentName: core.agentName,
        consumerLabel: 'Worker',
        ingressAccepted: this.metricIngressAccepted(),
        ingressRejected: this.metricIngressRejected(),
        queueAge: this.metricQueueAge({ statistic: 'Maximum' }),
        deadLetters: this.metricDeadLetterMessages(),
        turnDuration: this.metricTurnDuration(),
        turnErrors: this.metricTurnErrors(),
        consumerErrors: this.metricWorkerErrors({ statistic: 'Sum' }),
        inputTokens: this.metricInputTokens(),
        outputTokens: this.metricOutputTokens(),
        estimatedCost: this.metricEstimatedCost(),
        budgetExceeded: this.metricBudgetExceeded(),
      });
    }
  }

  /** Webhook requests accepted by the ingress. */
  public metricIngressAccepted(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.core.metric('IngressAccepted', props);
  }

  /** Webhook requests the ingress rejected (bad secret or signature, method, body...). */
  public metricIngressRejected(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.core.metric('IngressRejected', props);
  }

  /** Duration of agent turns (ms). */
  public metricTurnDuration(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.core.metric('TurnDuration', { statistic: 'p90', ...props });
  }

  /** Failed agent turns. */
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

  /** Worker errors. */
  public metricWorkerErrors(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.workerFunction.metricErrors(props);
  }
}
