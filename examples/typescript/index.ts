/**
 * Every TypeScript example app by name. The Python (examples/python) and Java
 * (examples/java) apps use the same names and stack names, so their templates
 * can be compared with these (scripts/bindings/compare-templates.ts).
 */
import { App, Stack } from 'aws-cdk-lib';
import { agentCoreAgentExample } from './agentcore-agent';
import { fargateGatewayExample } from './fargate-gateway';
import { lambdaAgentExample } from './lambda-agent';
import { platformTeamExample } from './platform-team';

export const TYPESCRIPT_EXAMPLES: Record<string, (app: App) => Stack[]> = {
  'fargate-gateway': fargateGatewayExample,
  'lambda-agent': lambdaAgentExample,
  'agentcore-agent': agentCoreAgentExample,
  'platform-team': platformTeamExample,
};
