import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct, IConstruct } from 'constructs';
import { acknowledge } from './acknowledge';
import { PropError } from './validate';
import { HermesAgentProps } from '../agent-props';

/** Fails synth with a message naming `<propsName>.access` when it is missing. */
export function requireAccess(props: HermesAgentProps | undefined, propsName: string, example: string): void {
  if (!props || !props.access) {
    throw new PropError(`${propsName}.access`, `is required: choose AgentAccess.allowUsers(${example}) or AgentAccess.allowAll()`);
  }
}

/**
 * Sends every alarm (and its return to OK) to `topic`; without a topic the
 * alarms still exist and the finding that they have no action is
 * acknowledged with the prop that fixes it.
 */
export function wireAlarms(scope: IConstruct, alarms: cloudwatch.Alarm[], topic: sns.ITopic | undefined, propsName: string): void {
  if (!topic) {
    acknowledge(scope, `Alarms without actions: pass ${propsName}.alarmTopic to notify someone.`,
      'NIST.800.53.R5-CloudWatchAlarmAction', 'HIPAA.Security-CloudWatchAlarmAction');
    return;
  }
  for (const alarm of alarms) {
    alarm.addAlarmAction(new cwActions.SnsAction(topic));
    alarm.addOkAction(new cwActions.SnsAction(topic));
  }
}

/**
 * An alarm on a count: it fires when `metric` (with its own period and
 * statistic) reaches `threshold` in one period; no data is not breaching.
 */
export function countAlarm(scope: Construct, id: string, description: string, metric: cloudwatch.IMetric, threshold: number): cloudwatch.Alarm {
  return new cloudwatch.Alarm(scope, id, {
    alarmDescription: description,
    metric,
    threshold,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 1,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
  });
}

/** The IAM findings every construct with CDK-granted roles shares. */
export function acknowledgeDefaultPolicies(scope: IConstruct, roles: string): void {
  acknowledge(scope,
    `CDK grants add least-privilege statements to the ${roles}' default policies (AWS::IAM::Policy); no broad inline policy is written.`,
    'NIST.800.53.R5-IAMNoInlinePolicy', 'HIPAA.Security-IAMNoInlinePolicy');
}
