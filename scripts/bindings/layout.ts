/** Where the example apps of each language are synthesized. */
import * as path from 'path';

export const ROOT = path.resolve(__dirname, '..', '..');

/** Languages whose example apps are synthesized and compared with TypeScript. */
export type Language = 'typescript' | 'python' | 'java';

/** The cloud assembly directory of one example app in one language. */
export function examplesOutdir(language: Language, example: string, root: string = ROOT): string {
  return path.join(root, 'cdk.out', 'examples', language, example);
}

/** File in each example's outdir with the app's unacknowledged cdk-nag findings (a JSON list). */
export const NAG_FINDINGS_FILE = 'nag-findings.json';

/** The minimal one-shape apps, in every language (TypeScript, Python, Java). */
export const SHAPE_EXAMPLES: readonly string[] = ['fargate-gateway', 'lambda-agent', 'agentcore-agent'];

/** Apps combining several constructs, in TypeScript and Python. */
export const COMPOSITE_EXAMPLES: readonly string[] = ['platform-team'];
