import { RemovalPolicy, SecretValue } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { AgentEncryptionKey } from './encryption-key';
import { acknowledge } from './private/acknowledge';
import { grantSecretRead } from './private/secret-access';
import { checkInteger } from './private/validate';

/**
 * Placeholder secrets created by this library.
 */
export class SecretPlaceholder {
  /**
   * The value a placeholder secret holds until an operator stores the real
   * token. The runtime recognises it and says so instead of calling the
   * platform with it.
   */
  public static readonly VALUE = 'HERMES_PLACEHOLDER_SET_ME';

  private constructor() {}
}

/**
 * Common options of the secret bundles.
 */
export interface SecretBundleOptions {
  /**
   * KMS key for the placeholder secrets this construct creates (imported
   * secrets keep their own key).
   *
   * @default - the stack's shared {@link AgentEncryptionKey}
   */
  readonly encryptionKey?: kms.IKey;

  /**
   * What happens to created secrets when they leave the stack. Retained by
   * default so tokens typed in by an operator are never lost.
   *
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * Properties of {@link SlackSecrets}. Every token not passed in is created
 * as a clearly described placeholder to fill in after the first deploy.
 */
export interface SlackSecretsProps extends SecretBundleOptions {
  /**
   * Existing secret holding the bot token (`xoxb-...`).
   *
   * @default - a placeholder secret is created
   */
  readonly botToken?: secretsmanager.ISecret;

  /**
   * Existing secret holding the app-level token (`xapp-...`, scope
   * `connections:write`), used by Socket Mode.
   *
   * @default - a placeholder secret is created
   */
  readonly appToken?: secretsmanager.ISecret;

  /**
   * Existing secret holding the signing secret, used to verify Events API
   * requests.
   *
   * @default - a placeholder secret is created
   */
  readonly signingSecret?: secretsmanager.ISecret;
}

/**
 * The three Slack credentials of an agent: bot token, app-level token
 * (Socket Mode) and signing secret (Events API).
 */
export class SlackSecrets extends Construct {
  /** Secret with the bot token (`xoxb-...`). */
  public readonly botToken: secretsmanager.ISecret;
  /** Secret with the app-level token (`xapp-...`). */
  public readonly appToken: secretsmanager.ISecret;
  /** Secret with the signing secret. */
  public readonly signingSecret: secretsmanager.ISecret;

  constructor(scope: Construct, id: string, props: SlackSecretsProps = {}) {
    super(scope, id);
    this.botToken = props.botToken ?? placeholder(this, 'BotToken', props,
      'Slack bot token (xoxb-...) for Hermes Agent. OAuth & Permissions > Bot User OAuth Token.');
    this.appToken = props.appToken ?? placeholder(this, 'AppToken', props,
      'Slack app-level token (xapp-..., scope connections:write) for Hermes Agent Socket Mode. Basic Information > App-Level Tokens.');
    this.signingSecret = props.signingSecret ?? placeholder(this, 'SigningSecret', props,
      'Slack signing secret for Hermes Agent Events API requests. Basic Information > App Credentials > Signing Secret.');
  }

  /**
   * Grants reading all three secrets (on the grantee's side, so a grantee in
   * another stack does not tie the stacks in a cycle).
   */
  public grantRead(grantee: iam.IGrantable): iam.Grant {
    return grantSecretRead(this.botToken, grantee)
      .combine(grantSecretRead(this.appToken, grantee))
      .combine(grantSecretRead(this.signingSecret, grantee));
  }
}

/**
 * Properties of {@link TelegramSecrets}.
 */
export interface TelegramSecretsProps extends SecretBundleOptions {
  /**
   * Existing secret holding the bot token from @BotFather.
   *
   * @default - a placeholder secret is created
   */
  readonly botToken?: secretsmanager.ISecret;

  /**
   * Length of the generated webhook secret token. Telegram accepts 1-256
   * characters of `A-Za-z0-9_-`; we require at least 16.
   *
   * @default 64
   */
  readonly webhookSecretLength?: number;
}

/**
 * A Telegram bot token and the webhook secret token Telegram echoes in the
 * `X-Telegram-Bot-Api-Secret-Token` header. The webhook secret is generated
 * by Secrets Manager (letters and digits only), so nobody has to invent one.
 */
export class TelegramSecrets extends Construct {
  /** Secret with the bot token. */
  public readonly botToken: secretsmanager.ISecret;
  /** Generated secret with the webhook secret token. */
  public readonly webhookSecret: secretsmanager.ISecret;

  constructor(scope: Construct, id: string, props: TelegramSecretsProps = {}) {
    super(scope, id);
    const length = props.webhookSecretLength ?? 64;
    checkInteger('TelegramSecretsProps.webhookSecretLength', length, 16, 256);

    this.botToken = props.botToken ?? placeholder(this, 'BotToken', props,
      'Telegram bot token for Hermes Agent, from @BotFather.');
    const webhookSecret = new secretsmanager.Secret(this, 'WebhookSecret', {
      description: 'Generated Telegram webhook secret token for Hermes Agent (sent by Telegram in X-Telegram-Bot-Api-Secret-Token). Do not edit.',
      encryptionKey: props.encryptionKey ?? AgentEncryptionKey.of(this),
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
      generateSecretString: {
        passwordLength: length,
        excludePunctuation: true,
        includeSpace: false,
        requireEachIncludedType: true,
      },
    });
    acknowledge(webhookSecret,
      'Rotating the webhook secret means calling Telegram setWebhook with the new value at the same moment; the secret is generated, never typed by a person, and is replaced by re-creating it.',
      'AwsSolutions-SMG4', 'NIST.800.53.R5-SecretsManagerRotationEnabled', 'HIPAA.Security-SecretsManagerRotationEnabled');
    this.webhookSecret = webhookSecret;
  }

  /** Grants reading the bot token and the webhook secret (on the grantee's side). */
  public grantRead(grantee: iam.IGrantable): iam.Grant {
    return grantSecretRead(this.botToken, grantee).combine(grantSecretRead(this.webhookSecret, grantee));
  }
}

function placeholder(scope: Construct, id: string, props: SecretBundleOptions, description: string): secretsmanager.ISecret {
  const secret = new secretsmanager.Secret(scope, id, {
    description: `${description} Created as a placeholder: store the real value with ` +
      '`aws secretsmanager put-secret-value --secret-id <this secret> --secret-string <token>`.',
    encryptionKey: props.encryptionKey ?? AgentEncryptionKey.of(scope),
    removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    secretStringValue: SecretValue.unsafePlainText(SecretPlaceholder.VALUE),
  });
  acknowledge(secret,
    'A third-party platform token: only the platform can issue a new one, so Secrets Manager cannot rotate it.',
    'AwsSolutions-SMG4', 'NIST.800.53.R5-SecretsManagerRotationEnabled', 'HIPAA.Security-SecretsManagerRotationEnabled');
  return secret;
}
