/**
 * Integration test of HermesAgentCoreAgent with its defaults (no webhook
 * registration: there is no bot token). After a deploy the assertions check
 * that the AgentCore runtime came up (its image built for ARM64 and started:
 * status READY) and call the Function URL like Telegram would: a wrong
 * webhook secret is rejected with 403, the right one is accepted with 200 (the
 * update comes from a user who is not on the allow-list, so it is acknowledged
 * and dropped without invoking the runtime).
 *
 * `npx projen test:integ` checks the committed snapshot without AWS
 * credentials; deploy with `npx integ-runner --directory integ --update-on-failed`.
 */
import { ExpectedResult, IntegTest } from '@aws-cdk/integ-tests-alpha';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { AgentAccess } from '../src';
import { HermesAgentCoreAgent } from '../src/agentcore';

const app = new App();
const stack = new Stack(app, 'HermesAgentCoreAgentInteg');
const agent = new HermesAgentCoreAgent(stack, 'Agent', {
  access: AgentAccess.allowUsers({ telegram: ['111111111'] }),
  registerWebhook: false,
  runtimeName: 'hermes_integ',
  idleTimeout: Duration.minutes(5),
});

const integ = new IntegTest(app, 'AgentCoreAgent', { testCases: [stack] });

// The runtime is up: AgentCore pulled the ARM64 image and reports READY.
const runtime = integ.assertions.awsApiCall('BedrockAgentCoreControl', 'getAgentRuntime', {
  agentRuntimeId: agent.runtime.agentRuntimeId,
}).expect(ExpectedResult.objectLike({ status: 'READY', agentRuntimeName: 'hermes_integ' }))
  .waitForAssertions({ totalTimeout: Duration.minutes(10), interval: Duration.seconds(30) });
runtime.provider.addToRolePolicy({ Effect: 'Allow', Action: ['bedrock-agentcore:GetAgentRuntime'], Resource: [agent.runtime.agentRuntimeArn] });

const url = `${agent.functionUrl.url}telegram`;
const update = JSON.stringify({ update_id: 1, message: { message_id: 1, date: 0, chat: { id: 222222222, type: 'private' }, from: { id: 222222222 }, text: 'hello' } });

// A request with a wrong secret token never gets past the ingress.
integ.assertions.httpApiCall(url, {
  method: 'POST',
  headers: { 'Content-Type': 'application/json', 'X-Telegram-Bot-Api-Secret-Token': 'not-the-secret' },
  body: update,
}).expect(ExpectedResult.objectLike({ status: 403 }));

// The generated secret (read the way an operator would) is accepted.
const secret = integ.assertions.awsApiCall('SecretsManager', 'getSecretValue', { SecretId: agent.telegram!.webhookSecret.secretArn });
secret.provider.addToRolePolicy({ Effect: 'Allow', Action: ['kms:Decrypt'], Resource: [agent.knowledgeBucket.encryptionKey!.keyArn] });
secret.next(integ.assertions.httpApiCall(url, {
  method: 'POST',
  headers: { 'Content-Type': 'application/json', 'X-Telegram-Bot-Api-Secret-Token': secret.getAttString('SecretString') },
  body: update,
}).expect(ExpectedResult.objectLike({ status: 200 })));
