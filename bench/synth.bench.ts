/**
 * Synth-time benchmark: builds and synthesizes stacks in a fresh App per run
 * and prints median and spread, side by side. Run: `npx projen bench`
 * (RUNS=n to change the number of runs).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App } from 'aws-cdk-lib';
import { HandWrittenGatewayStack } from './handwritten-gateway';
import { measure, printTable } from './stats';
import { buildingBlocksDefault, buildingBlocksFull, fargateGatewayDefault } from '../test/fixtures/stacks';

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
const rows = [
  measure('building blocks, defaults', runs, 2, synth((app) => buildingBlocksDefault(app))),
  measure('building blocks, every prop', runs, 2, synth((app) => buildingBlocksFull(app))),
  measure('HermesFargateGateway, defaults', runs, 2, synth((app) => fargateGatewayDefault(app))),
  measure('hand-written stack, same resources', runs, 2, synth((app) => new HandWrittenGatewayStack(app, 'HandWritten', {
    env: { account: '111111111111', region: 'us-east-1' },
  }))),
];
printTable(rows);
const ours = rows[2].medianMs;
const baseline = rows[3].medianMs;
console.log(`\nHermesFargateGateway vs hand-written: ${(ours / baseline).toFixed(2)}x the median synth time (${(ours - baseline).toFixed(1)} ms more)`);
fs.rmSync(outRoot, { recursive: true, force: true });
