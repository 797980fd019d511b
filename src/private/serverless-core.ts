import * as crypto from 'crypto';
import { CfnOutput, CustomResource, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as backup from 'aws-cdk-lib/aws-backup';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { acknowledge } from './acknowledge';
import { acknowledgeBucketDeploymentHandler } from './bucket-deployment';
import { FunctionRole, functionDefaults, latestPythonRuntime, runtimeZipCode } from './lambda';
import { countAlarm, requireAccess } from './operations';
import { grantSecretRead } from './secret-access';
import { PropError, checkInteger, checkNumber } from './validate';
import { AgentAccess } from '../access';
import { HermesAgentProps } from '../agent-props';
import { AgentBackupPlan } from '../backup-plan';
import { AgentEncryptionKey } from '../encryption-key';
import { KnowledgeBucket } from '../knowledge-bucket';
import { AgentModel, TokenPrices } from '../model';
import { SlackSecrets, TelegramSecrets } from '../secrets';
import { HermesConfig } from '../settings';

/** Metric namespace of the serverless runtime's embedded metrics (ingress, worker, dispatcher). */
export const METRIC_NAMESPACE = 'HermesAgent/Serverless';
/** Key prefix of rendered settings documents in the agent's bucket. */
const SETTINGS_PREFIX = '.hermes-aws/settings/';
/** Where an agent keeps Hermes's file memories in its bucket. */
export const MEMORIES_PREFIX = 'memories/';
/** Where the serverless runtimes keep HERMES_HOME (a per-invocation cache; state lives in DynamoDB and S3). */
export const SERVERLESS_HERMES_HOME = '/tmp/hermes';
/** Telegram update types the ingress handles (also sent to setWebhook). */
const TELEGRAM_UPDATES = ['message'];
/** Channels the ingress answers on. */
const CHANNELS = ['telegram', 'slack'];

/** Options of {@link ServerlessCore}. */
export interface ServerlessCoreOptions {
  /** Name of the shape's props interface, for messages (`HermesLambdaAgentProps`). */
  readonly propsName: string;
  /** The shape's props. */
  readonly props: HermesAgentProps;
  /** Telegram channel; with neither channel a Telegram placeholder is created. */
  readonly telegram?: TelegramSecrets;
  /** Slack channel. */
  readonly slack?: SlackSecrets;
  /** Register the Telegram webhook on deploy. */
  readonly registerWebhook: boolean;
  /** How long the queue's consumer may take per message (visibility timeout 6 ×, queue-age alarm 2 ×). */
  readonly consumerTimeout: Duration;
  /** Attempts per message before the dead-letter queue. */
  readonly maxReceiveCount: number;
  /** Past messages handed to the model each turn. */
  readonly historyMaxMessages: number;
  /** Conversation TTL. */
  readonly sessionTtl?: Duration;
  /** Daily token budget per user. */
  readonly dailyTokenBudget?: number;
  /** Token prices of the cost metric (defaults to the model's). */
  readonly tokenPrices?: TokenPrices;
  /** Toolsets the shape cannot support. */
  readonly shapeDisabledToolsets: string[];
  /** Config the shape must set. */
  readonly shapeConfig?: { [key: string]: any };
}

/** What runs Hermes turns may use besides the stores, the settings and the model. */
export interface AgentGrantOptions {
  /**
   * Whether the process also consumes the queue and replies on the channels
   * (the Lambda worker): the bot tokens, ledger, budgets. False when a
   * dispatcher does that (AgentCore).
   * @default true
   */
  readonly channelTokens?: boolean;
}

/**
 * The parts of a serverless Hermes agent that do not run the agent: stores
 * (sessions table, knowledge bucket, rendered settings), the channels'
 * secrets, the public ingress (Function URL, Telegram `/telegram` and Slack
 * `/slack` routes), the FIFO queue and its dead-letter queue, Telegram
 * webhook registration, and their alarms. A shape adds what consumes the
 * queue: the worker function (HermesLambdaAgent) or a dispatcher and an
 * AgentCore runtime.
 *
 * Not a construct of its own: everything is created directly in `scope` so
 * the resources keep the construct ids (and logical ids) they always had.
 */
export class ServerlessCore {
  public readonly key: kms.IKey;
  public readonly logRetention: logs.RetentionDays;
  /** The agent's name in metrics and logs (its construct path). */
  public readonly agentName: string;
  public readonly table: dynamodb.Table;
  public readonly knowledgeBucket: KnowledgeBucket;
  public readonly telegram?: TelegramSecrets;
  public readonly slack?: SlackSecrets;
  public readonly queue: sqs.Queue;
  public readonly deadLetterQueue: sqs.Queue;
  public readonly model: AgentModel;
  public readonly hermesConfig: HermesConfig;
  /** Key of the rendered settings document in the bucket. */
  public readonly settingsKey: string;
  /** The upload of the settings document (consumers depend on it). */
  public readonly settingsUpload: s3deploy.BucketDeployment;
  public readonly ingressFunction: lambda.Function;
  public readonly functionUrl: lambda.FunctionUrl;
  public readonly webhookRegistrationFunction?: lambda.Function;
  public readonly deadLetterAlarm: cloudwatch.Alarm;
  public readonly queueAgeAlarm: cloudwatch.Alarm;
  public readonly rejectedWebhooksAlarm: cloudwatch.Alarm;
  /** Token prices of the cost metric, if known. */
  public readonly tokenPrices?: TokenPrices;

  private readonly scope: Construct;
  private readonly options: ServerlessCoreOptions;

  constructor(scope: Construct, options: ServerlessCoreOptions) {
    this.scope = scope;
    this.options = options;
    const { props, propsName } = options;
    requireAccess(props, propsName, '{ telegram: [...] }');
    checkInteger(`${propsName}.maxReceiveCount`, options.maxReceiveCount, 1, 10);
    checkInteger(`${propsName}.historyMaxMessages`, options.historyMaxMessages, 10, 2000);
    if (options.sessionTtl) checkInteger(`${propsName}.sessionTtl (in days)`, options.sessionTtl.toDays({ integral: false }), 1, 3650);
    checkInteger(`${propsName}.dailyTokenBudget`, options.dailyTokenBudget, 1000, 1_000_000_000);
    checkNumber(`${propsName}.tokenPrices.inputPerMillion`, options.tokenPrices?.inputPerMillion, 0, 1000);
    checkNumber(`${propsName}.tokenPrices.outputPerMillion`, options.tokenPrices?.outputPerMillion, 0, 1000);

    this.key = props.encryptionKey ?? AgentEncryptionKey.of(scope);
    // The functions' log groups are encrypted by CloudWatch Logs with this key.
    if (props.encryptionKey) AgentEncryptionKey.allowLogGroups(props.encryptionKey);
    this.logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    this.agentName = scope.node.path;
    const key = this.key;

    // --- Channels ------------------------------------------------------------------
    this.slack = options.slack;
    // Telegram is the default channel: a placeholder when no channel is given at all.
    this.telegram = options.telegram ?? (options.slack ? undefined : new TelegramSecrets(scope, 'Telegram', { encryptionKey: key }));
    const channels = CHANNELS.filter((c) => (c === 'telegram' ? this.telegram : this.slack) !== undefined);
    for (const platform of props.access._platforms()) {
      if (!CHANNELS.includes(platform)) {
        throw new PropError(`${propsName}.access`, `allows ${platform} users, but this agent only answers on Telegram and Slack`);
      }
      if (!channels.includes(platform)) {
        throw new PropError(`${propsName}.access`, `allows ${platform} users, but ${propsName}.${platform} is not set, so the agent does not answer on ${platform === 'slack' ? 'Slack' : 'Telegram'}`);
      }
    }

    // --- Stores --------------------------------------------------------------
    this.table = new dynamodb.Table(scope, 'Sessions', {
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
      AgentBackupPlan.protect(scope, 'TableBackup', backup.BackupResource.fromDynamoDbTable(this.table), key);
    } else {
      acknowledge(this.table, `Backups were switched off explicitly (${propsName}.backup = false); point-in-time recovery stays on.`,
        'NIST.800.53.R5-DynamoDBInBackupPlan', 'HIPAA.Security-DynamoDBInBackupPlan');
    }
    this.knowledgeBucket = props.knowledgeBucket ?? new KnowledgeBucket(scope, 'Knowledge', { encryptionKey: key });

    // --- Queue ---------------------------------------------------------------
    this.deadLetterQueue = new sqs.Queue(scope, 'DeadLetterQueue', {
      fifo: true,
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: key,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    this.queue = new sqs.Queue(scope, 'Queue', {
      fifo: true,
      // The ingress sets explicit deduplication ids; a fired schedule relies on
      // its body (which carries the tick's time) to drop a duplicate delivery.
      contentBasedDeduplication: true,
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: key,
      enforceSSL: true,
      visibilityTimeout: Duration.seconds(options.consumerTimeout.toSeconds() * 6),
      retentionPeriod: Duration.days(4),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: options.maxReceiveCount },
    });
    acknowledge(this.deadLetterQueue, 'This is the dead-letter queue of the agent\'s FIFO queue; messages here are kept 14 days for inspection and redrive.',
      'AwsSolutions-SQS3', 'Serverless-SQSRedrivePolicy');

    // --- Settings ----------------------------------------------------------------
    this.model = props.model ?? AgentModel.bedrock('us.anthropic.claude-sonnet-4-6');
    this.tokenPrices = options.tokenPrices ?? this.model.tokenPrices;
    this.hermesConfig = HermesConfig.render({
      model: this.model,
      settings: props.settings,
      shapeDisabledToolsets: options.shapeDisabledToolsets,
      shapeConfig: options.shapeConfig,
    });
    // Lambda's environment is capped at 4 KB, a SOUL alone may be 20 KB: the
    // document goes to S3 under a content-addressed key, so a change is a new
    // key, a new environment and so a new function version.
    const document = this.hermesConfig.toDocument(scope);
    // A deploy-time value (a token in baseUrl, an MCP server URL...) resolves to an intrinsic, not a string.
    const resolvedDocument = Stack.of(scope).resolve(document);
    const documentText = typeof resolvedDocument === 'string' ? resolvedDocument : JSON.stringify(resolvedDocument);
    this.settingsKey = `${SETTINGS_PREFIX}${scope.node.addr}/${crypto.createHash('sha256').update(documentText).digest('hex').slice(0, 16)}.json`;
    this.settingsUpload = new s3deploy.BucketDeployment(scope, 'Settings', {
      sources: [s3deploy.Source.data(this.settingsKey, document)],
      destinationBucket: this.knowledgeBucket.bucket,
      prune: false,
      retainOnDelete: true,
      memoryLimit: 256,
    });
    acknowledgeBucketDeploymentHandler(scope);

    // --- Ingress -------------------------------------------------------------------
    const ingressRole = new FunctionRole(scope, 'IngressRole', {
      logRetention: this.logRetention, encryptionKey: key, description: `Hermes ingress of ${scope.node.path}: verify, allow-list, enqueue`,
    });
    this.ingressFunction = new lambda.Function(scope, 'Ingress', {
      ...functionDefaults(ingressRole, 256, Duration.seconds(10)),
      description: `Hermes Agent ingress: verifies ${channels.map((c) => (c === 'slack' ? 'Slack events' : 'Telegram webhooks')).join(' and ')} and enqueues updates`,
      runtime: latestPythonRuntime(),
      handler: 'hermes_aws.lambda_ingress.handler',
      code: runtimeZipCode(),
      environment: {
        HERMES_AWS_QUEUE_URL: this.queue.queueUrl,
        ...(this.telegram ? {
          HERMES_AWS_TELEGRAM_WEBHOOK_SECRET_ARN: this.telegram.webhookSecret.secretArn,
          ...allowList(props.access, 'telegram'),
        } : {}),
        ...(this.slack ? {
          HERMES_AWS_SLACK_SIGNING_SECRET_ARN: this.slack.signingSecret.secretArn,
          ...allowList(props.access, 'slack'),
        } : {}),
        HERMES_AWS_AGENT_NAME: this.agentName,
      },
    });
    this.queue.grantSendMessages(ingressRole.role);
    if (this.telegram) grantSecretRead(this.telegram.webhookSecret, ingressRole.role);
    if (this.slack) grantSecretRead(this.slack.signingSecret, ingressRole.role);
    this.functionUrl = this.ingressFunction.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.NONE });
    acknowledge(this.ingressFunction,
      'Telegram and Slack cannot sign requests with AWS credentials, so the Function URL is public; every Telegram request must carry the generated webhook secret token ' +
      '(constant-time check) and every Slack request a valid v0 signature within 5 minutes, checked before anything else is read.',
      'NIST.800.53.R5-LambdaFunctionPublicAccessProhibited', 'HIPAA.Security-LambdaFunctionPublicAccessProhibited');
    this.acknowledgeFunction(this.ingressFunction);

    // --- Webhook registration -----------------------------------------------------
    if (options.registerWebhook && this.telegram) {
      this.webhookRegistrationFunction = this.addWebhookRegistration(this.telegram);
      this.acknowledgeFunction(this.webhookRegistrationFunction);
    }

    // --- Alarms --------------------------------------------------------------------
    this.deadLetterAlarm = countAlarm(scope, 'DeadLetterAlarm',
      `Hermes agent ${scope.node.path}: a message failed every attempt and is in the dead-letter queue (the user got an apology).`,
      this.metricDeadLetterMessages({ period: Duration.minutes(1) }), 1);
    this.queueAgeAlarm = new cloudwatch.Alarm(scope, 'QueueAgeAlarm', {
      alarmDescription: `Hermes agent ${scope.node.path}: a message has waited longer than two turn timeouts for the worker.`,
      metric: this.queue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(1), statistic: 'Maximum' }),
      threshold: options.consumerTimeout.toSeconds() * 2,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 3,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.rejectedWebhooksAlarm = countAlarm(scope, 'RejectedWebhooksAlarm',
      `Hermes agent ${scope.node.path}: 20 or more webhook requests were rejected in 5 minutes (wrong secret or signature, bad input) — someone may be probing the Function URL.`,
      this.metric('IngressRejected', { period: Duration.minutes(5) }), 20);

    if (this.telegram) {
      new CfnOutput(scope, 'WebhookUrl', { value: `${this.functionUrl.url}telegram`, description: 'Telegram webhook URL of the Hermes agent' });
    }
    if (this.slack) {
      new CfnOutput(scope, 'SlackEventsUrl', {
        value: `${this.functionUrl.url}slack`,
        description: 'Slack Events API request URL of the Hermes agent (Event Subscriptions > Request URL)',
      });
    }
  }

  /**
   * Environment of whatever runs Hermes turns (worker, AgentCore runtime):
   * settings, stores, secrets, history and TTL.
   */
  public agentEnvironment(): { [name: string]: string } {
    const secretArns: { [env: string]: string } = {};
    for (const [name, secret] of Object.entries(this.hermesConfig.secretEnvironment)) secretArns[name] = secret.secretArn;
    const o = this.options;
    return {
      HERMES_AWS_SETTINGS_S3: `s3://${this.knowledgeBucket.bucket.bucketName}/${this.settingsKey}`,
      HERMES_AWS_TABLE: this.table.tableName,
      HERMES_AWS_BUCKET: this.knowledgeBucket.bucket.bucketName,
      HERMES_AWS_SKILLS_PREFIX: KnowledgeBucket.SKILLS_PREFIX,
      HERMES_AWS_MEMORIES_PREFIX: MEMORIES_PREFIX,
      HERMES_AWS_SECRET_ARNS: Stack.of(this.scope).toJsonString(secretArns),
      HERMES_AWS_HISTORY_MAX_MESSAGES: String(o.historyMaxMessages),
      ...(o.sessionTtl ? { HERMES_AWS_SESSION_TTL_DAYS: String(o.sessionTtl.toDays()) } : {}),
      HERMES_AWS_AGENT_NAME: this.agentName,
    };
  }

  /**
   * Environment of whatever consumes the queue and replies (worker,
   * dispatcher): the ledger's table, bot tokens, attempts, budgets and prices.
   */
  public consumerEnvironment(): { [name: string]: string } {
    const o = this.options;
    const prices = this.tokenPrices;
    return {
      HERMES_AWS_TABLE: this.table.tableName,
      ...this.channelEnvironment(),
      HERMES_AWS_MAX_RECEIVE_COUNT: String(o.maxReceiveCount),
      ...(o.dailyTokenBudget !== undefined ? { HERMES_AWS_DAILY_TOKEN_BUDGET: String(o.dailyTokenBudget) } : {}),
      ...(prices ? {
        HERMES_AWS_TOKEN_PRICES: Stack.of(this.scope).toJsonString({
          inputPerMillion: prices.inputPerMillion,
          outputPerMillion: prices.outputPerMillion,
        }),
      } : {}),
      HERMES_AWS_AGENT_NAME: this.agentName,
    };
  }

  /** Environment of whatever replies on the channels: the bot tokens. */
  public channelEnvironment(): { [name: string]: string } {
    return {
      ...(this.telegram ? { HERMES_AWS_TELEGRAM_BOT_TOKEN_ARN: this.telegram.botToken.secretArn } : {}),
      ...(this.slack ? { HERMES_AWS_SLACK_BOT_TOKEN_ARN: this.slack.botToken.secretArn } : {}),
    };
  }

  /**
   * Grants what runs Hermes turns: the table, the bucket's skills/ and
   * memories/ prefixes, its settings document, the settings' secrets, the
   * model and (unless `channelTokens` is false) the channels' bot tokens.
   */
  public grantAgent(grantee: iam.IGrantable, options: AgentGrantOptions = {}): void {
    for (const secret of Object.values(this.hermesConfig.secretEnvironment)) grantSecretRead(secret, grantee);
    this.table.grantReadWriteData(grantee);
    this.knowledgeBucket.grantReadWrite(grantee, KnowledgeBucket.SKILLS_PREFIX);
    this.knowledgeBucket.grantReadWrite(grantee, MEMORIES_PREFIX);
    this.knowledgeBucket.grantRead(grantee, this.settingsKey);
    if (options.channelTokens ?? true) this.grantChannels(grantee);
    this.model.grantInvoke(grantee);
  }

  /** Grants reading the channels' bot tokens. */
  public grantChannels(grantee: iam.IGrantable): void {
    if (this.telegram) grantSecretRead(this.telegram.botToken, grantee);
    if (this.slack) grantSecretRead(this.slack.botToken, grantee);
  }

  /**
   * Acknowledges the findings every function of a serverless agent shares
   * (no VPC, no async DLQ) and, when `fn` reserves no concurrency, that one:
   * naming `reservedConcurrencyProp` when a prop can reserve it.
   */
  public acknowledgeFunction(fn: lambda.Function, reservedConcurrencyProp?: string): void {
    acknowledge(fn,
      'The function talks to Telegram, Slack and model endpoints on the internet and to AWS APIs; outside a VPC it needs no NAT (the point of this shape is zero idle cost).',
      'NIST.800.53.R5-LambdaInsideVPC', 'HIPAA.Security-LambdaInsideVPC');
    acknowledge(fn,
      'Invoked synchronously (Function URL, custom resource) or by an SQS event source whose queue has its own dead-letter queue; an asynchronous-invocation DLQ would never receive anything.',
      'Serverless-LambdaDLQ', 'NIST.800.53.R5-LambdaDLQ', 'HIPAA.Security-LambdaDLQ');
    if ((fn.node.defaultChild as lambda.CfnFunction).reservedConcurrentExecutions === undefined) {
      const unreserved = 'AWS keeps 10 executions unreserved per account, so a default reservation fails to deploy in new accounts.';
      acknowledge(fn, reservedConcurrencyProp
        ? `Reserved concurrency is optional (${reservedConcurrencyProp}): ${unreserved}`
        : `The function has no reserved concurrency (no prop sets one): ${unreserved}`,
      'NIST.800.53.R5-LambdaConcurrency', 'HIPAA.Security-LambdaConcurrency');
    }
  }

  /** A metric of the runtime's embedded metrics, for this agent. */
  public metric(metricName: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: METRIC_NAMESPACE,
      metricName,
      dimensionsMap: { Agent: this.agentName },
      statistic: 'Sum',
      ...props,
    });
  }

  /** Messages in the dead-letter queue. */
  public metricDeadLetterMessages(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum', ...props });
  }

  /**
   * A custom resource (handled directly by our own function, no provider
   * framework) that calls setWebhook on create/update and deleteWebhook on
   * delete. It also answers a direct invocation, for after the bot token is stored.
   */
  private addWebhookRegistration(telegram: TelegramSecrets): lambda.Function {
    const scope = this.scope;
    const role = new FunctionRole(scope, 'WebhookRegistrationRole', {
      logRetention: this.logRetention, encryptionKey: this.key, description: `Registers the Telegram webhook of ${scope.node.path}`,
    });
    const fn = new lambda.Function(scope, 'WebhookRegistration', {
      ...functionDefaults(role, 256, Duration.seconds(60)),
      description: 'Hermes Agent: registers the Telegram webhook (setWebhook / deleteWebhook)',
      runtime: latestPythonRuntime(),
      handler: 'hermes_aws.webhook_registration.handler',
      code: runtimeZipCode(),
      environment: {
        HERMES_AWS_BOT_TOKEN_SECRET_ARN: telegram.botToken.secretArn,
        HERMES_AWS_WEBHOOK_SECRET_ARN: telegram.webhookSecret.secretArn,
        HERMES_AWS_WEBHOOK_URL: `${this.functionUrl.url}telegram`,
        HERMES_AWS_ALLOWED_UPDATES: TELEGRAM_UPDATES.join(','),
      },
    });
    grantSecretRead(telegram.botToken, role.role);
    grantSecretRead(telegram.webhookSecret, role.role);
    new CustomResource(scope, 'TelegramWebhook', {
      serviceToken: fn.functionArn,
      resourceType: 'Custom::HermesTelegramWebhook',
      properties: {
        BotTokenSecretArn: telegram.botToken.secretArn,
        WebhookSecretArn: telegram.webhookSecret.secretArn,
        Url: `${this.functionUrl.url}telegram`,
        AllowedUpdates: TELEGRAM_UPDATES,
      },
    });
    new CfnOutput(scope, 'RegisterWebhookCommand', {
      value: `aws lambda invoke --function-name ${fn.functionName} --cli-binary-format raw-in-base64-out --payload '{"action":"register"}' /dev/stdout`,
      description: 'Run after storing the bot token to register the Telegram webhook without a redeploy',
    });
    return fn;
  }
}

function allowList(access: AgentAccess, platform: string): { [name: string]: string } {
  const key = platform.toUpperCase();
  if (access.allowsEveryone) return { [`HERMES_AWS_${key}_ALLOW_ALL`]: 'true' };
  return { [`HERMES_AWS_${key}_ALLOWED_USERS`]: access._users(platform).join(',') };
}
