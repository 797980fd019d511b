import * as crypto from 'crypto';
import { CfnOutput, CustomResource, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as backup from 'aws-cdk-lib/aws-backup';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as lambdaEvents from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { AgentAccess } from '../access';
import { HermesAgentProps } from '../agent-props';
import { AgentBackupPlan } from '../backup-plan';
import { AgentEncryptionKey } from '../encryption-key';
import { KnowledgeBucket } from '../knowledge-bucket';
import { AgentModel } from '../model';
import { acknowledge } from '../private/acknowledge';
import { acknowledgeBucketDeploymentHandler } from '../private/bucket-deployment';
import { acknowledgeWildcards } from '../private/iam-wildcards';
import { FunctionRole, functionDefaults, latestPythonRuntime, runtimeZipCode } from '../private/lambda';
import { acknowledgeDefaultPolicies, requireAccess, wireAlarms } from '../private/operations';
import { RUNTIME_ASSET_DIR, RUNTIME_ASSET_OPTIONS, RuntimeTarget } from '../private/runtime-assets';
import { grantSecretRead } from '../private/secret-access';
import { PropError, checkInteger } from '../private/validate';
import { TelegramSecrets } from '../secrets';
import { HermesConfig } from '../settings';

/** Metric namespace of the serverless runtime's embedded metrics. */
const METRIC_NAMESPACE = 'HermesAgent/Serverless';
/** Where the worker keeps HERMES_HOME (the only writable place on Lambda). */
const HERMES_HOME = '/tmp/hermes';
/** Key prefix of rendered settings documents in the agent's bucket. */
const SETTINGS_PREFIX = '.hermes-aws/settings/';
/** Toolsets that cannot work on Lambda: no shell, browser, sandbox or sub-agents. */
const LAMBDA_DISABLED_TOOLSETS = ['terminal', 'browser', 'code_execution', 'delegation', 'computer_use', 'cronjob'];
/** Telegram update types the ingress handles (also sent to setWebhook). */
const TELEGRAM_UPDATES = ['message'];

/**
 * Properties of a {@link HermesLambdaAgent}.
 */
export interface HermesLambdaAgentProps extends HermesAgentProps {
  /**
   * The Telegram bot token and generated webhook secret.
   *
   * @default - a new TelegramSecrets (placeholder bot token to fill in)
   */
  readonly telegram?: TelegramSecrets;

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
   * remove it (`deleteWebhook`) on delete.
   *
   * @default true
   */
  readonly registerWebhook?: boolean;

}

/**
 * A wake-on-demand Hermes Agent on AWS Lambda, driven by Telegram.
 *
 * Telegram calls a Function URL; a small ingress function verifies the
 * webhook secret, applies the allow-list and puts the update on an SQS FIFO
 * queue (one message group per chat) and answers at once. A container
 * worker runs the Hermes turn with the chat's history from DynamoDB and its
 * skills and memories from S3, persists the turn and replies. Nothing runs
 * (or costs) between messages.
 */
export class HermesLambdaAgent extends Construct implements iam.IGrantable {
  /** The ingress function (behind the Function URL). */
  public readonly ingressFunction: lambda.Function;
  /** The Function URL Telegram calls (path `/telegram`). */
  public readonly functionUrl: lambda.FunctionUrl;
  /** The worker function (container image). */
  public readonly workerFunction: lambda.DockerImageFunction;
  /** The FIFO queue between ingress and worker. */
  public readonly queue: sqs.Queue;
  /** Messages that failed every attempt. */
  public readonly deadLetterQueue: sqs.Queue;
  /** Conversation history, idempotency records. */
  public readonly table: dynamodb.Table;
  /** Skills, memories and the rendered settings. */
  public readonly knowledgeBucket: KnowledgeBucket;
  /** The Telegram secrets. */
  public readonly telegram: TelegramSecrets;
  /** The rendered Hermes configuration. */
  public readonly hermesConfig: HermesConfig;
  /** The model. */
  public readonly model: AgentModel;
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

  private readonly agentName: string;

  constructor(scope: Construct, id: string, props: HermesLambdaAgentProps) {
    super(scope, id);
    requireAccess(props, 'HermesLambdaAgentProps', '{ telegram: [...] }');
    for (const platform of props.access._platforms()) {
      if (platform !== 'telegram') {
        throw new PropError('HermesLambdaAgentProps.access', `allows ${platform} users, but this agent only answers on Telegram`);
      }
    }
    const workerTimeout = props.workerTimeout ?? Duration.minutes(5);
    checkInteger('HermesLambdaAgentProps.workerTimeout (in seconds)', workerTimeout.toSeconds(), 60, 900);
    const maxReceiveCount = props.maxReceiveCount ?? 3;
    checkInteger('HermesLambdaAgentProps.maxReceiveCount', maxReceiveCount, 1, 10);
    const memorySize = props.workerMemorySize ?? 2048;
    checkInteger('HermesLambdaAgentProps.workerMemorySize', memorySize, 1024, 10240);
    const historyMaxMessages = props.historyMaxMessages ?? 200;
    checkInteger('HermesLambdaAgentProps.historyMaxMessages', historyMaxMessages, 10, 2000);
    checkInteger('HermesLambdaAgentProps.workerReservedConcurrency', props.workerReservedConcurrency, 1, 1000);
    if (props.sessionTtl) checkInteger('HermesLambdaAgentProps.sessionTtl (in days)', props.sessionTtl.toDays({ integral: false }), 1, 3650);

    const key = props.encryptionKey ?? AgentEncryptionKey.of(this);
    // The functions' log groups are encrypted by CloudWatch Logs with this key.
    if (props.encryptionKey) AgentEncryptionKey.allowLogGroups(props.encryptionKey);
    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    this.agentName = this.node.path;

    // --- Stores --------------------------------------------------------------
    this.table = new dynamodb.Table(this, 'Sessions', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: key,
      timeToLiveAttribute: 'expires_at',
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    if (props.backup ?? true) {
      AgentBackupPlan.protect(this, 'TableBackup', backup.BackupResource.fromDynamoDbTable(this.table), key);
    } else {
      acknowledge(this.table, 'Backups were switched off explicitly (HermesLambdaAgentProps.backup = false); point-in-time recovery stays on.',
        'NIST.800.53.R5-DynamoDBInBackupPlan', 'HIPAA.Security-DynamoDBInBackupPlan');
    }
    this.knowledgeBucket = props.knowledgeBucket ?? new KnowledgeBucket(this, 'Knowledge', { encryptionKey: key });
    this.telegram = props.telegram ?? new TelegramSecrets(this, 'Telegram', { encryptionKey: key });

    // --- Queue ---------------------------------------------------------------
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      fifo: true,
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: key,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    this.queue = new sqs.Queue(this, 'Queue', {
      fifo: true,
      contentBasedDeduplication: false,
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: key,
      enforceSSL: true,
      visibilityTimeout: Duration.seconds(workerTimeout.toSeconds() * 6),
      retentionPeriod: Duration.days(4),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount },
    });
    acknowledge(this.deadLetterQueue, 'This is the dead-letter queue of the agent\'s FIFO queue; messages here are kept 14 days for inspection and redrive.',
      'AwsSolutions-SQS3', 'Serverless-SQSRedrivePolicy');

    // --- Settings ----------------------------------------------------------------
    this.model = props.model ?? AgentModel.bedrock('us.anthropic.claude-sonnet-4-6');
    this.hermesConfig = HermesConfig.render({
      model: this.model,
      settings: props.settings,
      shapeDisabledToolsets: LAMBDA_DISABLED_TOOLSETS,
      shapeConfig: { terminal: { cwd: HERMES_HOME } },
    });
    // Lambda's environment is capped at 4 KB, a SOUL alone may be 20 KB: the
    // document goes to S3 under a content-addressed key, so a change is a new
    // key, a new environment and so a new function version.
    const document = this.hermesConfig.toDocument(this);
    // A deploy-time value (a token in baseUrl, an MCP server URL...) resolves to an intrinsic, not a string.
    const resolvedDocument = Stack.of(this).resolve(document);
    const documentText = typeof resolvedDocument === 'string' ? resolvedDocument : JSON.stringify(resolvedDocument);
    const settingsKey = `${SETTINGS_PREFIX}${this.node.addr}/${crypto.createHash('sha256').update(documentText).digest('hex').slice(0, 16)}.json`;
    const settingsUpload = new s3deploy.BucketDeployment(this, 'Settings', {
      sources: [s3deploy.Source.data(settingsKey, document)],
      destinationBucket: this.knowledgeBucket.bucket,
      prune: false,
      retainOnDelete: true,
      memoryLimit: 256,
    });
    acknowledgeBucketDeploymentHandler(this);

    // --- Ingress -------------------------------------------------------------------
    const ingressRole = new FunctionRole(this, 'IngressRole', {
      logRetention, encryptionKey: key, description: `Hermes ingress of ${this.node.path}: verify, allow-list, enqueue`,
    });
    this.ingressFunction = new lambda.Function(this, 'Ingress', {
      ...functionDefaults(ingressRole, 256, Duration.seconds(10)),
      description: 'Hermes Agent ingress: verifies Telegram webhooks and enqueues updates',
      runtime: latestPythonRuntime(),
      handler: 'hermes_aws.lambda_ingress.handler',
      code: runtimeZipCode(),
      environment: {
        HERMES_AWS_QUEUE_URL: this.queue.queueUrl,
        HERMES_AWS_TELEGRAM_WEBHOOK_SECRET_ARN: this.telegram.webhookSecret.secretArn,
        ...telegramAllowList(props.access),
        HERMES_AWS_AGENT_NAME: this.agentName,
      },
    });
    this.queue.grantSendMessages(ingressRole.role);
    grantSecretRead(this.telegram.webhookSecret, ingressRole.role);
    this.functionUrl = this.ingressFunction.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.NONE });
    acknowledge(this.ingressFunction,
      'Telegram cannot sign requests with AWS credentials, so the Function URL is public; every request must carry the generated webhook secret token, checked in constant time before anything else is read.',
      'NIST.800.53.R5-LambdaFunctionPublicAccessProhibited', 'HIPAA.Security-LambdaFunctionPublicAccessProhibited');

    // --- Worker --------------------------------------------------------------------
    const workerRole = new FunctionRole(this, 'WorkerRole', {
      logRetention, encryptionKey: key, description: `Hermes worker of ${this.node.path}: runs agent turns`,
    });
    this.grantPrincipal = workerRole.role;
    const secretArns: { [env: string]: string } = {};
    for (const [name, secret] of Object.entries(this.hermesConfig.secretEnvironment)) {
      secretArns[name] = secret.secretArn;
      grantSecretRead(secret, workerRole.role);
    }
    this.workerFunction = new lambda.DockerImageFunction(this, 'Worker', {
      ...functionDefaults(workerRole, memorySize, workerTimeout),
      description: 'Hermes Agent worker: runs one agent turn per queued update',
      code: lambda.DockerImageCode.fromImageAsset(RUNTIME_ASSET_DIR, { ...RUNTIME_ASSET_OPTIONS, target: RuntimeTarget.LAMBDA }),
      reservedConcurrentExecutions: props.workerReservedConcurrency,
      environment: {
        HERMES_HOME,
        HERMES_AWS_SETTINGS_S3: `s3://${this.knowledgeBucket.bucket.bucketName}/${settingsKey}`,
        HERMES_AWS_TABLE: this.table.tableName,
        HERMES_AWS_BUCKET: this.knowledgeBucket.bucket.bucketName,
        HERMES_AWS_SKILLS_PREFIX: KnowledgeBucket.SKILLS_PREFIX,
        HERMES_AWS_MEMORIES_PREFIX: 'memories/',
        HERMES_AWS_TELEGRAM_BOT_TOKEN_ARN: this.telegram.botToken.secretArn,
        HERMES_AWS_SECRET_ARNS: Stack.of(this).toJsonString(secretArns),
        HERMES_AWS_MAX_RECEIVE_COUNT: String(maxReceiveCount),
        HERMES_AWS_HISTORY_MAX_MESSAGES: String(historyMaxMessages),
        ...(props.sessionTtl ? { HERMES_AWS_SESSION_TTL_DAYS: String(props.sessionTtl.toDays()) } : {}),
        HERMES_AWS_AGENT_NAME: this.agentName,
      },
    });
    this.workerFunction.node.addDependency(settingsUpload);
    this.workerFunction.addEventSource(new lambdaEvents.SqsEventSource(this.queue, {
      batchSize: 1,
      reportBatchItemFailures: true,
    }));
    acknowledge(this.workerFunction,
      'SQS event sources cannot have an on-failure destination; failed messages go to the queue\'s own dead-letter queue (maxReceiveCount).',
      'Serverless-LambdaEventSourceMappingDestination');
    this.table.grantReadWriteData(workerRole.role);
    this.knowledgeBucket.grantReadWrite(workerRole.role, KnowledgeBucket.SKILLS_PREFIX);
    this.knowledgeBucket.grantReadWrite(workerRole.role, 'memories/');
    this.knowledgeBucket.grantRead(workerRole.role, settingsKey);
    grantSecretRead(this.telegram.botToken, workerRole.role);
    this.model.grantInvoke(workerRole.role);

    // --- Webhook registration -----------------------------------------------------
    if (props.registerWebhook ?? true) {
      this.webhookRegistrationFunction = this.addWebhookRegistration(logRetention, key);
    }

    // --- Findings shared by our functions -------------------------------------------
    for (const fn of [this.ingressFunction, this.workerFunction, ...(this.webhookRegistrationFunction ? [this.webhookRegistrationFunction] : [])]) {
      acknowledge(fn,
        'The function talks to Telegram and model endpoints on the internet and to AWS APIs; outside a VPC it needs no NAT (the point of this shape is zero idle cost).',
        'NIST.800.53.R5-LambdaInsideVPC', 'HIPAA.Security-LambdaInsideVPC');
      acknowledge(fn,
        'Invoked synchronously (Function URL, custom resource) or by an SQS event source whose queue has its own dead-letter queue; an asynchronous-invocation DLQ would never receive anything.',
        'Serverless-LambdaDLQ', 'NIST.800.53.R5-LambdaDLQ', 'HIPAA.Security-LambdaDLQ');
      if (fn !== this.workerFunction || props.workerReservedConcurrency === undefined) {
        acknowledge(fn,
          'Reserved concurrency is optional (workerReservedConcurrency): AWS keeps 10 executions unreserved per account, so a default reservation fails to deploy in new accounts.',
          'NIST.800.53.R5-LambdaConcurrency', 'HIPAA.Security-LambdaConcurrency');
      }
    }
    acknowledgeWildcards(this,
      'Function roles: object-level S3 access under the agent\'s skills/, memories/ and settings keys, KMS data-key actions on the agent key, ' +
      'the Bedrock foundation model in the regions its inference profile routes to, and X-Ray trace upload (no resource-level permissions).');
    acknowledgeDefaultPolicies(this, 'function roles');

    // --- Operations ------------------------------------------------------------------
    this.deadLetterAlarm = new cloudwatch.Alarm(this, 'DeadLetterAlarm', {
      alarmDescription: `Hermes agent ${this.node.path}: a message failed every attempt and is in the dead-letter queue (the user got an apology).`,
      metric: this.metricDeadLetterMessages({ period: Duration.minutes(1) }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.workerErrorsAlarm = new cloudwatch.Alarm(this, 'WorkerErrorsAlarm', {
      alarmDescription: `Hermes agent ${this.node.path}: the worker failed 3 or more times in 5 minutes.`,
      metric: this.workerFunction.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }),
      threshold: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.queueAgeAlarm = new cloudwatch.Alarm(this, 'QueueAgeAlarm', {
      alarmDescription: `Hermes agent ${this.node.path}: a message has waited longer than two turn timeouts for the worker.`,
      metric: this.metricQueueAge({ period: Duration.minutes(1), statistic: 'Maximum' }),
      threshold: workerTimeout.toSeconds() * 2,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 3,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.rejectedWebhooksAlarm = new cloudwatch.Alarm(this, 'RejectedWebhooksAlarm', {
      alarmDescription: `Hermes agent ${this.node.path}: 20 or more webhook requests were rejected in 5 minutes (wrong secret, bad input) — someone may be probing the Function URL.`,
      metric: this.metricIngressRejected({ period: Duration.minutes(5) }),
      threshold: 20,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    wireAlarms(this, [this.deadLetterAlarm, this.workerErrorsAlarm, this.queueAgeAlarm, this.rejectedWebhooksAlarm], props.alarmTopic, 'HermesLambdaAgentProps');

    new CfnOutput(this, 'WebhookUrl', { value: `${this.functionUrl.url}telegram`, description: 'Telegram webhook URL of the Hermes agent' });
  }

  /** Webhook requests accepted by the ingress. */
  public metricIngressAccepted(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.runtimeMetric('IngressAccepted', props);
  }

  /** Webhook requests the ingress rejected (bad secret, method, body...). */
  public metricIngressRejected(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.runtimeMetric('IngressRejected', props);
  }

  /** Duration of agent turns (ms). */
  public metricTurnDuration(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.runtimeMetric('TurnDuration', { statistic: 'p90', ...props });
  }

  /** Failed agent turns. */
  public metricTurnErrors(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.runtimeMetric('TurnErrors', props);
  }

  /** Model input tokens. */
  public metricInputTokens(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.runtimeMetric('InputTokens', props);
  }

  /** Model output tokens. */
  public metricOutputTokens(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.runtimeMetric('OutputTokens', props);
  }

  /** Age of the oldest queued message (seconds). */
  public metricQueueAge(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.queue.metricApproximateAgeOfOldestMessage(props);
  }

  /** Messages in the dead-letter queue. */
  public metricDeadLetterMessages(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum', ...props });
  }

  /** Worker errors. */
  public metricWorkerErrors(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.workerFunction.metricErrors(props);
  }

  private runtimeMetric(metricName: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: METRIC_NAMESPACE,
      metricName,
      dimensionsMap: { Agent: this.agentName },
      statistic: 'Sum',
      ...props,
    });
  }

  /**
   * A custom resource (handled directly by our own function, no provider
   * framework) that calls setWebhook on create/update and deleteWebhook on
   * delete. It also answers a direct invocation, for after the bot token is stored.
   */
  private addWebhookRegistration(logRetention: logs.RetentionDays, key: kms.IKey): lambda.Function {
    const role = new FunctionRole(this, 'WebhookRegistrationRole', {
      logRetention, encryptionKey: key, description: `Registers the Telegram webhook of ${this.node.path}`,
    });
    const fn = new lambda.Function(this, 'WebhookRegistration', {
      ...functionDefaults(role, 256, Duration.seconds(60)),
      description: 'Hermes Agent: registers the Telegram webhook (setWebhook / deleteWebhook)',
      runtime: latestPythonRuntime(),
      handler: 'hermes_aws.webhook_registration.handler',
      code: runtimeZipCode(),
      environment: {
        HERMES_AWS_BOT_TOKEN_SECRET_ARN: this.telegram.botToken.secretArn,
        HERMES_AWS_WEBHOOK_SECRET_ARN: this.telegram.webhookSecret.secretArn,
        HERMES_AWS_WEBHOOK_URL: `${this.functionUrl.url}telegram`,
        HERMES_AWS_ALLOWED_UPDATES: TELEGRAM_UPDATES.join(','),
      },
    });
    grantSecretRead(this.telegram.botToken, role.role);
    grantSecretRead(this.telegram.webhookSecret, role.role);
    new CustomResource(this, 'TelegramWebhook', {
      serviceToken: fn.functionArn,
      resourceType: 'Custom::HermesTelegramWebhook',
      properties: {
        BotTokenSecretArn: this.telegram.botToken.secretArn,
        WebhookSecretArn: this.telegram.webhookSecret.secretArn,
        Url: `${this.functionUrl.url}telegram`,
        AllowedUpdates: TELEGRAM_UPDATES,
      },
    });
    new CfnOutput(this, 'RegisterWebhookCommand', {
      value: `aws lambda invoke --function-name ${fn.functionName} --cli-binary-format raw-in-base64-out --payload '{"action":"register"}' /dev/stdout`,
      description: 'Run after storing the bot token to register the Telegram webhook without a redeploy',
    });
    return fn;
  }
}

function telegramAllowList(access: AgentAccess): { [name: string]: string } {
  if (access.allowsEveryone) return { HERMES_AWS_TELEGRAM_ALLOW_ALL: 'true' };
  return { HERMES_AWS_TELEGRAM_ALLOWED_USERS: access._users('telegram').join(',') };
}
