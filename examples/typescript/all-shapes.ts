/**
 * The example app: every shape this library offers, in the stacks a platform
 * team would write. `npx projen example` synthesizes it and prints a summary.
 */
import * as path from 'path';
import { App, Stack, StackProps } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { KnowledgeBucket, SlackSecrets, TelegramSecrets } from '../../src';

/** The pieces every agent shares: knowledge, chat credentials. */
export class SharedStack extends Stack {
  public readonly knowledge: KnowledgeBucket;
  public readonly slack: SlackSecrets;
  public readonly telegram: TelegramSecrets;

  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);
    this.knowledge = new KnowledgeBucket(this, 'Knowledge');
    this.knowledge.addFolder(path.join(__dirname, 'knowledge'), { prefix: KnowledgeBucket.KNOWLEDGE_PREFIX });
    this.slack = new SlackSecrets(this, 'Slack');
    this.telegram = new TelegramSecrets(this, 'Telegram');
  }
}

/** Adds the example stacks to `app`. */
export function buildExampleApp(app: App): Stack[] {
  const env = { account: process.env.CDK_DEFAULT_ACCOUNT ?? '111111111111', region: process.env.CDK_DEFAULT_REGION ?? 'us-east-1' };
  const shared = new SharedStack(app, 'HermesShared', { env });
  return [shared];
}

if (require.main === module) {
  const app = new App();
  buildExampleApp(app);
  app.synth();
}
