import { Duration, TimeZone } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { HermesAgentProps } from '../agent-props';
import { KnowledgeBucket } from '../knowledge-bucket';
import { AgentMemory } from '../memory';
import { AgentModel, TokenPrices } from '../model';
import { agentDashboard } from '../private/dashboard';
import { countAlarm, wireAlarms } from '../private/operations';
import { ScheduleBridge } from '../private/schedule-bridge';
import { AgentGrantOptions, SERVERLESS_HERMES_HOME, ServerlessCore } from '../private/serverless-core';
import { PropError } from '../private/validate';
import { SlackSecrets, TelegramSecrets } from '../secrets';
import { HermesConfig } from '../settings';

/** Toolsets the serverless runtimes cannot support: no shell, browser, sandbox or sub-agents. */
const SERVERLESS_DISABLED_TOOLSETS = ['terminal', 'browser', 'code_execution', 'delegation', 'computer_use'];
/** Hermes's cron tools: only with the EventBridge Scheduler bridge (`scheduledJobs`). */
const CRONJOB_TOOLSET = 'cronjob';

/**
 * Properties every serverless Hermes agent ({@link HermesLambdaAgent},
 * {@link HermesAgentCoreAgent}) shares: channels, conversations, scheduled
 * jobs, long-term memory, budgets and operations.
 */
export interface ServerlessAgentProps extends HermesAgentProps {
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
   * verifies requests with the signing secret, the agent replies with the
   * bot token. The app-level token is not used. Slack member ids in `access`
   * need this prop.
   *
   * @default - no Slack channel
   */
  readonly slack?: SlackSecrets;

  /**
   * Register the Function URL with Telegram (`setWebhook`) on deploy and
   * remove it (`deleteWebhook`) on delete. Only with a Telegram channel.
   *
   * @default true
   */
  readonly registerWebhook?: boolean;

  /**
   * Let the agent schedule jobs with Hermes's `cronjob` tool: one-off,
   * interval and cron jobs become EventBridge Scheduler schedules in a
   * schedule group of this agent, which put the job on the agent's queue
   * when due; it runs like a message. When false, the `cronjob` toolset is
   * off.
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
   * agents may share one. Failed memory calls never fail a turn; they are
   * counted (`metricMemoryFailures()`) and alarmed on.
   *
   * @default - no AgentCore memory: Hermes's file memories (synced through the bucket's `memories/`)
   */
  readonly memory?: AgentMemory;

  /**
   * Tokens (input + output) each user may spend per UTC day, 1000 to
   * 1,000,000,000. Checked before every turn (on AgentCore, before the
   * runtime is invoked): a user over budget gets a short message and the
   * model is not called.
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
   * user gets one short apology), 1-10.
   *
   * @default 3
   */
  readonly maxReceiveCount?: number;

  /**
   * Create a CloudWatch dashboard: ingress accepted and rejected, queue age,
   * turn duration and errors, dead letters, tokens and estimated cost (in
   * total and per user).
   *
   * @default true
   */
  readonly dashboard?: boolean;
}

/** What a shape hands to {@link HermesServerlessAgentBase._addOperations}. */
interface ShapeOperations {
  /** What consumes the queue, e.g. `Worker`, for the dashboard. */
  readonly consumerLabel: string;
  /** Errors of the queue's consumer function. */
  readonly consumerErrors: cloudwatch.IMetric;
  /** The shape's own alarms. */
  readonly alarms: cloudwatch.Alarm[];
}

/**
 * What every serverless Hermes agent has: a public ingress (Function URL with
 * Telegram and Slack routes), a FIFO queue with a dead-letter queue, the
 * sessions table, the knowledge bucket and rendered settings, scheduled jobs,
 * optional AgentCore memory, alarms, a dashboard and the runtime's metrics.
 * A shape adds what consumes the queue and runs Hermes turns.
 */
export abstract class HermesServerlessAgentBase extends Construct implements iam.IGrantable {
  /** The ingress function (behind the Function URL). */
  public readonly ingressFunction: lambda.Function;
  /** The Function URL Telegram (`/telegram`) and Slack (`/slack`) call. */
  public readonly functionUrl: lambda.FunctionUrl;
  /** The FIFO queue between the ingress (and schedules) and what runs turns. */
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
  /** The role of what runs Hermes turns. */
  public abstract readonly grantPrincipal: iam.IPrincipal;

  /** @internal */
  protected readonly _core: ServerlessCore;
  /** @internal */
  protected readonly _schedules?: ScheduleBridge;
  private readonly propsName: string;
  private readonly serverlessProps: ServerlessAgentProps;
  private createdDashboard?: cloudwatch.Dashboard;
  private createdMemoryFailuresAlarm?: cloudwatch.Alarm;

  /**
   * @param propsName the shape's props interface, for validation messages
   * @param consumerTimeout how long the queue's consumer may take per message
   */
  protected constructor(scope: Construct, id: string, props: ServerlessAgentProps, propsName: string, consumerTimeout: Duration) {
    super(scope, id);
    this.propsName = propsName;
    this.serverlessProps = props;
    const scheduledJobs = props?.scheduledJobs ?? true;
    if (!scheduledJobs && props?.scheduleTimeZone) {
      throw new PropError(`${propsName}.scheduleTimeZone`, 'is set, but scheduledJobs is false; remove one of them');
    }
    const core = new ServerlessCore(this, {
      propsName,
      props,
      telegram: props?.telegram,
      slack: props?.slack,
      registerWebhook: props?.registerWebhook ?? true,
      consumerTimeout,
      maxReceiveCount: props?.maxReceiveCount ?? 3,
      historyMaxMessages: props?.historyMaxMessages ?? 200,
      sessionTtl: props?.sessionTtl,
      dailyTokenBudget: props?.dailyTokenBudget,
      tokenPrices: props?.tokenPrices,
      shapeDisabledToolsets: scheduledJobs ? SERVERLESS_DISABLED_TOOLSETS : [...SERVERLESS_DISABLED_TOOLSETS, CRONJOB_TOOLSET],
      shapeConfig: { terminal: { cwd: SERVERLESS_HERMES_HOME } },
    });
    this._core = core;
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
    this.deadLetterAlarm = core.deadLetterAlarm;
    this.queueAgeAlarm = core.queueAgeAlarm;
    this.rejectedWebhooksAlarm = core.rejectedWebhooksAlarm;
    this.memory = props.memory;

    // --- Scheduled jobs -------------------------------------------------------------
    this._schedules = scheduledJobs ? new ScheduleBridge(this, 'Schedules', { queue: core.queue, timeZone: props.scheduleTimeZone }) : undefined;
    this.scheduleGroup = this._schedules?.group;
    this.schedulerRole = this._schedules?.role;
  }

  /** The CloudWatch dashboard, if on. */
  public get dashboard(): cloudwatch.Dashboard | undefined {
    return this.createdDashboard;
  }

  /** Alarm: calls to the AgentCore memory keep failing, if `memory` is set. */
  public get memoryFailuresAlarm(): cloudwatch.Alarm | undefined {
    return this.createdMemoryFailuresAlarm;
  }

  /** Webhook requests accepted by the ingress. */
  public metricIngressAccepted(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this._core.metric('IngressAccepted', props);
  }

  /** Webhook requests the ingress rejected (bad secret or signature, method, body...). */
  public metricIngressRejected(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this._core.metric('IngressRejected', props);
  }

  /**
   * Duration of agent turns (ms): on Lambda the worker's turn, on AgentCore
   * the dispatcher's invocation and reply.
   */
  public metricTurnDuration(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this._core.metric('TurnDuration', { statistic: 'p90', ...props });
  }

  /** Failed agent turns (each failure is retried until maxReceiveCount). */
  public metricTurnErrors(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this._core.metric('TurnErrors', props);
  }

  /** Model input tokens. */
  public metricInputTokens(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this._core.metric('InputTokens', props);
  }

  /** Model output tokens. */
  public metricOutputTokens(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this._core.metric('OutputTokens', props);
  }

  /** Estimated model cost in USD (from `tokenPrices`; zero without them). */
  public metricEstimatedCost(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this._core.metric('EstimatedCost', props);
  }

  /** Turns refused because the user had spent the daily token budget. */
  public metricBudgetExceeded(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this._core.metric('BudgetExceeded', props);
  }

  /**
   * Failed calls to the AgentCore memory (recall before a turn, record after
   * it), counted by the runtime as an embedded metric. The turn goes on without them.
   */
  public metricMemoryFailures(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this._core.metric('MemoryFailures', props);
  }

  /**
   * Model tokens (input + output) of one user, e.g. `telegram:123456789` or
   * `slack:U012ABCDEF`.
   */
  public metricUserTokens(user: string, props?: cloudwatch.MetricOptions): cloudwatch.IMetric {
    const dimensions = { Agent: this._core.agentName, User: user };
    return new cloudwatch.MathExpression({
      expression: 'input + output',
      usingMetrics: {
        input: this._core.metric('InputTokens', { ...props, dimensionsMap: dimensions }),
        output: this._core.metric('OutputTokens', { ...props, dimensionsMap: dimensions }),
      },
      label: `Tokens of ${user}`,
      period: props?.period,
    });
  }

  /** Estimated model cost (USD) of one user, e.g. `telegram:123456789`. */
  public metricUserEstimatedCost(user: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this._core.metric('EstimatedCost', { ...props, dimensionsMap: { Agent: this._core.agentName, User: user } });
  }

  /** Age of the oldest queued message (seconds). */
  public metricQueueAge(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.queue.metricApproximateAgeOfOldestMessage(props);
  }

  /** Messages in the dead-letter queue. */
  public metricDeadLetterMessages(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this._core.metricDeadLetterMessages(props);
  }

  /**
   * Environment of what runs Hermes turns: stores, settings, the scheduled
   * jobs' and the memory's variables when they are on, and (when it also
   * consumes the queue) the consumer's: tokens, attempts, budgets.
   * @internal
   */
  protected _agentEnvironment(options: AgentGrantOptions): { [name: string]: string } {
    return {
      ...this._core.agentEnvironment(),
      ...((options.channelTokens ?? true) ? this._core.consumerEnvironment() : {}),
      ...(this._schedules ? this._schedules.environment() : {}),
      ...(this.memory ? this.memory._environment() : {}),
    };
  }

  /**
   * Grants what runs Hermes turns everything its environment names.
   * @internal
   */
  protected _grantAgent(grantee: iam.IGrantable, options: AgentGrantOptions): void {
    this._core.grantAgent(grantee, options);
    this._schedules?.grantManage(grantee);
    this.memory?.grantUse(grantee);
  }

  /**
   * The operations every shape shares, once its consumer exists: the memory
   * failures metric and alarm, alarm actions and the dashboard.
   * @internal
   */
  protected _addOperations(shape: ShapeOperations): void {
    const props = this.serverlessProps;
    const alarms = [this.deadLetterAlarm, this.queueAgeAlarm, this.rejectedWebhooksAlarm, ...shape.alarms];
    if (this.memory) {
      // The runtime's memory provider emits MemoryFailures as an embedded metric (by Agent).
      this.createdMemoryFailuresAlarm = countAlarm(this, 'MemoryFailuresAlarm',
        `Hermes agent ${this.node.path}: 5 or more AgentCore Memory calls failed in 15 minutes (turns go on without long-term memory; see the runtime's "memory" log lines).`,
        this.metricMemoryFailures({ period: Duration.minutes(15) }), 5);
      alarms.push(this.createdMemoryFailuresAlarm);
    }
    wireAlarms(this, alarms, props.alarmTopic, this.propsName);

    if (props.dashboard ?? true) {
      this.createdDashboard = agentDashboard(this, 'Dashboard', {
        agentName: this._core.agentName,
        consumerLabel: shape.consumerLabel,
        ingressAccepted: this.metricIngressAccepted(),
        ingressRejected: this.metricIngressRejected(),
        queueAge: this.metricQueueAge({ statistic: 'Maximum' }),
        deadLetters: this.metricDeadLetterMessages(),
        turnDuration: this.metricTurnDuration(),
        turnErrors: this.metricTurnErrors(),
        consumerErrors: shape.consumerErrors,
        memoryFailures: this.memory ? this.metricMemoryFailures() : undefined,
        inputTokens: this.metricInputTokens(),
        outputTokens: this.metricOutputTokens(),
        estimatedCost: this.metricEstimatedCost(),
        budgetExceeded: this.metricBudgetExceeded(),
      });
    }
  }
}
