/**
 * Minimal app: a Telegram assistant on Bedrock AgentCore Runtime (one microVM
 * per chat, nothing running while idle).
 *
 *   npx cdk synth --app 'npx ts-node --transpile-only agentcore-agent.ts'
 *
 * The same app exists in Python (examples/python/agentcore_agent.py) and Java
 * (examples/java); the test command checks their templates are identical.
 */
import { App, Stack } from 'aws-cdk-lib';
import { AgentAccess, HermesAgentCoreAgent } from '../../src';

/** Adds the example's stack to `app`. */
export function agentCoreAgentExample(app: App): Stack[] {
  const stack = new Stack(app, 'HermesAgentCoreExample');
  new HermesAgentCoreAgent(stack, 'Agent', {
    access: AgentAccess.allowUsers({ telegram: ['123456789'] }),
    settings: { soul: 'You are a patient research assistant. Cite your sources.' },
  });
  return [stack];
}

if (require.main === module) {
  const app = new App();
  agentCoreAgentExample(app);
  app.synth();
}
