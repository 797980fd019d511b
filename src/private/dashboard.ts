import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';
import { METRIC_NAMESPACE } from './serverless-core';

/** What {@link agentDashboard} shows. */
export interface AgentDashboardOptions {
  /** The agent (its construct path is the `Agent` dimension and the title). */
  readonly agentName: string;
  /** What consumes the queue, e.g. `Worker` or `Dispatcher`. */
  readonly consumerLabel: string;
  readonly ingressAccepted: cloudwatch.IMetric;
  readonly ingressRejected: cloudwatch.IMetric;
  readonly queueAge: cloudwatch.IMetric;
  readonly deadLetters: cloudwatch.IMetric;
  /** Duration of a turn (ms). */
  readonly turnDuration: cloudwatch.IMetric;
  /** Failed turns reported by the runtime. */
  readonly turnErrors: cloudwatch.IMetric;
  /** Errors of the queue's consumer function. */
  readonly consumerErrors: cloudwatch.IMetric;
  /** Failed AgentCore Memory calls, when the agent has a memory. */
  readonly memoryFailures?: cloudwatch.IMetric;
  readonly inputTokens: cloudwatch.IMetric;
  readonly outputTokens: cloudwatch.IMetric;
  readonly estimatedCost: cloudwatch.IMetric;
  readonly budgetExceeded: cloudwatch.IMetric;
}

/**
 * One CloudWatch dashboard of a serverless agent: ingress, queue, turns,
 * dead letters, tokens and estimated cost (in total and per user).
 */
export function agentDashboard(scope: Construct, id: string, o: AgentDashboardOptions): cloudwatch.Dashboard {
  const perUser = (metricName: string, label: string) => new cloudwatch.MathExpression({
    expression: `SEARCH('{${METRIC_NAMESPACE},Agent,User} MetricName="${metricName}" Agent="${o.agentName}"', 'Sum', 3600)`,
    usingMetrics: {},
    label,
    period: Duration.hours(1),
  });
  const dashboard = new cloudwatch.Dashboard(scope, id, {
    defaultInterval: Duration.days(7),
  });
  dashboard.addWidgets(
    new cloudwatch.TextWidget({ markdown: `# Hermes agent ${o.agentName}`, width: 24, height: 1 }),
  );
  dashboard.addWidgets(
    new cloudwatch.GraphWidget({ title: 'Ingress requests', left: [o.ingressAccepted, o.ingressRejected], width: 8 }),
    new cloudwatch.GraphWidget({ title: 'Queue: age of oldest message (s)', left: [o.queueAge], width: 8 }),
    new cloudwatch.GraphWidget({ title: 'Dead letters', left: [o.deadLetters], width: 8 }),
  );
  dashboard.addWidgets(
    new cloudwatch.GraphWidget({ title: `${o.consumerLabel}: turn duration (ms)`, left: [o.turnDuration], width: 12 }),
    new cloudwatch.GraphWidget({
      title: `${o.consumerLabel}: errors`,
      left: [o.turnErrors, o.consumerErrors, ...(o.memoryFailures ? [o.memoryFailures] : [])],
      width: 12,
    }),
  );
  dashboard.addWidgets(
    new cloudwatch.GraphWidget({ title: 'Model tokens', left: [o.inputTokens, o.outputTokens], width: 8 }),
    new cloudwatch.GraphWidget({ title: 'Estimated cost (USD)', left: [o.estimatedCost], right: [o.budgetExceeded], width: 8 }),
    new cloudwatch.GraphWidget({ title: 'Estimated cost by user (USD per hour)', left: [perUser('EstimatedCost', '')], width: 8 }),
  );
  return dashboard;
}
