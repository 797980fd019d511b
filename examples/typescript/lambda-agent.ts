/**
 * Minimal app: a wake-on-demand Telegram assistant on AWS Lambda.
 *
 *   npx cdk synth --app 'npx ts-node --transpile-only lambda-agent.ts'
 *
 * The same app exists in Python (examples/python/lambda_agent.py) and Java
 * (examples/java); the test command checks their templates are identical.
 */
import { App, Stack } from 'aws-cdk-lib';
import { AgentAccess, AgentModel, HermesLambdaAgent } from '../../src';

/** Adds the example's stack to `app`. */
export function lambdaAgentExample(app: App): Stack[] {
  const stack = new Stack(app, 'HermesLambdaAgentExample');
  new HermesLambdaAgent(stack, 'Agent', {
    access: AgentAccess.allowUsers({ telegram: ['123456789'] }),
    model: AgentModel.bedrock('us.anthropic.claude-sonnet-4-6'),
    settings: { soul: 'You are a concise personal assistant.' },
  });
  return [stack];
}

if (require.main === module) {
  const app = new App();
  lambdaAgentExample(app);
  app.synth();
}
