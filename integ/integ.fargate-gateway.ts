/**
 * Integration test of HermesFargateGateway with its defaults (new VPC with a
 * NAT instance to keep the test cheap). After a deploy the assertions check
 * that one gateway task is running and its log group exists with the
 * configured retention.
 *
 * `npx projen test:integ` checks the committed snapshot without AWS
 * credentials; deploy with `npx integ-runner --directory integ --update-on-failed`.
 * The Slack tokens are placeholders: the task starts, logs which secret to
 * set and waits without connecting (it does not crash-loop), so the running
 * count holds; store real tokens to see it answer in Slack.
 */
import { ExpectedResult, IntegTest } from '@aws-cdk/integ-tests-alpha';
import { App, Duration, Stack } from 'aws-cdk-lib';
import * as logs from 'aws-cdk-lib/aws-logs';
import { AgentAccess, GatewayEgress, HermesFargateGateway } from '../src';

const app = new App();
const stack = new Stack(app, 'HermesFargateGatewayInteg');
const gateway = new HermesFargateGateway(stack, 'Gateway', {
  access: AgentAccess.allowAll(),
  egress: GatewayEgress.natInstance(),
  logRetention: logs.RetentionDays.ONE_WEEK,
  settings: { soul: 'You are the integration-test agent. Answer in one short sentence.' },
});

const integ = new IntegTest(app, 'FargateGateway', { testCases: [stack] });

// One task reaches RUNNING and stays the only one.
integ.assertions.awsApiCall('ECS', 'describeServices', {
  cluster: gateway.cluster.clusterArn,
  services: [gateway.service.serviceArn],
}).expect(ExpectedResult.objectLike({
  services: [{ desiredCount: 1, runningCount: 1, deploymentConfiguration: { minimumHealthyPercent: 0, maximumPercent: 100 } }],
})).waitForAssertions({ totalTimeout: Duration.minutes(15), interval: Duration.seconds(30) });

// The gateway's log group exists with the configured retention.
integ.assertions.awsApiCall('CloudWatchLogs', 'describeLogGroups', { logGroupNamePrefix: gateway.logGroup.logGroupName })
  .expect(ExpectedResult.objectLike({ logGroups: [{ logGroupName: gateway.logGroup.logGroupName, retentionInDays: 7 }] }));
