import * as path from 'path';
import { App, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { nagFindings } from './nag';
import { KnowledgeBucket, SlackSecrets, TelegramSecrets } from '../src';

test('probe', () => {
  const app = new App();
  const stack = new Stack(app, 'S', { env: { account: '111111111111', region: 'us-east-1' } });
  const kb = new KnowledgeBucket(stack, 'Knowledge');
  kb.addFolder(path.join(__dirname, 'fixtures', 'knowledge'), { prefix: 'knowledge/' });
  new SlackSecrets(stack, 'Slack');
  new TelegramSecrets(stack, 'Telegram');
  const role = new iam.Role(stack, 'R', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
  kb.grantRead(role);
  console.log(nagFindings(stack).join('\n'));
});
