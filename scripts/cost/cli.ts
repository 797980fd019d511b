/**
 * Prints the cost report of a synthesized CDK app (a cloud assembly directory,
 * `cdk.out` by default) or of CloudFormation template files.
 *
 *   npx ts-node --project test/tsconfig.json scripts/cost/cli.ts [cdk.out | a.template.json ...] [--markdown] [--free]
 */
import * as fs from 'fs';
import * as path from 'path';
import * as cxapi from 'aws-cdk-lib/cx-api';
import { estimateAssemblyCost, estimateStackCost, StackCost } from './estimate';
import { renderCostMarkdown, renderCostTable } from './render';

const args = process.argv.slice(2);
const markdown = args.includes('--markdown');
const free = args.includes('--free');
const inputs = args.filter((a) => !a.startsWith('--'));
if (inputs.length === 0) inputs.push('cdk.out');

const stacks: StackCost[] = [];
for (const input of inputs) {
  if (fs.statSync(input).isDirectory()) {
    stacks.push(...estimateAssemblyCost(new cxapi.CloudAssembly(input)));
  } else {
    const name = path.basename(input).replace(/\.template\.json$|\.json$/, '');
    stacks.push(estimateStackCost(name, JSON.parse(fs.readFileSync(input, 'utf8'))));
  }
}
console.log(markdown ? renderCostMarkdown(stacks) : renderCostTable(stacks, { free }));
