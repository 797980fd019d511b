import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { AgentModel, HermesConfig } from '../src';

const ENV = { account: '111111111111', region: 'us-east-1' };
const INVOKE = ['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream'];
const PARTITION = { Ref: 'AWS::Partition' };
const REGION = { Ref: 'AWS::Region' };
const ACCOUNT = { Ref: 'AWS::AccountId' };

function newStack(): Stack {
  return new Stack(new App(), 'S', { env: ENV });
}

/** Grants `model` to a fresh role and returns the role's policy statements (none if no policy was created). */
function grantedStatements(model: AgentModel, stack: Stack = newStack()): { statements: any[]; grant: iam.Grant; template: Template } {
  const role = new iam.Role(stack, 'Role', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
  const grant = model.grantInvoke(role);
  const template = Template.fromStack(stack);
  const policies = Object.values(template.findResources('AWS::IAM::Policy'));
  expect(policies.length).toBeLessThanOrEqual(1);
  return { statements: policies.length === 0 ? [] : (policies[0] as any).Properties.PolicyDocument.Statement, grant, template };
}

function arn(...parts: any[]): any {
  return { 'Fn::Join': ['', ['arn:', PARTITION, ...parts]] };
}

describe('AgentModel.bedrock with a cross-region inference profile', () => {
  const model = AgentModel.bedrock('us.anthropic.claude-sonnet-4-6');
  const profileArn = arn(':bedrock:', REGION, ':', ACCOUNT, ':inference-profile/us.anthropic.claude-sonnet-4-6');

  test('grants invoke on the profile, and on the routed foundation model only through that profile', () => {
    const { statements, grant } = grantedStatements(model);
    expect(grant.success).toBe(true);
    expect(statements).toEqual([
      { Effect: 'Allow', Action: INVOKE, Resource: profileArn },
      {
        Effect: 'Allow',
        Action: INVOKE,
        Resource: arn(':bedrock:*::foundation-model/anthropic.claude-sonnet-4-6'),
        Condition: { StringEquals: { 'bedrock:InferenceProfileArn': profileArn } },
      },
    ]);
  });

  test('grants no wildcard model access and no model listing', () => {
    const { template, statements } = grantedStatements(model);
    const json = JSON.stringify(template.toJSON());
    expect(json).not.toMatch(/anthropic\.\*/);
    expect(json).not.toContain('foundation-model/*');
    expect(json).not.toContain('ListFoundationModels');
    const actions = statements.flatMap((s) => s.Action);
    expect(actions.filter((a: string) => a.includes('*'))).toEqual([]);
    expect(new Set(actions)).toEqual(new Set(INVOKE));
  });

  test('the profile ARN uses the region and account the policy is deployed to', () => {
    // pseudo parameters, not the env literals: the same ARN is right in every region the agent's stack is deployed to
    const { statements } = grantedStatements(model);
    expect(JSON.stringify(statements[0].Resource)).toContain('"Ref":"AWS::Region"');
    expect(JSON.stringify(statements[0].Resource)).toContain('"Ref":"AWS::AccountId"');
  });

  test.each([
    ['global.anthropic.claude-sonnet-4-6', 'anthropic.claude-sonnet-4-6'],
    ['eu.amazon.nova-pro-v1:0', 'amazon.nova-pro-v1:0'],
    ['apac.anthropic.claude-3-5-sonnet-20240620-v1:0', 'anthropic.claude-3-5-sonnet-20240620-v1:0'],
    ['us-gov.anthropic.claude-3-haiku-20240307-v1:0', 'anthropic.claude-3-haiku-20240307-v1:0'],
  ])('profile %s routes to foundation model %s', (profile, foundation) => {
    const { statements } = grantedStatements(AgentModel.bedrock(profile));
    expect(statements).toHaveLength(2);
    expect(statements[0].Resource).toEqual(arn(':bedrock:', REGION, ':', ACCOUNT, `:inference-profile/${profile}`));
    expect(statements[1].Resource).toEqual(arn(`:bedrock:*::foundation-model/${foundation}`));
  });

  test('the region option pins the profile ARN', () => {
    const { statements } = grantedStatements(AgentModel.bedrock('us.anthropic.claude-sonnet-4-6', { region: 'us-west-2' }));
    const pinned = arn(':bedrock:us-west-2:', ACCOUNT, ':inference-profile/us.anthropic.claude-sonnet-4-6');
    expect(statements[0].Resource).toEqual(pinned);
    expect(statements[1].Condition).toEqual({ StringEquals: { 'bedrock:InferenceProfileArn': pinned } });
  });

  test('exposes the model id and the provider', () => {
    expect(model.modelId).toBe('us.anthropic.claude-sonnet-4-6');
    expect(model.provider).toBe('bedrock');
  });
});

describe('AgentModel.bedrock with a foundation model', () => {
  test('grants invoke on that one model in the agent region', () => {
    const { statements } = grantedStatements(AgentModel.bedrock('anthropic.claude-3-5-sonnet-20240620-v1:0'));
    expect(statements).toEqual([{
      Effect: 'Allow',
      Action: INVOKE,
      Resource: arn(':bedrock:', REGION, '::foundation-model/anthropic.claude-3-5-sonnet-20240620-v1:0'),
    }]);
  });

  test('the region option pins the model ARN', () => {
    const { statements } = grantedStatements(AgentModel.bedrock('amazon.nova-pro-v1:0', { region: 'eu-central-1' }));
    expect(statements).toEqual([{ Effect: 'Allow', Action: INVOKE, Resource: arn(':bedrock:eu-central-1::foundation-model/amazon.nova-pro-v1:0') }]);
  });
});

describe('AgentModel.bedrock with a guardrail', () => {
  test('a guardrail id grants ApplyGuardrail on the guardrail in the agent account and region', () => {
    const model = AgentModel.bedrock('amazon.nova-pro-v1:0', { guardrail: { identifier: 'abc123def456', version: '3' } });
    const { statements } = grantedStatements(model);
    expect(statements).toHaveLength(2);
    expect(statements[1]).toEqual({
      Effect: 'Allow',
      Action: 'bedrock:ApplyGuardrail',
      Resource: arn(':bedrock:', REGION, ':', ACCOUNT, ':guardrail/abc123def456'),
    });
  });

  test('a guardrail ARN is granted as it is', () => {
    const guardrailArn = 'arn:aws:bedrock:us-west-2:222222222222:guardrail/abc123def456';
    const model = AgentModel.bedrock('us.amazon.nova-pro-v1:0', { guardrail: { identifier: guardrailArn } });
    const { statements } = grantedStatements(model);
    expect(statements).toHaveLength(3);
    expect(statements[2]).toEqual({ Effect: 'Allow', Action: 'bedrock:ApplyGuardrail', Resource: guardrailArn });
  });

  test('with the region option, the guardrail ARN uses that region', () => {
    const model = AgentModel.bedrock('amazon.nova-pro-v1:0', { region: 'eu-west-1', guardrail: { identifier: 'g1' } });
    const { statements } = grantedStatements(model);
    expect(statements[1].Resource).toEqual(arn(':bedrock:eu-west-1:', ACCOUNT, ':guardrail/g1'));
  });

  test.each(['anthropic.claude-sonnet-4-6', 'us.anthropic.claude-sonnet-4-6', 'global.anthropic.claude-opus-4-6-v1'])(
    'a guardrail with the Claude model %s fails: the pinned Hermes would call Claude without it', (modelId) => {
      expect(() => AgentModel.bedrock(modelId, { guardrail: { identifier: 'g1' } }))
        .toThrow(/^BedrockModelOptions\.guardrail cannot be enforced for .*Anthropic Messages API.*silently ignored/);
    });
});

describe('AgentModel.openAiCompatible', () => {
  test('with an API key, grants no AWS permission: the key travels as a secret environment variable', () => {
    const stack = newStack();
    const apiKey = secretsmanager.Secret.fromSecretNameV2(stack, 'Key', 'deepseek/api-key');
    const model = AgentModel.openAiCompatible({ baseUrl: 'https://api.deepseek.com/v1', modelName: 'deepseek-chat', apiKey });
    expect(model.provider).toBe('custom');
    expect(model.modelId).toBe('deepseek-chat');
    const { statements, grant } = grantedStatements(model, stack);
    expect(statements).toEqual([]);
    expect(grant.success).toBe(false);
    expect(HermesConfig.render({ model }).secretEnvironment).toEqual({ HERMES_MODEL_API_KEY: apiKey });
  });

  test('without an API key, grants nothing', () => {
    const model = AgentModel.openAiCompatible({ baseUrl: 'https://vllm.internal.example.com/v1', modelName: 'qwen3' });
    const { statements, grant, template } = grantedStatements(model);
    expect(statements).toEqual([]);
    expect(grant.success).toBe(false);
    template.resourceCountIs('AWS::IAM::Policy', 0);
  });
});

describe('AgentModel validation', () => {
  test.each([
    'arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-6',
    'claude-sonnet',
    'Anthropic.Claude',
    'us.anthropic.claude sonnet',
    '',
  ])('bedrock model id %j is rejected', (modelId) => {
    expect(() => AgentModel.bedrock(modelId)).toThrow(
      `AgentModel.bedrock modelId must be a Bedrock model id or inference profile id such as "us.anthropic.claude-sonnet-4-6" (not an ARN) (got ${JSON.stringify(modelId)})`);
  });

  test.each(['ABC123', 'abc_123', 'arn:aws:bedrock:us-east-1:123:guardrail/abc', 'arn:aws:s3:::bucket'])('guardrail identifier %j is rejected', (identifier) => {
    expect(() => AgentModel.bedrock('anthropic.claude-sonnet-4-6', { guardrail: { identifier } })).toThrow(
      `BedrockGuardrail.identifier must be a guardrail id (lowercase letters and digits) or guardrail ARN (got ${JSON.stringify(identifier)})`);
  });

  test.each(['0', 'draft', '1.0', '123456789'])('guardrail version %j is rejected', (version) => {
    expect(() => AgentModel.bedrock('anthropic.claude-sonnet-4-6', { guardrail: { identifier: 'abc', version } })).toThrow(
      `BedrockGuardrail.version must be a version number or "DRAFT" (got ${JSON.stringify(version)})`);
  });

  test.each(['US-EAST-1', 'us-east', 'useast1', 'us-east-1a'])('region %j is rejected', (region) => {
    expect(() => AgentModel.bedrock('anthropic.claude-sonnet-4-6', { region })).toThrow(
      `BedrockModelOptions.region must be an AWS region name such as "us-east-1" (got ${JSON.stringify(region)})`);
  });

  test.each(['us-gov-west-1', 'ap-southeast-2', 'eu-central-1'])('region %j is accepted', (region) => {
    expect(() => AgentModel.bedrock('anthropic.claude-sonnet-4-6', { region })).not.toThrow();
  });

  test('an http:// baseUrl is rejected', () => {
    expect(() => AgentModel.openAiCompatible({ baseUrl: 'http://api.deepseek.com/v1', modelName: 'deepseek-chat' })).toThrow(
      'OpenAiCompatibleModelOptions.baseUrl must use https:// so the API key never crosses the network in clear text (got "http://api.deepseek.com/v1")');
  });

  test('a baseUrl that is not a URL is rejected', () => {
    expect(() => AgentModel.openAiCompatible({ baseUrl: 'api.deepseek.com/v1', modelName: 'deepseek-chat' })).toThrow(
      'OpenAiCompatibleModelOptions.baseUrl must be an absolute URL (got "api.deepseek.com/v1")');
  });

  test('an empty modelName is rejected', () => {
    expect(() => AgentModel.openAiCompatible({ baseUrl: 'https://api.deepseek.com/v1', modelName: '' })).toThrow(
      'OpenAiCompatibleModelOptions.modelName must be between 1 and 256 characters long (got 0)');
  });
});

describe('model context length (Hermes model.context_length)', () => {
  const contextLength = (model: AgentModel) => HermesConfig.render({ model }).config.model.context_length;

  test.each([
    ['us.anthropic.claude-sonnet-4-6', 1_000_000],
    ['global.anthropic.claude-opus-4-6-v1', 1_000_000],
    ['anthropic.claude-sonnet-4-5-20250929-v1:0', 200_000],
    ['us.anthropic.claude-haiku-4-5-20251001-v1:0', 200_000],
    ['us.amazon.nova-pro-v1:0', 300_000],
    ['amazon.nova-micro-v1:0', 128_000],
    ['cohere.command-r-plus-v1:0', 128_000],
  ])('a Bedrock model always has one, so Hermes never probes the window: %s -> %d', (modelId, expected) => {
    expect(contextLength(AgentModel.bedrock(modelId))).toBe(expected);
  });

  test('the option overrides the table', () => {
    expect(contextLength(AgentModel.bedrock('us.amazon.nova-pro-v1:0', { contextLength: 64_000 }))).toBe(64_000);
  });

  test('an OpenAI-compatible model has one only when given', () => {
    const base = { baseUrl: 'https://api.deepseek.com/v1', modelName: 'deepseek-chat' };
    expect(contextLength(AgentModel.openAiCompatible(base))).toBeUndefined();
    expect(HermesConfig.render({ model: AgentModel.openAiCompatible(base) }).config.auxiliary).toBeUndefined();
    const given = HermesConfig.render({ model: AgentModel.openAiCompatible({ ...base, contextLength: 128_000 }) }).config;
    expect(given.model.context_length).toBe(128_000);
    expect(given.auxiliary).toEqual({ compression: { context_length: 128_000 } });
  });

  test('compression summaries get the same window (Hermes resolves it separately for its auxiliary client)', () => {
    const config = HermesConfig.render({ model: AgentModel.bedrock('us.amazon.nova-pro-v1:0', { contextLength: 64_000 }) }).config;
    expect(config.auxiliary).toEqual({ compression: { context_length: 64_000 } });
  });

  test.each([999, 10_000_001, 1.5])('contextLength %d fails synth naming the prop', (value) => {
    expect(() => AgentModel.bedrock('us.amazon.nova-pro-v1:0', { contextLength: value }))
      .toThrow(`BedrockModelOptions.contextLength must be an integer between 1000 and 10000000 (got ${value})`);
    expect(() => AgentModel.openAiCompatible({ baseUrl: 'https://x.example/v1', modelName: 'm', contextLength: value }))
      .toThrow(`OpenAiCompatibleModelOptions.contextLength must be an integer between 1000 and 10000000 (got ${value})`);
  });

  test('a guardrail is rendered with the synchronous stream mode', () => {
    const config = HermesConfig.render({ model: AgentModel.bedrock('us.amazon.nova-pro-v1:0', { guardrail: { identifier: 'g1', version: '2' } }) }).config;
    expect(config.bedrock.guardrail).toEqual({ guardrail_identifier: 'g1', guardrail_version: '2', stream_processing_mode: '' });
  });
});
