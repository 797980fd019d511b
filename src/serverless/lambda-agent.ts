import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as lambdaEvents from 'aws-cdk-lib/aws-lambda-event-sources';
import { Construct } from 'constructs';
import { HermesServerlessAgentBase, ServerlessAgentProps } from './base';
import { acknowledge } from '../private/acknowledge';
import { acknowledgeWildcards } from '../private/iam-wildcards';
import { FunctionRole, functionDefaults } from '../private/lambda';
import { acknowledgeDefaultPolicies, countAlarm } from '../private/operations';
import { RUNTIME_ASSET_DIR, RUNTIME_ASSET_OPTIONS, RuntimeTarget } from '../private/runtime-assets';
import { SERVERLESS_HERMES_HOME } from '../private/serverless-core';
import { checkInteger } from '../private/validate';

const PROPS = 'HermesLambdaAgentProps';

/**
 * Properties of a {@link HermesLambdaAgent}.
 */
export interface HermesLambdaAgentProps extends ServerlessAgentProps {
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
   * Reserved concurrency of the worker (also caps parallel chats). AWS keeps
   * 10 executions unreserved per account, so small accounts may not allow it.
   *
   * @default - no reservation
   */
  readonly workerReservedConcurrency?: number;
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
export class HermesLambdaAgent extends HermesServerlessAgentBase {
  /** The worker function (container image). */
  public readonly workerFunction: lambda.DockerImageFunction;
  /** Alarm: the worker keeps failing. */
  public readonly workerErrorsAlarm: cloudwatch.Alarm;
  /** The worker's role. */
  public readonly grantPrincipal: iam.IPrincipal;

  constructor(scope: Construct, id: string, props: HermesLambdaAgentProps) {
    const workerTimeout = props?.workerTimeout ?? Duration.minutes(5);
    checkInteger(`${PROPS}.workerTimeout (in seconds)`, workerTimeout.toSeconds(), 60, 900);
    const memorySize = props?.workerMemorySize ?? 2048;
    checkInteger(`${PROPS}.workerMemorySize`, memorySize, 1024, 10240);
    checkInteger(`${PROPS}.workerReservedConcurrency`, props?.workerReservedConcurrency, 1, 1000);
    super(scope, id, props, PROPS, workerTimeout);
    const core = this._core;

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
      environment: { HERMES_HOME: SERVERLESS_HERMES_HOME, ...this._agentEnvironment({ channelTokens: true }) },
    });
    this.workerFunction.node.addDependency(core.settingsUpload);
    this.workerFunction.addEventSource(new lambdaEvents.SqsEventSource(core.queue, {
      batchSize: 1,
      reportBatchItemFailures: true,
    }));
    acknowledge(this.workerFunction,
      'SQS event sources cannot have an on-failure destination; failed messages go to the queue\'s own dead-letter queue (maxReceiveCount).',
      'Serverless-LambdaEventSourceMappingDestination');
    core.acknowledgeFunction(this.workerFunction, `${PROPS}.workerReservedConcurrency`);
    this._grantAgent(workerRole.role, { channelTokens: true });

    acknowledgeWildcards(this,
      'Function roles: object-level S3 access under the agent\'s skills/, memories/ and settings keys, KMS data-key actions on the agent key, ' +
      'the Bedrock foundation model in the regions its inference profile routes to, X-Ray trace upload (no resource-level permissions), ' +
      'schedules of the agent\'s own schedule group (names are chosen at run time) and scheduler:ListSchedules (no resource-level permissions).');
    acknowledgeDefaultPolicies(this, 'function roles');

    // --- Operations ------------------------------------------------------------------
    this.workerErrorsAlarm = countAlarm(this, 'WorkerErrorsAlarm',
      `Hermes agent ${this.node.path}: the worker failed 3 or more times in 5 minutes.`,
      this.metricWorkerErrors({ period: Duration.minutes(5), statistic: 'Sum' }), 3);
    this._addOperations({
      consumerLabel: 'Worker',
      consumerErrors: this.metricWorkerErrors({ statistic: 'Sum' }),
      alarms: [this.workerErrorsAlarm],
    });
  }

  /** Worker errors. */
  public metricWorkerErrors(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.workerFunction.metricErrors(props);
  }
}
