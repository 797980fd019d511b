import { Arn, ArnFormat, Aws, Token } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { PropError, checkInteger, checkLength, checkPattern } from './private/validate';

/**
 * A Bedrock Guardrail applied to every model call.
 */
export interface BedrockGuardrail {
  /** Guardrail id (e.g. `abc123def456`) or ARN. */
  readonly identifier: string;

  /**
   * Guardrail version: a number, or `DRAFT`.
   *
   * @default 'DRAFT'
   */
  readonly version?: string;
}

/**
 * Model token prices, used only to estimate the cost of a turn for the
 * `EstimatedCost` metric (never for billing).
 */
export interface TokenPrices {
  /** USD per million input tokens, 0-1000. */
  readonly inputPerMillion: number;
  /** USD per million output tokens, 0-1000. */
  readonly outputPerMillion: number;
}

/**
 * Options of {@link AgentModel.bedrock}.
 */
export interface BedrockModelOptions {
  /**
   * Guardrail applied (synchronously) to every turn's model calls. Only for
   * models Hermes calls through the Bedrock Converse API (Amazon Nova, Llama,
   * Mistral, ...): the pinned Hermes sends Claude models through the Anthropic
   * Messages API without a guardrail, so a guardrail with a Claude model
   * fails synth. Hermes's auxiliary calls (context-compression summaries,
   * image analysis) are made without the guardrail.
   *
   * @default - no guardrail
   */
  readonly guardrail?: BedrockGuardrail;

  /**
   * Region the agent calls Bedrock in.
   *
   * @default - the region the agent runs in
   */
  readonly region?: string;

  /**
   * The model's context window in tokens, 1,000-10,000,000. Rendered as
   * Hermes's `model.context_length`: without it Hermes discovers the window of
   * a Bedrock model by sending padded multi-megabyte requests on every cold
   * start.
   *
   * @default - the window of known Claude, Nova, Llama, Mistral and DeepSeek
   * models (Hermes 0.19.0's own table); 128,000 for other models
   */
  readonly contextLength?: number;
}

/**
 * Options of {@link AgentModel.openAiCompatible}.
 */
export interface OpenAiCompatibleModelOptions {
  /** Base URL of the endpoint, e.g. `https://api.deepseek.com/v1`. Must be HTTPS. */
  readonly baseUrl: string;

  /** Model name the endpoint expects, e.g. `deepseek-chat`. */
  readonly modelName: string;

  /**
   * Secret whose plain-text value is the API key. It reaches the agent as an
   * environment variable, never as a file.
   *
   * @default - no key is sent
   */
  readonly apiKey?: secretsmanager.ISecret;

  /**
   * The model's context window in tokens, 1,000-10,000,000 (Hermes's
   * `model.context_length`).
   *
   * @default - Hermes asks the endpoint (`/models`) and falls back to its own table
   */
  readonly contextLength?: number;
}

/**
 * The parts of the settings document a model contributes.
 *
 * @internal
 */
export interface ModelBinding {
  readonly config: { [key: string]: any };
  readonly secretEnvironment: { [name: string]: secretsmanager.ISecret };
}

/** Environment variable that carries an OpenAI-compatible endpoint's API key. */
const API_KEY_ENV = 'HERMES_MODEL_API_KEY';

/** Cross-region inference profile prefixes (geography or global). */
const PROFILE_PREFIX = /^(us|eu|apac|ap|jp|au|ca|us-gov|global)\./;

/** Claude ids, with or without an inference-profile prefix. */
const CLAUDE_MODEL = /(^|\.)anthropic\.claude/;

/**
 * Context windows of Bedrock model families (tokens), longest match wins, as
 * in Hermes 0.19.0's `agent/bedrock_adapter.py`; other models: 128,000.
 */
const BEDROCK_CONTEXT_LENGTHS: Array<[string, number]> = [
  ['anthropic.claude-sonnet-5', 1_000_000], ['anthropic.claude-opus-4-8', 1_000_000], ['anthropic.claude-opus-4-7', 1_000_000],
  ['anthropic.claude-opus-4-6', 1_000_000], ['anthropic.claude-sonnet-4-6', 1_000_000],
  ['anthropic.claude', 200_000],
  ['amazon.nova-pro', 300_000], ['amazon.nova-lite', 300_000], ['amazon.nova-micro', 128_000],
  ['meta.llama', 128_000], ['mistral.mistral-large', 128_000], ['deepseek.v3', 128_000],
];
const BEDROCK_DEFAULT_CONTEXT_LENGTH = 128_000;

function bedrockContextLength(modelId: string): number {
  const match = BEDROCK_CONTEXT_LENGTHS
    .filter(([family]) => modelId.includes(family))
    .sort((a, b) => b[0].length - a[0].length)[0];
  return match ? match[1] : BEDROCK_DEFAULT_CONTEXT_LENGTH;
}

/**
 * Estimated on-demand prices (USD per million input / output tokens) of
 * Bedrock foundation models, first match wins: Bedrock's published
 * us-east-1 list prices as of 2025-11, standard context, no prompt caching
 * or batch discounts. Profiles and other regions may differ by about 10 %.
 */
const BEDROCK_PRICES: Array<[RegExp, number, number]> = [
  [/^anthropic\.claude-opus-4-[56]/, 5, 25],
  [/^anthropic\.claude-opus-4/, 15, 75],
  [/^anthropic\.claude-sonnet-4/, 3, 15],
  [/^anthropic\.claude-3-[57]-sonnet/, 3, 15],
  [/^anthropic\.claude-haiku-4-5/, 1, 5],
  [/^anthropic\.claude-3-5-haiku/, 0.8, 4],
  [/^anthropic\.claude-3-haiku/, 0.25, 1.25],
  [/^amazon\.nova-micro/, 0.035, 0.14],
  [/^amazon\.nova-lite/, 0.06, 0.24],
  [/^amazon\.nova-pro/, 0.8, 3.2],
  [/^amazon\.nova-premier/, 2.5, 12.5],
];

/**
 * The model an agent thinks with: a Bedrock model or cross-region inference
 * profile (IAM-authorised, least privilege), or any OpenAI-compatible
 * endpoint with an API key in Secrets Manager.
 */
export abstract class AgentModel {
  /**
   * A Bedrock foundation model (`anthropic.claude-...`) or cross-region
   * inference profile (`us.anthropic.claude-sonnet-4-6`, `global....`).
   *
   * For a profile, `grantInvoke` allows the profile ARN and the foundation
   * model it routes to in any region, but only when called through that
   * profile (`bedrock:InferenceProfileArn` condition).
   */
  public static bedrock(modelId: string, options: BedrockModelOptions = {}): AgentModel {
    return new BedrockModel(modelId, options);
  }

  /**
   * An OpenAI-compatible chat-completions endpoint (DeepSeek, a vLLM server,
   * a LiteLLM proxy, ...).
   */
  public static openAiCompatible(options: OpenAiCompatibleModelOptions): AgentModel {
    return new OpenAiCompatibleModel(options);
  }

  /** The model id Hermes is configured with. */
  public abstract readonly modelId: string;

  /** The Hermes provider name (`bedrock` or `custom`). */
  public abstract readonly provider: string;

  /**
   * Estimated token prices of this model, for the cost metric: Bedrock's
   * us-east-1 on-demand list prices (as of 2025-11) for the Anthropic Claude
   * and Amazon Nova models this library knows.
   *
   * @default - unknown (other Bedrock models, OpenAI-compatible endpoints)
   */
  public abstract readonly tokenPrices?: TokenPrices;

  /**
   * Grants the AWS permissions calling the model needs: Bedrock invoke (and
   * guardrail) permissions, or nothing for an OpenAI-compatible endpoint,
   * whose API key is delivered through `HermesConfig.secretEnvironment`.
   */
  public abstract grantInvoke(grantee: iam.IGrantable): iam.Grant;

  /** @internal */
  public abstract _bind(): ModelBinding;
}

class BedrockModel extends AgentModel {
  public readonly provider = 'bedrock';
  public readonly tokenPrices?: TokenPrices;

  constructor(public readonly modelId: string, private readonly options: BedrockModelOptions) {
    super();
    checkPattern('AgentModel.bedrock modelId', modelId, /^[a-z0-9-]+(\.[a-z0-9-]+)+(-v\d+(:\d+)?)?(:\d+)?$/,
      'a Bedrock model id or inference profile id such as "us.anthropic.claude-sonnet-4-6" (not an ARN)');
    const guardrail = options.guardrail;
    if (guardrail) {
      checkPattern('BedrockGuardrail.identifier', guardrail.identifier,
        /^(([a-z0-9]+)|(arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:guardrail\/[a-z0-9]+))$/,
        'a guardrail id (lowercase letters and digits) or guardrail ARN');
      checkPattern('BedrockGuardrail.version', guardrail.version, /^(([1-9][0-9]{0,7})|(DRAFT))$/, 'a version number or "DRAFT"');
      // Hermes 0.19.0 passes the guardrail only on its Converse path; Claude goes
      // through the Anthropic Messages API without it. Refuse rather than pretend.
      if (CLAUDE_MODEL.test(modelId)) {
        throw new PropError('BedrockModelOptions.guardrail', `cannot be enforced for ${modelId}: the pinned Hermes calls Claude `
          + 'models on Bedrock through the Anthropic Messages API, which it sends without a guardrail, so it would be silently '
          + 'ignored. Use a model Hermes calls through the Converse API (for example us.amazon.nova-pro-v1:0), or no guardrail.');
      }
    }
    checkInteger('BedrockModelOptions.contextLength', options.contextLength, 1_000, 10_000_000);
    checkPattern('BedrockModelOptions.region', options.region, /^[a-z]{2}(-gov)?-[a-z]+-\d$/, 'an AWS region name such as "us-east-1"');
    const foundationModel = modelId.replace(PROFILE_PREFIX, '');
    const price = BEDROCK_PRICES.find(([pattern]) => pattern.test(foundationModel));
    if (price) this.tokenPrices = { inputPerMillion: price[1], outputPerMillion: price[2] };
  }

  public grantInvoke(grantee: iam.IGrantable): iam.Grant {
    const region = this.options.region ?? Aws.REGION;
    const actions = ['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream'];
    const match = PROFILE_PREFIX.exec(this.modelId);
    let grant: iam.Grant;
    if (match) {
      const profileArn = bedrockArn(region, Aws.ACCOUNT_ID, 'inference-profile', this.modelId);
      grant = iam.Grant.addToPrincipal({ grantee, actions, resourceArns: [profileArn] }).combine(iam.Grant.addToPrincipal({
        grantee,
        actions,
        // A cross-region profile routes to any region of its geography, so the
        // region is open but the call must come through this very profile.
        resourceArns: [bedrockArn('*', '', 'foundation-model', this.modelId.slice(match[0].length))],
        conditions: { StringEquals: { 'bedrock:InferenceProfileArn': profileArn } },
      }));
    } else {
      grant = iam.Grant.addToPrincipal({ grantee, actions, resourceArns: [bedrockArn(region, '', 'foundation-model', this.modelId)] });
    }
    const guardrail = this.options.guardrail;
    if (guardrail) {
      const guardrailArn = guardrail.identifier.startsWith('arn:')
        ? guardrail.identifier
        : bedrockArn(region, Aws.ACCOUNT_ID, 'guardrail', guardrail.identifier);
      grant = grant.combine(iam.Grant.addToPrincipal({ grantee, actions: ['bedrock:ApplyGuardrail'], resourceArns: [guardrailArn] }));
    }
    return grant;
  }

  public _bind(): ModelBinding {
    const bedrock: { [key: string]: any } = {
      // Discovery lists every model in the account (ListFoundationModels on "*");
      // the model is fixed here, so the agent never needs that permission.
      discovery: { enabled: false },
    };
    if (this.options.region) bedrock.region = this.options.region;
    if (this.options.guardrail) {
      bedrock.guardrail = {
        guardrail_identifier: this.options.guardrail.identifier,
        guardrail_version: this.options.guardrail.version ?? 'DRAFT',
        // Hermes defaults to "async", which lets blocked text through before the
        // guardrail intervenes and breaks its non-streaming fallback; empty =
        // Bedrock's synchronous default.
        stream_processing_mode: '',
      };
    }
    const contextLength = this.options.contextLength ?? bedrockContextLength(this.modelId);
    return {
      config: { model: { provider: 'bedrock', default: this.modelId, context_length: contextLength }, bedrock, ...auxiliaryWindow(contextLength) },
      secretEnvironment: {},
    };
  }
}

class OpenAiCompatibleModel extends AgentModel {
  public readonly provider = 'custom';
  public readonly modelId: string;
  public readonly tokenPrices?: TokenPrices = undefined;

  constructor(private readonly options: OpenAiCompatibleModelOptions) {
    super();
    checkLength('OpenAiCompatibleModelOptions.modelName', options.modelName, 1, 256);
    checkInteger('OpenAiCompatibleModelOptions.contextLength', options.contextLength, 1_000, 10_000_000);
    if (!Token.isUnresolved(options.baseUrl)) {
      let url: URL;
      try {
        url = new URL(options.baseUrl);
      } catch {
        throw new PropError('OpenAiCompatibleModelOptions.baseUrl', `must be an absolute URL (got ${JSON.stringify(options.baseUrl)})`);
      }
      if (url.protocol !== 'https:') {
        throw new PropError('OpenAiCompatibleModelOptions.baseUrl', `must use https:// so the API key never crosses the network in clear text (got ${JSON.stringify(options.baseUrl)})`);
      }
    }
    this.modelId = options.modelName;
  }

  public grantInvoke(grantee: iam.IGrantable): iam.Grant {
    // Calling the endpoint needs no AWS permission. The API key reaches the
    // agent as an environment variable that the deployment shape resolves
    // (HermesConfig.secretEnvironment), with its own narrowly scoped grant.
    return iam.Grant.drop(grantee, 'an OpenAI-compatible endpoint needs no AWS permission');
  }

  public _bind(): ModelBinding {
    const model: { [key: string]: any } = {
      provider: 'custom',
      default: this.options.modelName,
      base_url: this.options.baseUrl,
    };
    if (this.options.contextLength !== undefined) model.context_length = this.options.contextLength;
    const secretEnvironment: { [name: string]: secretsmanager.ISecret } = {};
    if (this.options.apiKey) {
      model.api_key = `\${${API_KEY_ENV}}`;
      secretEnvironment[API_KEY_ENV] = this.options.apiKey;
    }
    return { config: { model, ...auxiliaryWindow(this.options.contextLength) }, secretEnvironment };
  }
}

/**
 * Hermes's compression summaries run on an auxiliary client that resolves the
 * window on its own (`auxiliary.compression.context_length`): the same value,
 * or it probes the model again.
 */
function auxiliaryWindow(contextLength: number | undefined): { [key: string]: any } {
  return contextLength === undefined ? {} : { auxiliary: { compression: { context_length: contextLength } } };
}

function bedrockArn(region: string, account: string, resource: string, resourceName: string): string {
  return Arn.format({
    partition: Aws.PARTITION,
    service: 'bedrock',
    region,
    account,
    resource,
    resourceName,
    arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
  });
}
