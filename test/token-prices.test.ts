import { AgentModel } from '../src';

describe('AgentModel.tokenPrices (estimates for the cost metric)', () => {
  test.each([
    ['us.anthropic.claude-sonnet-4-6', 3, 15],
    ['global.anthropic.claude-sonnet-4-5-20250929-v1:0', 3, 15],
    ['anthropic.claude-3-7-sonnet-20250219-v1:0', 3, 15],
    ['eu.anthropic.claude-opus-4-1-20250805-v1:0', 15, 75],
    ['us.anthropic.claude-opus-4-5-20251101-v1:0', 5, 25],
    ['us.anthropic.claude-haiku-4-5-20251001-v1:0', 1, 5],
    ['anthropic.claude-3-5-haiku-20241022-v1:0', 0.8, 4],
    ['anthropic.claude-3-haiku-20240307-v1:0', 0.25, 1.25],
    ['us.amazon.nova-micro-v1:0', 0.035, 0.14],
    ['amazon.nova-lite-v1:0', 0.06, 0.24],
    ['apac.amazon.nova-pro-v1:0', 0.8, 3.2],
    ['us.amazon.nova-premier-v1:0', 2.5, 12.5],
  ])('%s: $%d / $%d per million input / output tokens', (modelId, input, output) => {
    expect(AgentModel.bedrock(modelId).tokenPrices).toEqual({ inputPerMillion: input, outputPerMillion: output });
  });

  test.each(['us.meta.llama3-3-70b-instruct-v1:0', 'mistral.mistral-large-2407-v1:0', 'cohere.command-r-plus-v1:0'])(
    '%s: unknown, no estimate', (modelId) => {
      expect(AgentModel.bedrock(modelId).tokenPrices).toBeUndefined();
    });

  test('an OpenAI-compatible endpoint has no estimate', () => {
    expect(AgentModel.openAiCompatible({ baseUrl: 'https://api.deepseek.com/v1', modelName: 'deepseek-chat' }).tokenPrices).toBeUndefined();
  });
});
