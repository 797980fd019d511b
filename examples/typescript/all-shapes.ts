/**
 * The example app: every shape this library offers, in the stacks a platform
 * team would write. `npx projen example` synthesizes it and prints a summary.
 */
import * as path from 'path';
import { App, Stack, StackProps, TimeZone } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import {
  AgentAccess, AgentMemory, AgentModel, GatewayEgress, HermesAgentCoreAgent, HermesFargateGateway, HermesLambdaAgent, KnowledgeBucket,
  SlackSecrets, TelegramSecrets,
} from '../../src';

/** The pieces every agent shares: knowledge, chat credentials, long-term memory. */
export class SharedStack extends Stack {
  public readonly knowledge: KnowledgeBucket;
  public readonly slack: SlackSecrets;
  public readonly telegram: TelegramSecrets;
  public readonly memory: AgentMemory;

  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);
    this.knowledge = new KnowledgeBucket(this, 'Knowledge');
    this.knowledge.addFolder(path.join(__dirname, 'knowledge'), { prefix: KnowledgeBucket.KNOWLEDGE_PREFIX });
    this.slack = new SlackSecrets(this, 'Slack');
    this.telegram = new TelegramSecrets(this, 'Telegram');
    this.memory = new AgentMemory(this, 'Memory');
  }
}

/** Props of {@link GatewayStack}. */
export interface GatewayStackProps extends StackProps {
  readonly shared: SharedStack;
}

/** The always-on Slack assistant on ECS Fargate, on a NAT instance for a low idle bill. */
export class GatewayStack extends Stack {
  public readonly gateway: HermesFargateGateway;

  constructor(scope: Construct, id: string, props: GatewayStackProps) {
    super(scope, id, props);
    this.gateway = new HermesFargateGateway(this, 'Gateway', {
      access: AgentAccess.allowUsers({ slack: ['U012ABCDEF', 'U034GHIJKL'] }),
      slack: props.shared.slack,
      knowledgeBucket: props.shared.knowledge,
      egress: GatewayEgress.natInstance(),
      settings: {
        soul: 'You are the platform team\'s assistant. Answer from the files in knowledge/ and projects/; say so when they do not cover a question.',
        projectContext: 'We run payments and search on ECS; deploys happen on Tuesdays.',
      },
    });
  }
}

/** Props of {@link TelegramAgentStack}. */
export interface TelegramAgentStackProps extends StackProps {
  readonly shared: SharedStack;
}

/** The wake-on-demand personal assistant on Lambda, answering on Telegram, with reminders, memory and a budget. */
export class TelegramAgentStack extends Stack {
  public readonly agent: HermesLambdaAgent;

  constructor(scope: Construct, id: string, props: TelegramAgentStackProps) {
    super(scope, id, props);
    this.agent = new HermesLambdaAgent(this, 'Agent', {
      access: AgentAccess.allowUsers({ telegram: ['123456789'] }),
      telegram: props.shared.telegram,
      knowledgeBucket: props.shared.knowledge,
      model: AgentModel.bedrock('us.anthropic.claude-sonnet-4-6'),
      memory: props.shared.memory,
      dailyTokenBudget: 500_000,
      scheduleTimeZone: TimeZone.EUROPE_BERLIN,
      settings: { soul: 'You are a concise personal assistant. Keep answers short enough to read on a phone.' },
    });
  }
}

/** Props of {@link AgentCoreStack}. */
export interface AgentCoreStackProps extends StackProps {
  readonly shared: SharedStack;
}

/**
 * The support-desk agent on Bedrock AgentCore Runtime: its own Slack app
 * (Events API; the gateway's app uses Socket Mode), a microVM per conversation.
 */
export class AgentCoreStack extends Stack {
  public readonly agent: HermesAgentCoreAgent;

  constructor(scope: Construct, id: string, props: AgentCoreStackProps) {
    super(scope, id, props);
    this.agent = new HermesAgentCoreAgent(this, 'Agent', {
      access: AgentAccess.allowAll(),
      slack: new SlackSecrets(this, 'SupportSlack'),
      knowledgeBucket: props.shared.knowledge,
      memory: props.shared.memory,
      model: AgentModel.bedrock('us.anthropic.claude-haiku-4-5-20251001-v1:0'),
      dailyTokenBudget: 200_000,
      settings: { soul: 'You are the support desk\'s first responder. Be friendly, brief, and hand over to a human when unsure.' },
    });
  }
}

/** Adds the example stacks to `app`. */
export function buildExampleApp(app: App): Stack[] {
  const env = { account: process.env.CDK_DEFAULT_ACCOUNT ?? '111111111111', region: process.env.CDK_DEFAULT_REGION ?? 'us-east-1' };
  const shared = new SharedStack(app, 'HermesShared', { env });
  const gateway = new GatewayStack(app, 'HermesGateway', { env, shared });
  const telegram = new TelegramAgentStack(app, 'HermesTelegramAgent', { env, shared });
  const support = new AgentCoreStack(app, 'HermesSupportAgent', { env, shared });
  return [shared, gateway, telegram, support];
}

if (require.main === module) {
  const app = new App();
  buildExampleApp(app);
  app.synth();
}
