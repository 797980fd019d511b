import { Duration, Stack, Token } from 'aws-cdk-lib';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { IConstruct } from 'constructs';
import { AgentModel } from './model';
import { PropError, checkInteger, checkLength, checkNumber, checkPattern } from './private/validate';

/**
 * How hard the model thinks per turn (`agent.reasoning_effort`).
 */
export class ReasoningEffort {
  public static readonly NONE = new ReasoningEffort('none');
  public static readonly MINIMAL = new ReasoningEffort('minimal');
  public static readonly LOW = new ReasoningEffort('low');
  public static readonly MEDIUM = new ReasoningEffort('medium');
  public static readonly HIGH = new ReasoningEffort('high');
  public static readonly XHIGH = new ReasoningEffort('xhigh');

  private constructor(public readonly value: string) {}
}

/**
 * What the agent does before a dangerous command (`approvals.mode`).
 */
export class ApprovalMode {
  /** Always ask the user. */
  public static readonly MANUAL = new ApprovalMode('manual');
  /** Let an auxiliary model approve low-risk commands, ask for the rest (Hermes default). */
  public static readonly SMART = new ApprovalMode('smart');
  /** Never ask. Only for agents without a shell or with a sandboxed one. */
  public static readonly OFF = new ApprovalMode('off');

  private constructor(public readonly value: string) {}
}

/**
 * What a scheduled job does when it hits a dangerous command (`approvals.cron_mode`).
 */
export class CronApprovalMode {
  /** Block the command; the agent finds another way (Hermes default). */
  public static readonly DENY = new CronApprovalMode('deny');
  /** Run it. */
  public static readonly APPROVE = new CronApprovalMode('approve');

  private constructor(public readonly value: string) {}
}

/** Built-in memory (`memory.*`). */
export interface MemorySettings {
  /**
   * Keep `MEMORY.md` notes across conversations.
   * @default true
   */
  readonly enabled?: boolean;
  /**
   * Keep a `USER.md` profile of the people the agent talks to.
   * @default true
   */
  readonly userProfile?: boolean;
  /**
   * Size cap of `MEMORY.md` in characters, 100-100000.
   * @default 2200
   */
  readonly memoryCharLimit?: number;
  /**
   * Size cap of `USER.md` in characters, 100-100000.
   * @default 1375
   */
  readonly userCharLimit?: number;
}

/** Context compression of long conversations (`compression.*`). */
export interface CompressionSettings {
  /**
   * Compress long conversations instead of overflowing the context window.
   * @default true
   */
  readonly enabled?: boolean;
  /**
   * Share of the context window, greater than 0 and at most 1, at which compression starts.
   * @default 0.5
   */
  readonly threshold?: number;
  /**
   * Share of the threshold kept as the recent tail, greater than 0 and below 1.
   * @default 0.2
   */
  readonly targetRatio?: number;
  /**
   * Minimum number of recent messages never compressed, 0-1000.
   * @default 20
   */
  readonly protectLastMessages?: number;
}

/** Dangerous-command approvals (`approvals.*`). */
export interface ApprovalSettings {
  /**
   * Approval mode for chat turns.
   * @default ApprovalMode.SMART
   */
  readonly mode?: ApprovalMode;
  /**
   * Approval mode for scheduled jobs, where nobody can answer.
   * @default CronApprovalMode.DENY
   */
  readonly cronMode?: CronApprovalMode;
  /**
   * How long to wait for a user's answer, 1 second to 1 hour.
   * @default Duration.seconds(60)
   */
  readonly timeout?: Duration;
  /**
   * Shell-glob patterns of commands that are always refused, e.g. `git push --force*`.
   * @default - none
   */
  readonly denyCommands?: string[];
}

/** Options common to both kinds of MCP server. */
export interface McpServerBaseOptions {
  /**
   * Per-call timeout, 1 second to 1 hour.
   * @default Duration.seconds(300)
   */
  readonly timeout?: Duration;
  /**
   * Connection timeout, 1 second to 10 minutes.
   * @default Duration.seconds(60)
   */
  readonly connectTimeout?: Duration;
  /**
   * Only these tools of the server are offered to the model.
   * @default - all tools
   */
  readonly includeTools?: string[];
  /**
   * These tools of the server are hidden from the model.
   * @default - none
   */
  readonly excludeTools?: string[];
}

/** Options of {@link McpServer.stdio}. */
export interface McpStdioServerOptions extends McpServerBaseOptions {
  /** Executable, e.g. `npx`. */
  readonly command: string;
  /**
   * Arguments, e.g. `['-y', '@modelcontextprotocol/server-github']`.
   * @default []
   */
  readonly args?: string[];
  /**
   * Plain environment variables of the server process.
   * @default - none
   */
  readonly environment?: { [name: string]: string };
  /**
   * Environment variables whose values come from secrets. They reach the
   * agent as environment variables and are referenced from `config.yaml`
   * as `${VAR}`, so they are never written to disk.
   * @default - none
   */
  readonly secretEnvironment?: { [name: string]: secretsmanager.ISecret };
}

/** Options of {@link McpServer.http}. */
export interface McpHttpServerOptions extends McpServerBaseOptions {
  /** Server URL. HTTPS, or plain HTTP to localhost only. */
  readonly url: string;
  /**
   * Plain request headers.
   * @default - none
   */
  readonly headers?: { [name: string]: string };
  /**
   * Request headers whose whole value comes from a secret (store
   * `Bearer ...` in the secret for an Authorization header).
   * @default - none
   */
  readonly secretHeaders?: { [name: string]: secretsmanager.ISecret };
}

/**
 * An MCP server the agent can use as a tool provider (`mcp_servers.<name>`).
 */
export class McpServer {
  /** A server the agent starts as a child process (stdio transport). */
  public static stdio(name: string, options: McpStdioServerOptions): McpServer {
    checkLength(`McpServer "${name}" command`, options.command, 1, 1024);
    const config: { [key: string]: any } = { command: options.command, args: options.args ?? [] };
    const env: { [key: string]: string } = { ...(options.environment ?? {}) };
    const secrets: { [env: string]: secretsmanager.ISecret } = {};
    for (const [key, secret] of Object.entries(options.secretEnvironment ?? {})) {
      checkEnvName(`McpServer "${name}" secretEnvironment`, key);
      const envName = secretEnvName(name, key);
      env[key] = `\${${envName}}`;
      addSecretEnv(secrets, envName, secret, `McpServer "${name}" secretEnvironment.${key}`);
    }
    for (const key of Object.keys(options.environment ?? {})) {
      checkEnvName(`McpServer "${name}" environment`, key);
      if (options.secretEnvironment?.[key]) {
        throw new PropError(`McpServer "${name}" environment.${key}`, 'is also set in secretEnvironment; set it in one of them');
      }
    }
    if (Object.keys(env).length > 0) config.env = env;
    return new McpServer(name, config, secrets, options);
  }

  /** A remote server reached over streamable HTTP. */
  public static http(name: string, options: McpHttpServerOptions): McpServer {
    if (!Token.isUnresolved(options.url)) {
      let url: URL;
      try {
        url = new URL(options.url);
      } catch {
        throw new PropError(`McpServer "${name}" url`, `must be an absolute URL (got ${JSON.stringify(options.url)})`);
      }
      const local = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
      if (url.protocol !== 'https:' && !(url.protocol === 'http:' && local)) {
        throw new PropError(`McpServer "${name}" url`, `must use https:// (plain http:// only to localhost) (got ${JSON.stringify(options.url)})`);
      }
    }
    const headers: { [key: string]: string } = { ...(options.headers ?? {}) };
    const secrets: { [env: string]: secretsmanager.ISecret } = {};
    for (const [header, secret] of Object.entries(options.secretHeaders ?? {})) {
      checkPattern(`McpServer "${name}" secretHeaders`, header, /^[A-Za-z0-9-]+$/, 'an HTTP header name');
      const envName = secretEnvName(name, header);
      headers[header] = `\${${envName}}`;
      addSecretEnv(secrets, envName, secret, `McpServer "${name}" secretHeaders.${header}`);
    }
    const config: { [key: string]: any } = { url: options.url };
    if (Object.keys(headers).length > 0) config.headers = headers;
    return new McpServer(name, config, secrets, options);
  }

  /**
   * Secret-backed environment variables the agent needs for this server,
   * by variable name.
   */
  public readonly secretEnvironment: { [name: string]: secretsmanager.ISecret };

  private constructor(
    /** The server's name in `mcp_servers`. */
    public readonly name: string,
    private readonly config: { [key: string]: any },
    secrets: { [name: string]: secretsmanager.ISecret },
    base: McpServerBaseOptions,
  ) {
    checkPattern('McpServer name', name, /^[a-z][a-z0-9_-]{0,47}$/, 'lowercase letters, digits, "_" and "-", starting with a letter, at most 48 characters');
    this.secretEnvironment = secrets;
    checkDuration(`McpServer "${name}" timeout`, base.timeout, 1, 3600);
    checkDuration(`McpServer "${name}" connectTimeout`, base.connectTimeout, 1, 600);
    if (base.timeout) this.config.timeout = base.timeout.toSeconds();
    if (base.connectTimeout) this.config.connect_timeout = base.connectTimeout.toSeconds();
    if (base.includeTools || base.excludeTools) {
      this.config.tools = {
        ...(base.includeTools ? { include: base.includeTools } : {}),
        ...(base.excludeTools ? { exclude: base.excludeTools } : {}),
      };
    }
  }

  /** @internal */
  public _config(): { [key: string]: any } {
    return this.config;
  }
}

/**
 * Typed Hermes settings, rendered into `config.yaml`, `SOUL.md` and
 * `.hermes.md` when the agent starts. Every value is checked at synth time.
 */
export interface HermesSettings {
  /**
   * Maximum tool-calling iterations per turn (`agent.max_turns`), 1-1000.
   * @default 90
   */
  readonly maxTurns?: number;
  /**
   * Reasoning effort (`agent.reasoning_effort`).
   * @default - the provider's default
   */
  readonly reasoningEffort?: ReasoningEffort;
  /**
   * Built-in memory.
   * @default - memory and user profile on, Hermes's size caps
   */
  readonly memory?: MemorySettings;
  /**
   * Context compression.
   * @default - on, Hermes's thresholds
   */
  readonly compression?: CompressionSettings;
  /**
   * Toolsets the agent may not use (`agent.disabled_toolsets`), e.g.
   * `['browser', 'image_gen']`. Each shape also turns off what cannot work
   * there (no shell on Lambda, for instance).
   * @default - none beyond the shape's own
   */
  readonly disabledToolsets?: string[];
  /**
   * MCP servers the agent may use.
   * @default - none
   */
  readonly mcpServers?: McpServer[];
  /**
   * Redact secrets from tool output and logs (`security.redact_secrets`).
   * @default true
   */
  readonly redactSecrets?: boolean;
  /**
   * Dangerous-command approvals.
   * @default - Hermes's defaults (smart; deny in scheduled jobs)
   */
  readonly approvals?: ApprovalSettings;
  /**
   * The agent's identity, written to `SOUL.md` (at most 20,000 characters).
   * @default - Hermes's built-in identity
   */
  readonly soul?: string;
  /**
   * Project context, written to `.hermes.md` (at most 20,000 characters).
   * @default - none
   */
  readonly projectContext?: string;
}

/**
 * Options of {@link HermesConfig.render}.
 */
export interface HermesConfigRenderOptions {
  /** The model. */
  readonly model: AgentModel;
  /**
   * The user's settings.
   * @default - Hermes defaults
   */
  readonly settings?: HermesSettings;
  /**
   * Toolsets the deployment shape cannot support, added to the user's.
   * @default - none
   */
  readonly shapeDisabledToolsets?: string[];
  /**
   * Config the deployment shape must set (deep-merged last).
   * @default - none
   */
  readonly shapeConfig?: { [key: string]: any };
}

/** Toolset names of the pinned hermes-agent (toolsets.py). */
const KNOWN_TOOLSETS = [
  'browser', 'clarify', 'code_execution', 'coding', 'computer_use', 'context_engine', 'cronjob', 'debugging',
  'delegation', 'discord', 'discord_admin', 'feishu_doc', 'feishu_drive', 'file', 'homeassistant', 'image_gen',
  'kanban', 'memory', 'project', 'safe', 'search', 'session_search', 'skills', 'spotify', 'terminal', 'todo',
  'tts', 'video', 'video_gen', 'vision', 'web', 'x_search', 'yuanbao',
];

/** The settings document version the runtime understands. */
const DOCUMENT_VERSION = 1;

/**
 * Hermes configuration rendered from typed settings and a model: the
 * `config.yaml` content, SOUL and project context, and the secrets the agent
 * needs as environment variables.
 */
export class HermesConfig {
  /** Environment variable that carries the settings document to the runtime. */
  public static readonly SETTINGS_ENV = 'HERMES_AWS_SETTINGS';

  /**
   * Validates the settings and renders them. Throws an error naming the
   * prop for any invalid value.
   */
  public static render(options: HermesConfigRenderOptions): HermesConfig {
    return new HermesConfig(options);
  }

  /** The object written to `config.yaml`. */
  public readonly config: { [key: string]: any };
  /** `SOUL.md` text, if any. */
  public readonly soul?: string;
  /** `.hermes.md` text, if any. */
  public readonly projectContext?: string;
  /**
   * Secrets the agent needs, by environment variable name. `config` refers
   * to them as `${NAME}`; they are never written to disk.
   */
  public readonly secretEnvironment: { [name: string]: secretsmanager.ISecret };

  private constructor(options: HermesConfigRenderOptions) {
    const s = options.settings ?? {};
    checkInteger('HermesSettings.maxTurns', s.maxTurns, 1, 1000);
    checkLength('HermesSettings.soul', s.soul, 0, 20_000);
    checkLength('HermesSettings.projectContext', s.projectContext, 0, 20_000);
    checkInteger('HermesSettings.memory.memoryCharLimit', s.memory?.memoryCharLimit, 100, 100_000);
    checkInteger('HermesSettings.memory.userCharLimit', s.memory?.userCharLimit, 100, 100_000);
    checkNumber('HermesSettings.compression.threshold', s.compression?.threshold, 0, 1, { minExclusive: true });
    checkNumber('HermesSettings.compression.targetRatio', s.compression?.targetRatio, 0, 0.999, { minExclusive: true });
    checkInteger('HermesSettings.compression.protectLastMessages', s.compression?.protectLastMessages, 0, 1000);
    checkDuration('HermesSettings.approvals.timeout', s.approvals?.timeout, 1, 3600);
    for (const toolset of s.disabledToolsets ?? []) {
      if (!KNOWN_TOOLSETS.includes(toolset)) {
        throw new PropError('HermesSettings.disabledToolsets', `contains unknown toolset ${JSON.stringify(toolset)}; known toolsets: ${KNOWN_TOOLSETS.join(', ')}`);
      }
    }
    const names = new Set<string>();
    for (const server of s.mcpServers ?? []) {
      if (names.has(server.name)) {
        throw new PropError('HermesSettings.mcpServers', `has two servers named ${JSON.stringify(server.name)}`);
      }
      names.add(server.name);
    }

    const model = options.model._bind();
    const disabled = [...new Set([...(options.shapeDisabledToolsets ?? []), ...(s.disabledToolsets ?? [])])];

    const config: { [key: string]: any } = {
      ...model.config,
      agent: compact({
        max_turns: s.maxTurns,
        reasoning_effort: s.reasoningEffort?.value,
        disabled_toolsets: disabled.length > 0 ? disabled : undefined,
      }),
      memory: compact({
        memory_enabled: s.memory?.enabled,
        user_profile_enabled: s.memory?.userProfile,
        memory_char_limit: s.memory?.memoryCharLimit,
        user_char_limit: s.memory?.userCharLimit,
      }),
      compression: compact({
        enabled: s.compression?.enabled,
        threshold: s.compression?.threshold,
        target_ratio: s.compression?.targetRatio,
        protect_last_n: s.compression?.protectLastMessages,
      }),
      security: {
        redact_secrets: s.redactSecrets ?? true,
        // Images are immutable: a missing extra must fail the build, not pip-install at run time.
        allow_lazy_installs: false,
        // Tirith (command scanning) downloads its newest binary from GitHub at start;
        // an unpinned download at run time has no place in an immutable deployment.
        tirith_enabled: false,
      },
      approvals: compact({
        mode: s.approvals?.mode?.value,
        cron_mode: s.approvals?.cronMode?.value,
        timeout: s.approvals?.timeout?.toSeconds(),
        deny: s.approvals?.denyCommands,
      }),
    };
    const secretEnvironment: { [name: string]: secretsmanager.ISecret } = { ...model.secretEnvironment };
    if (s.mcpServers && s.mcpServers.length > 0) {
      config.mcp_servers = Object.fromEntries(s.mcpServers.map((m) => [m.name, m._config()]));
      for (const server of s.mcpServers) {
        for (const [envName, secret] of Object.entries(server.secretEnvironment)) {
          addSecretEnv(secretEnvironment, envName, secret, `HermesSettings.mcpServers "${server.name}"`);
        }
      }
    }
    for (const key of Object.keys(config)) {
      if (typeof config[key] === 'object' && Object.keys(config[key]).length === 0) delete config[key];
    }
    this.config = deepMerge(config, options.shapeConfig ?? {});
    this.soul = s.soul;
    this.projectContext = s.projectContext;
    this.secretEnvironment = secretEnvironment;
  }

  /**
   * The settings document (JSON) the runtime turns into `HERMES_HOME` files.
   * Tokens are resolved in the context of `scope`'s stack.
   */
  public toDocument(scope: IConstruct): string {
    return Stack.of(scope).toJsonString({
      version: DOCUMENT_VERSION,
      config: this.config,
      soul: this.soul ?? null,
      projectContext: this.projectContext ?? null,
      secretEnv: Object.keys(this.secretEnvironment).sort(),
    });
  }
}

function compact(obj: { [key: string]: any }): { [key: string]: any } {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined));
}

function deepMerge(base: { [key: string]: any }, over: { [key: string]: any }): { [key: string]: any } {
  const out: { [key: string]: any } = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    out[key] = isPlainObject(current) && isPlainObject(value) ? deepMerge(current, value) : value;
  }
  return out;
}

function isPlainObject(value: unknown): value is { [key: string]: any } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkEnvName(prop: string, name: string): void {
  checkPattern(prop, name, /^[A-Za-z_][A-Za-z0-9_]*$/, 'keys that are environment variable names');
}

function checkDuration(prop: string, value: Duration | undefined, minSeconds: number, maxSeconds: number): void {
  if (value === undefined || Token.isUnresolved(value.toSeconds({ integral: false }))) return;
  const seconds = value.toSeconds({ integral: false });
  if (!Number.isInteger(seconds) || seconds < minSeconds || seconds > maxSeconds) {
    throw new PropError(prop, `must be a whole number of seconds between ${minSeconds} and ${maxSeconds} (got ${seconds})`);
  }
}

/**
 * Records a secret-backed variable. Names are normalised (upper case, "-" to
 * "_"), so different servers or keys can map to the same variable, e.g. server
 * "github" key "ENTERPRISE_TOKEN" and server "github-enterprise" key "TOKEN";
 * one secret would then silently stand in for the other.
 */
function addSecretEnv(target: { [name: string]: secretsmanager.ISecret }, envName: string, secret: secretsmanager.ISecret, prop: string): void {
  const existing = target[envName];
  if (existing !== undefined && existing !== secret) {
    throw new PropError(prop, `maps to environment variable ${envName}, which another secret already uses; rename the server or the key`);
  }
  target[envName] = secret;
}

function secretEnvName(server: string, key: string): string {
  return `HERMES_MCP_${server}_${key}`.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
}
