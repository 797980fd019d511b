import { Arn, ArnFormat, Aws, RemovalPolicy, Stack, TimeZone } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** Options of {@link ScheduleBridge}. */
export interface ScheduleBridgeOptions {
  /** The agent's FIFO queue, the target of every schedule. */
  readonly queue: sqs.IQueue;
  /**
   * Time zone of cron jobs without one.
   * @default - UTC (the runtime's default)
   */
  readonly timeZone?: TimeZone;
}

/**
 * What Hermes's cron jobs need on AWS: a schedule group of this agent only,
 * the role EventBridge Scheduler assumes to put a fired job on the agent's
 * queue, and the grant that lets the agent manage schedules in that group.
 * Schedules are created at run time (they mirror Hermes's `cron/jobs.json`),
 * so the group is deleted with the agent, and its schedules with it.
 */
export class ScheduleBridge extends Construct {
  /** The agent's schedule group. */
  public readonly group: scheduler.ScheduleGroup;
  /** The role EventBridge Scheduler assumes to send to the queue. */
  public readonly role: iam.Role;
  private readonly queue: sqs.IQueue;
  private readonly timeZone?: TimeZone;

  constructor(scope: Construct, id: string, options: ScheduleBridgeOptions) {
    super(scope, id);
    this.queue = options.queue;
    this.timeZone = options.timeZone;
    this.group = new scheduler.ScheduleGroup(this, 'Group', { removalPolicy: RemovalPolicy.DESTROY });
    const stack = Stack.of(this);
    this.role = new iam.Role(this, 'Role', {
      description: `EventBridge Scheduler puts the cron jobs of ${scope.node.path} on its queue`,
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: {
          // Confused-deputy protection: only schedules of this agent's group.
          StringEquals: { 'aws:SourceAccount': stack.account },
          ArnEquals: { 'aws:SourceArn': this.group.scheduleGroupArn },
        },
      }),
    });
    // sqs:SendMessage on the queue, plus its key's data-key actions.
    options.queue.grantSendMessages(this.role);
  }

  /**
   * Grants managing schedules in this group only, listing schedules (a List
   * action without resource-level permissions) and passing only the
   * scheduler role, only to EventBridge Scheduler.
   */
  public grantManage(grantee: iam.IGrantable): iam.Grant {
    const schedulesInGroup = Arn.format({
      partition: Aws.PARTITION,
      service: 'scheduler',
      resource: 'schedule',
      resourceName: `${this.group.scheduleGroupName}/*`,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    }, Stack.of(this));
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['scheduler:CreateSchedule', 'scheduler:UpdateSchedule', 'scheduler:DeleteSchedule'],
      resourceArns: [schedulesInGroup],
    }).combine(iam.Grant.addToPrincipal({
      grantee,
      actions: ['scheduler:ListSchedules'],
      resourceArns: ['*'],
    })).combine(iam.Grant.addToPrincipal({
      grantee,
      actions: ['iam:PassRole'],
      resourceArns: [this.role.roleArn],
      conditions: { StringEquals: { 'iam:PassedToService': 'scheduler.amazonaws.com' } },
    }));
  }

  /** Environment variables of the runtime's cron bridge. */
  public environment(): { [name: string]: string } {
    return {
      HERMES_AWS_SCHEDULE_GROUP: this.group.scheduleGroupName,
      HERMES_AWS_SCHEDULER_ROLE_ARN: this.role.roleArn,
      HERMES_AWS_QUEUE_ARN: this.queue.queueArn,
      ...(this.timeZone ? { HERMES_AWS_SCHEDULE_TIMEZONE: this.timeZone.timezoneName } : {}),
    };
  }
}
