import { RemovalPolicy } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import { AgentAccess } from './access';
import { KnowledgeBucket } from './knowledge-bucket';
import { AgentModel } from './model';
import { HermesSettings } from './settings';

/**
 * Properties every Hermes agent construct shares.
 */
export interface HermesAgentProps {
  /**
   * Who may talk to the agent: `AgentAccess.allowUsers({...})` or
   * `AgentAccess.allowAll()`. Required, because Hermes ignores everyone who is
   * not allowed, and a bot that ignores everyone looks deaf.
   */
  readonly access: AgentAccess;

  /**
   * The model.
   *
   * @default AgentModel.bedrock('us.anthropic.claude-sonnet-4-6')
   */
  readonly model?: AgentModel;

  /**
   * Hermes settings: identity (SOUL), project context, memory, MCP servers...
   * Each shape also turns off the toolsets it cannot support.
   *
   * @default - Hermes defaults
   */
  readonly settings?: HermesSettings;

  /**
   * The agent's bucket: `knowledge/` and `projects/` for an always-on
   * gateway, `skills/`, `memories/` and the rendered settings for the others.
   *
   * @default - a new KnowledgeBucket
   */
  readonly knowledgeBucket?: KnowledgeBucket;

  /**
   * Retention of the agent's logs.
   *
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;

  /**
   * SNS topic that the agent's alarms notify (alarm and OK).
   *
   * @default - alarms without actions
   */
  readonly alarmTopic?: sns.ITopic;

  /**
   * KMS key for the agent's state, queues, logs and generated secrets.
   *
   * @default - the stack's shared AgentEncryptionKey
   */
  readonly encryptionKey?: kms.IKey;

  /**
   * What happens to the agent's state (file system or table) when it leaves the stack.
   *
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;

  /**
   * Back the agent's state up daily with the stack's shared AWS Backup plan.
   *
   * @default true
   */
  readonly backup?: boolean;
}
