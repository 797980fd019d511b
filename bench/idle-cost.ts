/**
 * Idle cost of each shape and its cost-relevant options, side by side: one
 * stack per variant, synthesized and priced by the cost report (scripts/cost).
 * Prints figures, asserts nothing. Run:
 *   npx ts-node --transpile-only --project test/tsconfig.json bench/idle-cost.ts [--markdown]
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Stack } from 'aws-cdk-lib';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import { ASSUMPTIONS, CostLine, estimateAssemblyCost } from '../scripts/cost';
import {
  AgentAccess, AgentMemory, GatewayEgress, HermesAgentCoreAgent, HermesFargateGateway, HermesFargateGatewayProps, HermesLambdaAgent,
} from '../src';

const env = { account: '111111111111', region: 'us-east-1' };
const app = new App({ outdir: fs.mkdtempSync(path.join(os.tmpdir(), 'hermes-idle-cost-')) });
const slack = AgentAccess.allowUsers({ slack: ['U012ABCDEF'] });

const variants: Array<[string, string]> = [];
function gateway(id: string, label: string, props: Partial<HermesFargateGatewayProps>): void {
  new HermesFargateGateway(new Stack(app, id, { env }), 'Gateway', { access: slack, ...props });
  variants.push([id, label]);
}
gateway('GatewayNatGateway', 'Fargate gateway, defaults (NAT gateway, ARM64 0.5 vCPU / 1 GB)', {});
gateway('GatewayNatInstance', 'Fargate gateway, NAT instance', { egress: GatewayEgress.natInstance() });
gateway('GatewayNatInstanceSpot', 'Fargate gateway, NAT instance + Spot', { egress: GatewayEgress.natInstance(), spot: true });
gateway('GatewayX86', 'Fargate gateway, NAT gateway, X86_64', { cpuArchitecture: ecs.CpuArchitecture.X86_64 });
gateway('GatewayEndpoints', 'Fargate gateway, NAT gateway + interface endpoints', { interfaceEndpoints: true });
new HermesLambdaAgent(new Stack(app, 'LambdaAgent', { env }), 'Agent', { access: AgentAccess.allowUsers({ telegram: ['123456789'] }) });
variants.push(['LambdaAgent', 'Lambda agent, defaults']);
const lambdaLean = new Stack(app, 'LambdaAgentLean', { env });
new HermesLambdaAgent(lambdaLean, 'Agent', { access: AgentAccess.allowUsers({ telegram: ['123456789'] }), dashboard: false });
variants.push(['LambdaAgentLean', 'Lambda agent, no dashboard']);
const memoryStack = new Stack(app, 'LambdaAgentMemory', { env });
new HermesLambdaAgent(memoryStack, 'Agent', {
  access: AgentAccess.allowUsers({ telegram: ['123456789'] }), memory: new AgentMemory(memoryStack, 'Memory'),
});
variants.push(['LambdaAgentMemory', 'Lambda agent + AgentCore Memory']);
new HermesAgentCoreAgent(new Stack(app, 'AgentCoreAgent', { env }), 'Agent', { access: AgentAccess.allowUsers({ telegram: ['123456789'] }) });
variants.push(['AgentCoreAgent', 'AgentCore agent, defaults']);

const costs = new Map(estimateAssemblyCost(app.synth()).map((c) => [c.stackName, c]));
/** The three largest fixed items, merged by what they are (all interface endpoints, all secrets...). */
function topItems(lines: CostLine[]): string {
  const byWhat = new Map<string, number>();
  for (const l of lines.filter((x) => x.kind === 'fixed')) {
    const what = l.description.split(':')[0].replace(/\s*\(.*\)/, '');
    byWhat.set(what, (byWhat.get(what) ?? 0) + l.monthlyUsd);
  }
  return [...byWhat.entries()].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([w, usd]) => `${w} $${usd.toFixed(2)}`).join(', ');
}

const markdown = process.argv.includes('--markdown');
if (markdown) console.log('| variant | fixed/month | largest items |\n|---|---:|---|');
for (const [id, label] of variants) {
  const cost = costs.get(id)!;
  const unpriced = cost.lines.filter((l) => l.kind === 'unpriced').length;
  const total = `$${cost.totalUsd.toFixed(2)}${unpriced > 0 ? ' +' : ''}`;
  console.log(markdown ? `| ${label} | ${total} | ${topItems(cost.lines)} |` : `${label.padEnd(62)} ${total.padStart(9)}  ${topItems(cost.lines)}`);
}
console.log(`\n"+": plus items the report cannot price (Container Insights).\n${ASSUMPTIONS.map((a) => `- ${a}`).join('\n')}`);
