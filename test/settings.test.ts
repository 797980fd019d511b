import { App, Duration, Stack } from 'aws-cdk-lib';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import {
  AgentModel, ApprovalMode, CronApprovalMode, HermesConfig, HermesSettings, McpHttpServerOptions, McpServer,
  McpStdioServerOptions, ReasoningEffort,
} from '../src';

const ENV = { account: '111111111111', region: 'us-east-1' };
const BEDROCK = AgentModel.bedrock('us.anthropic.claude-sonnet-4-6');

function newStack(): Stack {
  return new Stack(new App(), 'S', { env: ENV });
}

function secret(stack: Stack, id: string): secretsmanager.ISecret {
  return secretsmanager.Secret.fromSecretNameV2(stack, id, `mcp/${id}`);
}

/** The settings document as the runtime receives it. */
function documentOf(config: HermesConfig, stack: Stack): any {
  const text = stack.resolve(config.toDocument(stack));
  expect(typeof text).toBe('string');
  return JSON.parse(text);
}

function render(settings: HermesSettings): HermesConfig {
  return HermesConfig.render({ model: BEDROCK, settings });
}

describe('HermesConfig.render defaults', () => {
  test('bedrock model with discovery off, secure defaults, no empty sections', () => {
    const config = HermesConfig.render({ model: BEDROCK });
    expect(config.config).toEqual({
      model: { provider: 'bedrock', default: 'us.anthropic.claude-sonnet-4-6', context_length: 1_000_000 },
      bedrock: { discovery: { enabled: false } },
      // compression summaries resolve the window separately: same value, no probe
      auxiliary: { compression: { context_length: 1_000_000 } },
      security: { redact_secrets: true, allow_lazy_installs: false, tirith_enabled: false },
    });
    expect(config.soul).toBeUndefined();
    expect(config.projectContext).toBeUndefined();
    expect(config.secretEnvironment).toEqual({});
  });

  test('empty settings render the same as no settings', () => {
    expect(render({}).config).toEqual(HermesConfig.render({ model: BEDROCK }).config);
    expect(render({ memory: {}, compression: {}, approvals: {}, disabledToolsets: [], mcpServers: [] }).config)
      .toEqual(HermesConfig.render({ model: BEDROCK }).config);
  });

  test('bedrock region and guardrail (DRAFT by default) land in the bedrock section', () => {
    const model = AgentModel.bedrock('amazon.nova-pro-v1:0', { region: 'eu-west-1', guardrail: { identifier: 'abc123' } });
    expect(HermesConfig.render({ model }).config.bedrock).toEqual({
      discovery: { enabled: false },
      region: 'eu-west-1',
      guardrail: { guardrail_identifier: 'abc123', guardrail_version: 'DRAFT', stream_processing_mode: '' },
    });
  });

  test('redactSecrets can be turned off explicitly', () => {
    expect(render({ redactSecrets: false }).config.security).toEqual({ redact_secrets: false, allow_lazy_installs: false, tirith_enabled: false });
  });

  test('the settings environment variable name is stable', () => {
    expect(HermesConfig.SETTINGS_ENV).toBe('HERMES_AWS_SETTINGS');
  });
});

describe('HermesConfig.render fully featured', () => {
  const stack = newStack();
  const githubToken = secret(stack, 'github');
  const searchKey = secret(stack, 'search');
  const settings: HermesSettings = {
    maxTurns: 40,
    reasoningEffort: ReasoningEffort.HIGH,
    memory: { enabled: true, userProfile: false, memoryCharLimit: 5000, userCharLimit: 100_000 },
    compression: { enabled: true, threshold: 0.7, targetRatio: 0.3, protectLastMessages: 0 },
    disabledToolsets: ['browser', 'image_gen', 'terminal'],
    redactSecrets: true,
    approvals: {
      mode: ApprovalMode.MANUAL,
      cronMode: CronApprovalMode.APPROVE,
      timeout: Duration.minutes(2),
      denyCommands: ['git push --force*', 'rm -rf /*'],
    },
    mcpServers: [
      McpServer.stdio('github', {
        command: 'npx',
        args: ['-y', '@modelcontextprotocol/server-github'],
        environment: { GITHUB_HOST: 'github.com' },
        secretEnvironment: { GITHUB_PERSONAL_ACCESS_TOKEN: githubToken },
        includeTools: ['search_issues', 'get_issue'],
        timeout: Duration.seconds(120),
      }),
      McpServer.http('web-search', {
        url: 'https://search.example.com/mcp',
        headers: { 'X-Client': 'hermes' },
        secretHeaders: { Authorization: searchKey },
        excludeTools: ['delete_index'],
        connectTimeout: Duration.seconds(10),
      }),
    ],
    soul: 'You are Ada, an SRE assistant.',
    projectContext: '# Project\nWe run on ECS.',
  };
  const config = HermesConfig.render({
    model: BEDROCK,
    settings,
    shapeDisabledToolsets: ['terminal', 'computer_use'],
    shapeConfig: { agent: { max_turns: 40, tool_timeout: 30 }, terminal: { backend: 'local' }, security: { allow_lazy_installs: false } },
  });

  test('agent section: max turns, reasoning effort, shape and user toolsets merged without duplicates', () => {
    expect(config.config.agent).toEqual({
      max_turns: 40,
      reasoning_effort: 'high',
      disabled_toolsets: ['terminal', 'computer_use', 'browser', 'image_gen'],
      tool_timeout: 30,
    });
  });

  test('memory, compression, security and approvals sections', () => {
    expect(config.config.memory).toEqual({ memory_enabled: true, user_profile_enabled: false, memory_char_limit: 5000, user_char_limit: 100_000 });
    expect(config.config.compression).toEqual({ enabled: true, threshold: 0.7, target_ratio: 0.3, protect_last_n: 0 });
    expect(config.config.security).toEqual({ redact_secrets: true, allow_lazy_installs: false, tirith_enabled: false });
    expect(config.config.approvals).toEqual({ mode: 'manual', cron_mode: 'approve', timeout: 120, deny: ['git push --force*', 'rm -rf /*'] });
  });

  test('stdio MCP server: command, args, plain env and ${VAR} references for secret env, tools, timeout', () => {
    expect(config.config.mcp_servers.github).toEqual({
      command: 'npx',
      args: ['-y', '@modelcontextprotocol/server-github'],
      env: {
        GITHUB_HOST: 'github.com',
        GITHUB_PERSONAL_ACCESS_TOKEN: '${HERMES_MCP_GITHUB_GITHUB_PERSONAL_ACCESS_TOKEN}',
      },
      tools: { include: ['search_issues', 'get_issue'] },
      timeout: 120,
    });
  });

  test('http MCP server: url, plain and secret headers, tools, connect timeout', () => {
    expect(config.config.mcp_servers['web-search']).toEqual({
      url: 'https://search.example.com/mcp',
      headers: { 'X-Client': 'hermes', 'Authorization': '${HERMES_MCP_WEB_SEARCH_AUTHORIZATION}' },
      tools: { exclude: ['delete_index'] },
      connect_timeout: 10,
    });
  });

  test('secret environment maps each referenced variable to its secret', () => {
    expect(config.secretEnvironment).toEqual({
      HERMES_MCP_GITHUB_GITHUB_PERSONAL_ACCESS_TOKEN: githubToken,
      HERMES_MCP_WEB_SEARCH_AUTHORIZATION: searchKey,
    });
    expect(settings.mcpServers![0].secretEnvironment).toEqual({ HERMES_MCP_GITHUB_GITHUB_PERSONAL_ACCESS_TOKEN: githubToken });
    expect(settings.mcpServers![1].name).toBe('web-search');
  });

  test('soul, project context and shape config', () => {
    expect(config.soul).toBe('You are Ada, an SRE assistant.');
    expect(config.projectContext).toBe('# Project\nWe run on ECS.');
    expect(config.config.terminal).toEqual({ backend: 'local' });
    // the model section is untouched by the merge
    expect(config.config.model).toEqual({ provider: 'bedrock', default: 'us.anthropic.claude-sonnet-4-6', context_length: 1_000_000 });
  });

  test('toDocument: version 1, the config, texts and the sorted names of the secret variables only', () => {
    const doc = documentOf(config, stack);
    expect(doc).toEqual({
      version: 1,
      config: config.config,
      soul: 'You are Ada, an SRE assistant.',
      projectContext: '# Project\nWe run on ECS.',
      secretEnv: ['HERMES_MCP_GITHUB_GITHUB_PERSONAL_ACCESS_TOKEN', 'HERMES_MCP_WEB_SEARCH_AUTHORIZATION'],
    });
    const text = JSON.stringify(doc);
    expect(text).not.toContain('arn:');
    expect(text).not.toContain('mcp/github');
  });
});

describe('HermesConfig.render shape config', () => {
  test('deep-merges objects, shape values win, arrays are replaced', () => {
    const config = HermesConfig.render({
      model: BEDROCK,
      settings: { maxTurns: 10, reasoningEffort: ReasoningEffort.LOW, disabledToolsets: ['browser'] },
      shapeConfig: {
        agent: { max_turns: 5, disabled_toolsets: ['tts'] },
        bedrock: { discovery: { refresh: 0 } },
        terminal: { backend: 'docker', docker: { image: 'x' } },
      },
    });
    expect(config.config.agent).toEqual({ max_turns: 5, reasoning_effort: 'low', disabled_toolsets: ['tts'] });
    expect(config.config.bedrock).toEqual({ discovery: { enabled: false, refresh: 0 } });
    expect(config.config.terminal).toEqual({ backend: 'docker', docker: { image: 'x' } });
  });

  test('shape toolsets alone make an agent section', () => {
    const config = HermesConfig.render({ model: BEDROCK, shapeDisabledToolsets: ['terminal', 'terminal'] });
    expect(config.config.agent).toEqual({ disabled_toolsets: ['terminal'] });
  });
});

describe('HermesConfig with an OpenAI-compatible model', () => {
  test('the API key is an environment reference: no ARN, name or value of the secret reaches the config', () => {
    const stack = newStack();
    const apiKey = new secretsmanager.Secret(stack, 'ApiKey', { secretName: 'deepseek-api-key-value' });
    const model = AgentModel.openAiCompatible({ baseUrl: 'https://api.deepseek.com/v1', modelName: 'deepseek-chat', apiKey });
    const config = HermesConfig.render({ model });
    expect(config.config.model).toEqual({
      provider: 'custom',
      default: 'deepseek-chat',
      base_url: 'https://api.deepseek.com/v1',
      api_key: '${HERMES_MODEL_API_KEY}',
    });
    expect(config.config.bedrock).toBeUndefined();
    expect(config.secretEnvironment).toEqual({ HERMES_MODEL_API_KEY: apiKey });

    const doc = documentOf(config, stack);
    expect(doc.secretEnv).toEqual(['HERMES_MODEL_API_KEY']);
    const text = JSON.stringify(doc);
    for (const forbidden of ['arn:', 'Ref', 'Fn::', 'secretsmanager', 'deepseek-api-key-value', stack.getLogicalId(apiKey.node.defaultChild as secretsmanager.CfnSecret)]) {
      expect(text).not.toContain(forbidden);
    }
  });

  test('without an API key there is no api_key and no secret', () => {
    const config = HermesConfig.render({ model: AgentModel.openAiCompatible({ baseUrl: 'https://llm.example.com/v1', modelName: 'qwen3' }) });
    expect(config.config.model).toEqual({ provider: 'custom', default: 'qwen3', base_url: 'https://llm.example.com/v1' });
    expect(config.secretEnvironment).toEqual({});
  });

  test('secretEnv lists the model key and MCP secrets sorted by name', () => {
    const stack = newStack();
    const model = AgentModel.openAiCompatible({ baseUrl: 'https://llm.example.com/v1', modelName: 'm', apiKey: secret(stack, 'model') });
    const config = HermesConfig.render({
      model,
      settings: {
        mcpServers: [
          McpServer.stdio('zeta', { command: 'zeta', secretEnvironment: { TOKEN: secret(stack, 'zeta') } }),
          McpServer.stdio('alpha', { command: 'alpha', secretEnvironment: { B: secret(stack, 'b'), A: secret(stack, 'a') } }),
        ],
      },
    });
    expect(documentOf(config, stack).secretEnv).toEqual(['HERMES_MCP_ALPHA_A', 'HERMES_MCP_ALPHA_B', 'HERMES_MCP_ZETA_TOKEN', 'HERMES_MODEL_API_KEY']);
  });
});

describe('McpServer', () => {
  test('stdio defaults: empty args, no env, no tools, no timeouts', () => {
    const server = McpServer.stdio('files', { command: 'mcp-files' });
    expect(render({ mcpServers: [server] }).config.mcp_servers).toEqual({ files: { command: 'mcp-files', args: [] } });
    expect(server.secretEnvironment).toEqual({});
  });

  test.each(['http://localhost:8080/mcp', 'http://127.0.0.1/mcp', 'http://[::1]:9000/mcp', 'https://mcp.example.com'])('http url %s is accepted', (url) => {
    const server = McpServer.http('local', { url });
    expect(render({ mcpServers: [server] }).config.mcp_servers.local).toEqual({ url });
  });

  test('secret variable names are upper-cased, with non-alphanumerics turned into "_"', () => {
    const stack = newStack();
    const server = McpServer.http('my-api', { url: 'https://x.example.com', secretHeaders: { 'x-api-key': secret(stack, 'k') } });
    expect(Object.keys(server.secretEnvironment)).toEqual(['HERMES_MCP_MY_API_X_API_KEY']);
  });
});

describe('HermesConfig validation', () => {
  function expectRenderError(settings: HermesSettings, message: string | RegExp): void {
    expect(() => render(settings)).toThrow(message);
  }

  test.each([0, 1001, 2.5])('maxTurns %d', (maxTurns) => {
    expectRenderError({ maxTurns }, `HermesSettings.maxTurns must be an integer between 1 and 1000 (got ${maxTurns})`);
  });

  test.each([1, 1000])('maxTurns %d is accepted', (maxTurns) => {
    expect(render({ maxTurns }).config.agent).toEqual({ max_turns: maxTurns });
  });

  test('soul longer than 20000 characters', () => {
    expectRenderError({ soul: 'x'.repeat(20_001) }, 'HermesSettings.soul must be at most 20000 characters long (got 20001)');
    expect(render({ soul: 'x'.repeat(20_000) }).soul).toHaveLength(20_000);
  });

  test('projectContext longer than 20000 characters', () => {
    expectRenderError({ projectContext: 'x'.repeat(25_000) }, 'HermesSettings.projectContext must be at most 20000 characters long (got 25000)');
  });

  test.each([99, 100_001, 150.5])('memory.memoryCharLimit %d', (memoryCharLimit) => {
    expectRenderError({ memory: { memoryCharLimit } }, `HermesSettings.memory.memoryCharLimit must be an integer between 100 and 100000 (got ${memoryCharLimit})`);
  });

  test.each([0, 100_001])('memory.userCharLimit %d', (userCharLimit) => {
    expectRenderError({ memory: { userCharLimit } }, `HermesSettings.memory.userCharLimit must be an integer between 100 and 100000 (got ${userCharLimit})`);
  });

  test.each([0, 1.5, -0.1, NaN])('compression.threshold %d', (threshold) => {
    expectRenderError({ compression: { threshold } }, `HermesSettings.compression.threshold must be a number greater than 0 and at most 1 (got ${threshold})`);
  });

  test('compression.threshold 1 is accepted', () => {
    expect(render({ compression: { threshold: 1 } }).config.compression).toEqual({ threshold: 1 });
  });

  test.each([1, 0])('compression.targetRatio %d', (targetRatio) => {
    expectRenderError({ compression: { targetRatio } }, `HermesSettings.compression.targetRatio must be a number greater than 0 and at most 0.999 (got ${targetRatio})`);
  });

  test.each([-1, 1001, 0.5])('compression.protectLastMessages %d', (protectLastMessages) => {
    expectRenderError({ compression: { protectLastMessages } },
      `HermesSettings.compression.protectLastMessages must be an integer between 0 and 1000 (got ${protectLastMessages})`);
  });

  test.each([
    [Duration.seconds(0), 0],
    [Duration.hours(2), 7200],
    [Duration.millis(500), 0.5],
  ])('approvals.timeout %s', (timeout, seconds) => {
    expectRenderError({ approvals: { timeout } }, `HermesSettings.approvals.timeout must be a whole number of seconds between 1 and 3600 (got ${seconds})`);
  });

  test('approvals.timeout of 1.5 seconds is refused by name, not by CDK\'s conversion error', () => {
    expectRenderError({ approvals: { timeout: Duration.millis(1500) } },
      'HermesSettings.approvals.timeout must be a whole number of seconds between 1 and 3600 (got 1.5)');
  });

  test('approvals.timeout of exactly one hour is accepted', () => {
    expect(render({ approvals: { timeout: Duration.hours(1) } }).config.approvals).toEqual({ timeout: 3600 });
  });

  test('unknown toolset: the message names it and lists the known toolsets', () => {
    expectRenderError({ disabledToolsets: ['browser', 'shell'] },
      /^HermesSettings\.disabledToolsets contains unknown toolset "shell"; known toolsets: browser, clarify, code_execution, .*\bterminal\b.*, yuanbao$/);
  });

  test('two MCP servers with the same name', () => {
    expectRenderError({ mcpServers: [McpServer.stdio('tools', { command: 'a' }), McpServer.http('tools', { url: 'https://b.example.com' })] },
      'HermesSettings.mcpServers has two servers named "tools"');
  });

  test.each(['Tools', '1tools', 'tools.v2', `t${'x'.repeat(48)}`, ''])('MCP server name %j', (name) => {
    const message = `McpServer name must be lowercase letters, digits, "_" and "-", starting with a letter, at most 48 characters (got ${JSON.stringify(name)})`;
    expect(() => McpServer.stdio(name, { command: 'x' })).toThrow(message);
    expect(() => McpServer.http(name, { url: 'https://x.example.com' })).toThrow(message);
  });

  test('MCP stdio command must not be empty', () => {
    expect(() => McpServer.stdio('s', { command: '' })).toThrow('McpServer "s" command must be between 1 and 1024 characters long (got 0)');
  });

  test.each(['1ABC', 'MY-VAR', 'A B'])('MCP environment name %j', (key) => {
    const options: McpStdioServerOptions = { command: 'x', environment: { [key]: 'v' } };
    expect(() => McpServer.stdio('s', options))
      .toThrow(`McpServer "s" environment must be keys that are environment variable names (got ${JSON.stringify(key)})`);
  });

  test('MCP secretEnvironment name', () => {
    const stack = newStack();
    expect(() => McpServer.stdio('s', { command: 'x', secretEnvironment: { 'BAD-NAME': secret(stack, 'k') } }))
      .toThrow('McpServer "s" secretEnvironment must be keys that are environment variable names (got "BAD-NAME")');
  });

  test('an environment variable in both environment and secretEnvironment', () => {
    const stack = newStack();
    expect(() => McpServer.stdio('s', { command: 'x', environment: { TOKEN: 'plain' }, secretEnvironment: { TOKEN: secret(stack, 'k') } }))
      .toThrow('McpServer "s" environment.TOKEN is also set in secretEnvironment; set it in one of them');
  });

  test.each(['http://mcp.example.com/mcp', 'ftp://localhost/mcp', 'ws://127.0.0.1/mcp'])('MCP url %s (not https, not http to localhost)', (url) => {
    expect(() => McpServer.http('remote', { url }))
      .toThrow(`McpServer "remote" url must use https:// (plain http:// only to localhost) (got ${JSON.stringify(url)})`);
  });

  test('MCP url that is not a URL', () => {
    expect(() => McpServer.http('remote', { url: 'mcp.example.com/mcp' }))
      .toThrow('McpServer "remote" url must be an absolute URL (got "mcp.example.com/mcp")');
  });

  test.each(['X Api Key', 'X_Api_Key', 'Authorization:'])('MCP secret header name %j', (header) => {
    const stack = newStack();
    const options: McpHttpServerOptions = { url: 'https://x.example.com', secretHeaders: { [header]: secret(stack, 'k') } };
    expect(() => McpServer.http('remote', options))
      .toThrow(`McpServer "remote" secretHeaders must be an HTTP header name (got ${JSON.stringify(header)})`);
  });

  test('two servers whose secret variables normalise to the same name', () => {
    const stack = newStack();
    const settings: HermesSettings = {
      mcpServers: [
        McpServer.stdio('github', { command: 'a', secretEnvironment: { ENTERPRISE_TOKEN: secret(stack, 'public') } }),
        McpServer.stdio('github-enterprise', { command: 'b', secretEnvironment: { TOKEN: secret(stack, 'enterprise') } }),
      ],
    };
    expectRenderError(settings, 'HermesSettings.mcpServers "github-enterprise" maps to environment variable HERMES_MCP_GITHUB_ENTERPRISE_TOKEN, ' +
      'which another secret already uses; rename the server or the key');
  });

  test('two keys of one server whose secret variables normalise to the same name', () => {
    const stack = newStack();
    expect(() => McpServer.stdio('s', { command: 'x', secretEnvironment: { token: secret(stack, 'a'), TOKEN: secret(stack, 'b') } }))
      .toThrow('McpServer "s" secretEnvironment.TOKEN maps to environment variable HERMES_MCP_S_TOKEN, which another secret already uses; rename the server or the key');
    expect(() => McpServer.http('s', { url: 'https://x.example.com', secretHeaders: { 'X-Key': secret(stack, 'c'), 'x-key': secret(stack, 'd') } }))
      .toThrow('McpServer "s" secretHeaders.x-key maps to environment variable HERMES_MCP_S_X_KEY, which another secret already uses; rename the server or the key');
  });

  test('the same secret under two keys that normalise alike is fine', () => {
    const stack = newStack();
    const shared = secret(stack, 'shared');
    const server = McpServer.stdio('s', { command: 'x', secretEnvironment: { token: shared, TOKEN: shared } });
    expect(server.secretEnvironment).toEqual({ HERMES_MCP_S_TOKEN: shared });
  });

  test.each([
    ['timeout', Duration.seconds(0), 0, 3600],
    ['timeout', Duration.seconds(3601), 3601, 3600],
    ['connectTimeout', Duration.minutes(11), 660, 600],
    ['connectTimeout', Duration.millis(100), 0.1, 600],
  ])('MCP %s %s', (prop, value, seconds, max) => {
    const message = `McpServer "s" ${prop} must be a whole number of seconds between 1 and ${max} (got ${seconds})`;
    expect(() => McpServer.stdio('s', { command: 'x', [prop]: value })).toThrow(message);
    expect(() => McpServer.http('s', { url: 'https://x.example.com', [prop]: value })).toThrow(message);
  });
});
