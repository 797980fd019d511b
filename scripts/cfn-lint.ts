/**
 * Synthesizes every fixture stack (test/fixtures) and the example app, then
 * runs cfn-lint (pinned, from .venv) over those templates and the committed
 * integ snapshots. Fails on any cfn-lint error; prints the counts.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { App } from 'aws-cdk-lib';
import { buildExampleApp } from '../examples/typescript/all-shapes';
import { FIXTURES } from '../test/fixtures/stacks';

const root = path.join(__dirname, '..');
const outdir = path.join(root, '.lint-templates');
fs.rmSync(outdir, { recursive: true, force: true });

const templates: string[] = [];
function synth(build: (app: App) => void, name: string): void {
  const app = new App({ outdir: path.join(outdir, name) });
  build(app);
  const assembly = app.synth();
  for (const stack of assembly.stacks) templates.push(path.join(assembly.directory, stack.templateFile));
}
synth((app) => FIXTURES.forEach((build) => build(app)), 'fixtures');
synth((app) => buildExampleApp(app), 'example');

const integDir = path.join(root, 'integ');
for (const entry of fs.readdirSync(integDir)) {
  if (!entry.endsWith('.snapshot')) continue;
  for (const file of fs.readdirSync(path.join(integDir, entry))) {
    if (file.endsWith('.template.json')) templates.push(path.join(integDir, entry, file));
  }
}

const cfnLint = path.join(root, '.venv', 'bin', 'cfn-lint');
const result = spawnSync(cfnLint, ['--format', 'json', '--regions', 'us-east-1', '--', ...templates], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
if (result.error) throw result.error;
const matches: Array<{ Level: string; Rule: { Id: string }; Message: string; Filename: string; Location: { Path: unknown[] } }> =
  JSON.parse(result.stdout || '[]');
const count = (level: string) => matches.filter((m) => m.Level === level).length;
for (const m of matches) {
  console.log(`${m.Level.padEnd(13)} ${m.Rule.Id} ${path.relative(root, m.Filename)} ${JSON.stringify(m.Location.Path)}: ${m.Message.slice(0, 300)}`);
}
console.log(`cfn-lint: ${templates.length} templates, ${count('Error')} errors, ${count('Warning')} warnings, ${count('Informational')} informational`);
const failedFiles = new Set(matches.filter((m) => m.Level === 'Error').map((m) => m.Filename));
// cfn-lint exits 0 when clean and non-zero (a bit mask) on any match; only errors fail the run.
if (failedFiles.size > 0 || (result.status !== 0 && matches.length === 0)) {
  if (result.stderr) console.error(result.stderr);
  console.log(`cfn-lint: ${templates.length - failedFiles.size} passed, ${failedFiles.size} failed`);
  process.exit(1);
}
console.log(`cfn-lint: ${templates.length} passed, 0 failed`);
