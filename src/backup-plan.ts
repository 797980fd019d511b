import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as backup from 'aws-cdk-lib/aws-backup';
import * as events from 'aws-cdk-lib/aws-events';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct, IConstruct } from 'constructs';
import { AgentEncryptionKey } from './encryption-key';
import { acknowledge } from './private/acknowledge';

/**
 * The AWS Backup plan that protects agent state (EFS file systems, DynamoDB
 * tables): daily backups kept 35 days in a KMS-encrypted vault that is
 * retained on delete. One per stack, shared by every agent in it.
 */
export class AgentBackupPlan {
  /** The construct id of the shared plan, directly under the stack. */
  public static readonly ID = 'HermesAgentBackupPlan';

  /**
   * Returns the stack's shared plan, creating it (and its vault) on first use.
   *
   * @param encryptionKey key of the vault when the plan is created
   *   (default: the stack's shared AgentEncryptionKey)
   */
  public static of(scope: IConstruct, encryptionKey?: kms.IKey): backup.BackupPlan {
    const stack = Stack.of(scope);
    const existing = stack.node.tryFindChild(AgentBackupPlan.ID);
    if (existing) return existing as backup.BackupPlan;

    const vault = new backup.BackupVault(stack as Construct, 'HermesAgentBackupVault', {
      encryptionKey: encryptionKey ?? AgentEncryptionKey.of(stack),
      removalPolicy: RemovalPolicy.RETAIN,
    });
    return new backup.BackupPlan(stack as Construct, AgentBackupPlan.ID, {
      backupVault: vault,
      backupPlanRules: [new backup.BackupPlanRule({
        ruleName: 'daily-35-days',
        scheduleExpression: events.Schedule.cron({ hour: '3', minute: '0' }),
        deleteAfter: Duration.days(35),
        startWindow: Duration.hours(1),
        completionWindow: Duration.hours(8),
      })],
    });
  }

  /**
   * Adds `resource` to the stack's shared plan. The selection (and its role,
   * which uses the AWS-maintained backup and restore service-role policies)
   * is created under the plan with an id derived from `scope`.
   *
   * @param encryptionKey key of the vault if this call creates the plan
   */
  public static protect(scope: IConstruct, id: string, resource: backup.BackupResource, encryptionKey?: kms.IKey): backup.BackupSelection {
    const selection = AgentBackupPlan.of(scope, encryptionKey).addSelection(`${scope.node.addr}${id}`, {
      resources: [resource],
      allowRestores: true,
    });
    acknowledge(selection,
      'AWS Backup selections run with the AWS-maintained service-role policies for backup and restore; a hand-written copy would drift from what the service needs.',
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup]',
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForRestores]');
    return selection;
  }

  private constructor() {}
}
