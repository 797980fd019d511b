/**
 * Synthesizes every TypeScript example app (examples/typescript/index.ts), or
 * the ones named on the command line, into cdk.out/examples/typescript/<name>,
 * and writes the app's cdk-nag findings (four packs) next to the templates.
 */
import * as fs from 'fs';
import * as path from 'path';
import { App } from 'aws-cdk-lib';
import { NAG_FINDINGS_FILE, examplesOutdir } from './layout';
import { TYPESCRIPT_EXAMPLES } from '../../examples/typescript';
import { nagFindings } from '../../examples/typescript/platform-team';

const names = process.argv.slice(2);
for (const name of names.length > 0 ? names : Object.keys(TYPESCRIPT_EXAMPLES)) {
  const build = TYPESCRIPT_EXAMPLES[name];
  if (!build) throw new Error(`unknown example '${name}' (known: ${Object.keys(TYPESCRIPT_EXAMPLES).join(', ')})`);
  const outdir = examplesOutdir('typescript', name);
  fs.rmSync(outdir, { recursive: true, force: true });
  const started = Date.now();
  const app = new App({ outdir });
  const stacks = build(app);
  app.synth();
  fs.writeFileSync(path.join(outdir, NAG_FINDINGS_FILE), JSON.stringify(nagFindings(app), undefined, 1));
  console.log(`typescript ${name}: ${stacks.map((s) => s.stackName).join(', ')} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}
