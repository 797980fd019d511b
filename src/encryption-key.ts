import { Aws, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct, IConstruct } from 'constructs';

/**
 * The customer-managed KMS key that the constructs of this library use by
 * default for everything they store (knowledge bucket, secrets, and later
 * tables, file systems and log groups).
 *
 * One key per stack: the first construct that needs it creates it, the
 * others reuse it, so a stack with several agents pays for one key
 * (about $1/month). Rotation is on and the key is retained on delete,
 * because data encrypted with it must stay readable.
 *
 * Pass your own key through each construct's `encryptionKey` prop instead
 * if your organisation manages keys centrally.
 */
export class AgentEncryptionKey {
  /** The construct id of the shared key, directly under the stack. */
  public static readonly ID = 'HermesAgentKey';

  /** Returns the stack's shared key, creating it on first use. */
  public static of(scope: IConstruct): kms.IKey {
    const stack = Stack.of(scope);
    const existing = stack.node.tryFindChild(AgentEncryptionKey.ID);
    if (existing) {
      return existing as kms.Key;
    }
    const key = new kms.Key(stack as Construct, AgentEncryptionKey.ID, {
      description: `Encrypts Hermes Agent data in stack ${stack.stackName} (cdk-hermes-agent)`,
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    AgentEncryptionKey.allowLogGroups(key);
    return key;
  }

  /**
   * Lets CloudWatch Logs use `key` for the log groups of this account and
   * region (log groups are encrypted by the service, not by a role).
   * Applied to the shared key automatically; call it for a key you pass in.
   */
  public static allowLogGroups(key: kms.IKey): void {
    key.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'AllowCloudWatchLogsOfThisAccount',
      principals: [new iam.ServicePrincipal(`logs.${Aws.REGION}.amazonaws.com`)],
      actions: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'],
      resources: ['*'],
      conditions: {
        ArnLike: { 'kms:EncryptionContext:aws:logs:arn': `arn:${Aws.PARTITION}:logs:${Aws.REGION}:${Aws.ACCOUNT_ID}:log-group:*` },
      },
    }));
  }

  private constructor() {}
}
