import { Duration, Stack, Token } from 'aws-cdk-lib';
import * as bedrockagentcore from 'aws-cdk-lib/aws-bedrockagentcore';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { AgentEncryptionKey } from './encryption-key';
import { acknowledge } from './private/acknowledge';
import { acknowledgeWildcards } from './private/iam-wildcards';
import { PropError, checkPattern } from './private/validate';

/**
 * Properties of an {@link AgentMemory}.
 */
export interface AgentMemoryProps {
  /**
   * How long raw conversation events (short-term memory) are kept, 7-365
   * days. Long-term records extracted from them stay.
   *
   * @default Duration.days(90)
   */
  readonly expiration?: Duration;

  /**
   * KMS key that encrypts the memory.
   *
   * @default - the stack's shared {@link AgentEncryptionKey}
   */
  readonly encryptionKey?: kms.IKey;

  /**
   * Name of the memory: a letter, then letters, digits and `_`, at most 48 characters.
   *
   * @default - generated from the construct path
   */
  readonly memoryName?: string;

  /**
   * Description of the memory (letters, digits, spaces, `_` and `-`, at most 200 characters).
   *
   * @default 'Hermes Agent long-term memory'
   */
  readonly description?: string;
}

/**
 * Long-term memory of Hermes agents on Amazon Bedrock AgentCore Memory.
 *
 * Wraps the AgentCore `Memory` with three built-in extraction strategies:
 * facts (semantic) and preferences (user preference) per user, and
 * summaries per user and conversation. The agent records every turn as an
 * event (actor = the user, session = the chat) and recalls relevant records
 * before a turn. Share one memory between agents to let them remember the
 * same people.
 */
export class AgentMemory extends Construct {
  /** Namespace template of the facts extracted per user. */
  public static readonly FACTS_NAMESPACE = '/users/{actorId}/facts';
  /** Namespace template of the preferences extracted per user. */
  public static readonly PREFERENCES_NAMESPACE = '/users/{actorId}/preferences';
  /** Namespace template of the summaries per user and conversation. */
  public static readonly SUMMARIES_NAMESPACE = '/summaries/{actorId}/{sessionId}';

  /**
   * The data-plane actions the agent's memory provider uses: record a turn
   * (`CreateEvent`) and recall records (`RetrieveMemoryRecords`).
   */
  public static readonly DATA_ACTIONS = [
    'bedrock-agentcore:CreateEvent',
    'bedrock-agentcore:RetrieveMemoryRecords',
  ];

  /** The AgentCore memory. */
  public readonly memory: bedrockagentcore.Memory;
  /** The key the memory is encrypted with. */
  public readonly encryptionKey: kms.IKey;
  /**
   * The namespace templates the strategies write to, with AgentCore's
   * `{actorId}` and `{sessionId}` variables.
   */
  public readonly namespaces: string[];

  constructor(scope: Construct, id: string, props: AgentMemoryProps = {}) {
    super(scope, id);
    const expiration = props.expiration ?? Duration.days(90);
    const days = expiration.toDays({ integral: false });
    if (!Token.isUnresolved(days) && (!Number.isInteger(days) || days < 7 || days > 365)) {
      throw new PropError('AgentMemoryProps.expiration', `must be a whole number of days between 7 and 365 (got ${days})`);
    }
    checkPattern('AgentMemoryProps.memoryName', props.memoryName, /^[a-zA-Z][a-zA-Z0-9_]{0,47}$/,
      'a letter followed by letters, digits and "_", at most 48 characters');
    checkPattern('AgentMemoryProps.description', props.description, /^[a-zA-Z0-9 _-]{1,200}$/,
      'letters, digits, spaces, "_" and "-", at most 200 characters');

    this.encryptionKey = props.encryptionKey ?? AgentEncryptionKey.of(this);
    this.namespaces = [AgentMemory.FACTS_NAMESPACE, AgentMemory.PREFERENCES_NAMESPACE, AgentMemory.SUMMARIES_NAMESPACE];
    this.memory = new bedrockagentcore.Memory(this, 'Memory', {
      memoryName: props.memoryName,
      description: props.description ?? 'Hermes Agent long-term memory',
      expirationDuration: expiration,
      kmsKey: this.encryptionKey,
      memoryStrategies: [
        bedrockagentcore.MemoryStrategy.usingSemantic({ strategyName: 'facts', namespaces: [AgentMemory.FACTS_NAMESPACE] }),
        bedrockagentcore.MemoryStrategy.usingUserPreference({ strategyName: 'preferences', namespaces: [AgentMemory.PREFERENCES_NAMESPACE] }),
        bedrockagentcore.MemoryStrategy.usingSummarization({ strategyName: 'summaries', namespaces: [AgentMemory.SUMMARIES_NAMESPACE] }),
      ],
    });
    // CreateMemory checks that the role may use the key: the role's policy first.
    const rolePolicy = this.memory.executionRole?.node.tryFindChild('DefaultPolicy');
    if (rolePolicy) this.memory.node.findChild('Memory').node.addDependency(rolePolicy);
    acknowledgeWildcards(this,
      'The memory\'s service role (created by the AgentCore Memory construct) uses the memory key: KMS re-encryption of data keys (kms:ReEncrypt*) on that key only.');
    acknowledge(this, 'The AgentCore Memory construct grants its service role the key through its default policy (AWS::IAM::Policy), scoped to the memory key.',
      'NIST.800.53.R5-IAMNoInlinePolicy', 'HIPAA.Security-IAMNoInlinePolicy');
  }

  /**
   * Grants what an agent's memory provider does with the memory:
   * `CreateEvent` and `RetrieveMemoryRecords` on this memory, and use of
   * its key through AgentCore only.
   */
  public grantUse(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: AgentMemory.DATA_ACTIONS,
      resourceArns: [this.memory.memoryArn],
    }).combine(iam.Grant.addToPrincipal({
      grantee,
      actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
      resourceArns: [this.encryptionKey.keyArn],
      conditions: { StringEquals: { 'kms:ViaService': `bedrock-agentcore.${Stack.of(this).region}.amazonaws.com` } },
    }));
  }

  /**
   * Environment variables of the runtime's memory provider.
   * @internal
   */
  public _environment(): { [name: string]: string } {
    return {
      HERMES_AWS_MEMORY_ID: this.memory.memoryId,
      HERMES_AWS_MEMORY_NAMESPACES: JSON.stringify(this.namespaces),
    };
  }
}
