/**
 * Integration test of HermesLambdaAgent with its defaults. After a deploy the
 * assertions call the Function URL like Telegram would: a wrong webhook
 * secret is rejected with 403, the right one is accepted with 200 (the update
 * comes from a user who is not on the allow-list, so it is acknowledged and
 * dropped without waking the worker). Scheduled jobs are on by default, so
 * the agent's schedule group must exist and be active.
 *
 * `npx projen test:integ` checks the committed snapshot without AWS
 * credentials; deploy with `npx integ-runner --directory integ --update-on-failed`.
 */
import { ExpectedResult, IntegTest } from '@aws-cdk/integ-tests-alpha';
import { App, Stack } from 'aws-cdk-lib';
import { AgentAccess, HermesLambdaAgent } from '../src';

const app = new App();
const stack = new Stack(app, 'HermesLambdaAgentInteg');
const agent = new HermesLambdaAgent(stack, 'Agent', {
  access: AgentAccess.allowUsers({ telegram: ['111111111'] }),
  registerWebhook: false,
});

const integ = new IntegTest(app, 'LambdaAgent', { testCases: [stack] });
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

// Scheduled jobs (on by default): the agent's own schedule group exists.
integ.assertions.awsApiCall('Scheduler', 'getScheduleGroup', { Name: agent.scheduleGroup!.scheduleGroupName })
  .expect(ExpectedResult.objectLike({ Name: agent.scheduleGroup!.scheduleGroupName, State: 'ACTIVE' }));
