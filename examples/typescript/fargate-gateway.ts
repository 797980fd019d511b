/**
 * Minimal app: an always-on Slack assistant on ECS Fargate.
 *
 *   npx cdk synth --app 'npx ts-node --transpile-only fargate-gateway.ts'
 *
 * The same app exists in Python (examples/python/fargate_gateway.py) and Java
 * (examples/java); the test command checks their templates are identical.
 */
import { App, Stack } from 'aws-cdk-lib';
import { AgentAccess, GatewayEgress, HermesFargateGateway } from '../../src';

/** Adds the example's stack to `app`. */
export function fargateGatewayExample(app: App): Stack[] {
  const stack = new Stack(app, 'HermesFargateGatewayExample');
  new HermesFargateGateway(stack, 'Gateway', {
    access: AgentAccess.allowUsers({ slack: ['U012ABCDEF'] }),
    egress: GatewayEgress.natInstance(),
    settings: {
      soul: 'You are the platform team\'s assistant. Answer from knowledge/ and say when it does not cover a question.',
    },
  });
  return [stack];
}

if (require.main === module) {
  const app = new App();
  fargateGatewayExample(app);
  app.synth();
}
