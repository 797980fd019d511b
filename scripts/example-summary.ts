/**
 * The README's main job: synthesize the example app (examples/typescript)
 * into cdk.out/example and print, per stack, its resources and the result of
 * the four cdk-nag packs, then the fixed monthly cost of each stack
 * (scripts/cost). Exits non-zero if any stack has an unacknowledged finding.
 */
import * as fs from 'fs';
import * as path from 'path';
import { App } from 'aws-cdk-lib';
import { AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks, ServerlessChecks } from 'cdk-nag';
import { estimateAssemblyCost, renderCostTable } from './cost';
import { buildExampleApp } from '../examples/typescript/all-shapes';

const outdir = path.join(__dirname, '..', 'cdk.out', 'example');
fs.rmSync(outdir, { recursive: true, force: true });
const app = new App({ outdir });
const stacks = buildExampleApp(app);
const assembly = app.synth();

let failed = 0;
console.log(`Example app synthesized to ${path.relative(process.cwd(), outdir)}\n`);
for (const stack of stacks) {
  const artifact = assembly.getStackByName(stack.stackName);
  const resources: Record<string, { Type: string }> = artifact.template.Resources ?? {};
  const byType = new Map<string, number>();
  for (const r of Object.values(resources)) byType.set(r.Type, (byType.get(r.Type) ?? 0) + 1);

  const findings: string[] = [];
  for (const pack of [new AwsSolutionsChecks(), new ServerlessChecks(), new NIST80053R5Checks(), new HIPAASecurityChecks()]) {
    for (const v of pack.validateScope(stack).violations) {
      for (const r of v.violatingResources) findings.push(`${v.ruleName} @ ${r.constructPath}`);
    }
  }
  if (findings.length > 0) failed += 1;

  console.log(`Stack ${stack.stackName} (${stack.region})`);
  console.log(`  resources: ${Object.keys(resources).length}`);
  for (const [type, n] of [...byType.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))) {
    console.log(`    ${String(n).padStart(3)}  ${type}`);
  }
  console.log(`  cdk-nag (AwsSolutions, Serverless, NIST 800-53 R5, HIPAA): ${findings.length === 0 ? 'no unacknowledged findings' : `${findings.length} findings`}`);
  for (const f of findings) console.log(`    - ${f}`);
  console.log('');
}
console.log(`${stacks.length} stacks, ${stacks.length - failed} nag-clean, ${failed} with findings`);
console.log(`\n${renderCostTable(estimateAssemblyCost(assembly))}`);
process.exit(failed > 0 ? 1 : 0);
