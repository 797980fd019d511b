/**
 * Synth-time benchmark: builds and synthesizes stacks in a fresh App per run
 * and prints median and spread. Run: `npx projen bench` (RUNS=n to change).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App } from 'aws-cdk-lib';
import { measure, printTable } from './stats';
import { buildingBlocksDefault, buildingBlocksFull } from '../test/fixtures/stacks';

const runs = Number(process.env.RUNS ?? 15);
const outRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'hermes-bench-'));
let n = 0;
function synth(build: (app: App) => void): () => void {
  return () => {
    const app = new App({ outdir: path.join(outRoot, String(n++)) });
    build(app);
    app.synth();
  };
}

console.log(`Synth time, ${runs} runs after 2 warm-up runs, Node ${process.version}, ${os.cpus().length} CPUs\n`);
printTable([
  measure('building blocks, defaults', runs, 2, synth((app) => buildingBlocksDefault(app))),
  measure('building blocks, every prop', runs, 2, synth((app) => buildingBlocksFull(app))),
]);
fs.rmSync(outRoot, { recursive: true, force: true });
