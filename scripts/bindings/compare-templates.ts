/**
 * Checks that the example apps synthesize the same CloudFormation in every
 * language: each Python and Java template must equal the TypeScript template
 * of the same example and stack, apart from asset hashes and metadata. Also
 * fails on cdk-nag findings recorded by the TypeScript and Python runners.
 *
 *   ts-node scripts/bindings/compare-templates.ts python java
 *
 * Normalized templates are written to cdk.out/examples/normalized/<language>/
 * so a difference can be inspected with `diff -u`.
 */
import * as fs from 'fs';
import * as path from 'path';
import { COMPOSITE_EXAMPLES, Language, NAG_FINDINGS_FILE, ROOT, SHAPE_EXAMPLES, examplesOutdir } from './layout';

/** Which examples each language must provide. */
export const REQUIRED_EXAMPLES: Record<Language, readonly string[]> = {
  typescript: [...SHAPE_EXAMPLES, ...COMPOSITE_EXAMPLES],
  python: [...SHAPE_EXAMPLES, ...COMPOSITE_EXAMPLES],
  java: SHAPE_EXAMPLES,
};

/** Languages whose runners record cdk-nag findings. */
const NAG_CHECKED: readonly Language[] = ['typescript', 'python'];

// sha256 hex: asset hashes in image tags, S3 object keys and asset ids.
const ASSET_HASH = /\b[0-9a-f]{64}\b/g;

/** Replaces asset hashes in a string (or object key) with a placeholder. */
function normalizeString(value: string): string {
  return value.replace(ASSET_HASH, '<asset-hash>');
}

function normalizeValue(value: unknown): unknown {
  if (typeof value === 'string') return normalizeString(value);
  if (Array.isArray(value)) return value.map(normalizeValue);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, child] of Object.entries(value)) {
      if (key === 'Metadata') continue; // aws:cdk:path, aws:asset:* and the like
      out[normalizeString(key)] = normalizeValue(child);
    }
    return out;
  }
  return value;
}

/**
 * A template without what legitimately differs between languages: asset
 * hashes, `Metadata` (at every level), the CDKMetadata resource and its
 * condition (it records the language), and the bootstrap version check.
 */
export function normalizeTemplate(template: Record<string, any>): Record<string, unknown> {
  const t = JSON.parse(JSON.stringify(template));
  delete t.Resources?.CDKMetadata;
  delete t.Conditions?.CDKMetadataAvailable;
  delete t.Parameters?.BootstrapVersion;
  delete t.Rules?.CheckBootstrapVersion;
  for (const section of ['Resources', 'Conditions', 'Parameters', 'Rules', 'Outputs']) {
    if (t[section] && Object.keys(t[section]).length === 0) delete t[section];
  }
  return normalizeValue(t) as Record<string, unknown>;
}

function show(value: unknown): string {
  const text = JSON.stringify(value);
  return text.length > 160 ? `${text.slice(0, 157)}...` : text;
}

/**
 * The differences between two (normalized) templates, one line each, as
 * `path: expected X, got Y`, `path: missing` or `path: unexpected`.
 */
export function templateDifferences(expected: unknown, actual: unknown, at = ''): string[] {
  const here = at || '(template)';
  if (expected === actual) return [];
  const bothObjects = expected !== null && actual !== null && typeof expected === 'object' && typeof actual === 'object';
  if (!bothObjects || Array.isArray(expected) !== Array.isArray(actual)) {
    return [`${here}: expected ${show(expected)}, got ${show(actual)}`];
  }
  if (Array.isArray(expected) && Array.isArray(actual)) {
    const diffs: string[] = [];
    for (let i = 0; i < Math.max(expected.length, actual.length); i++) {
      if (i >= actual.length) diffs.push(`${at}[${i}]: missing (expected ${show(expected[i])})`);
      else if (i >= expected.length) diffs.push(`${at}[${i}]: unexpected ${show(actual[i])}`);
      else diffs.push(...templateDifferences(expected[i], actual[i], `${at}[${i}]`));
    }
    return diffs;
  }
  const e = expected as Record<string, unknown>;
  const a = actual as Record<string, unknown>;
  const diffs: string[] = [];
  for (const key of [...new Set([...Object.keys(e), ...Object.keys(a)])].sort()) {
    const child = at ? `${at}.${key}` : key;
    if (!(key in a)) diffs.push(`${child}: missing (expected ${show(e[key])})`);
    else if (!(key in e)) diffs.push(`${child}: unexpected ${show(a[key])}`);
    else diffs.push(...templateDifferences(e[key], a[key], child));
  }
  return diffs;
}

function stackTemplates(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => f.endsWith('.template.json')).sort();
}

function readJson(file: string): any {
  return JSON.parse(fs.readFileSync(file, 'utf-8'));
}

/** Compares every required example of `languages` with TypeScript; returns the problems found. */
export function compareExamples(languages: readonly Language[], root: string = ROOT, maxLinesPerTemplate = 25): string[] {
  const problems: string[] = [];
  for (const language of ['typescript' as Language, ...languages]) {
    for (const example of REQUIRED_EXAMPLES[language]) {
      const dir = examplesOutdir(language, example, root);
      if (!fs.existsSync(dir)) {
        problems.push(`${language}/${example}: not synthesized (no ${path.relative(root, dir)})`);
        continue;
      }
      if (NAG_CHECKED.includes(language)) {
        const nagFile = path.join(dir, NAG_FINDINGS_FILE);
        const findings: string[] = fs.existsSync(nagFile) ? readJson(nagFile) : [`no ${NAG_FINDINGS_FILE} written`];
        for (const finding of findings) problems.push(`${language}/${example}: cdk-nag ${finding}`);
      }
      if (language === 'typescript') continue;

      const reference = examplesOutdir('typescript', example, root);
      const expectedStacks = fs.existsSync(reference) ? stackTemplates(reference) : [];
      const actualStacks = stackTemplates(dir);
      if (expectedStacks.join() !== actualStacks.join()) {
        problems.push(`${language}/${example}: stacks ${actualStacks.join(', ') || '(none)'}, typescript has ${expectedStacks.join(', ') || '(none)'}`);
      }
      for (const file of actualStacks.filter((f) => expectedStacks.includes(f))) {
        const expected = normalizeTemplate(readJson(path.join(reference, file)));
        const actual = normalizeTemplate(readJson(path.join(dir, file)));
        const diffs = templateDifferences(expected, actual);
        if (diffs.length === 0) continue;
        const saved = [['typescript', expected], [language, actual]].map(([lang, template]) => {
          const out = path.join(root, 'cdk.out', 'examples', 'normalized', lang as string, example, file);
          fs.mkdirSync(path.dirname(out), { recursive: true });
          fs.writeFileSync(out, JSON.stringify(template, undefined, 1) + '\n');
          return path.relative(root, out);
        });
        problems.push(
          `${language}/${example}/${file} differs from typescript in ${diffs.length} place(s) (expected = typescript; diff -u ${saved.join(' ')}):`,
          ...diffs.slice(0, maxLinesPerTemplate).map((d) => `    ${d}`),
          ...(diffs.length > maxLinesPerTemplate ? [`    ... and ${diffs.length - maxLinesPerTemplate} more`] : []),
        );
      }
    }
  }
  return problems;
}

if (require.main === module) {
  const languages = process.argv.slice(2) as Language[];
  const unknown = languages.filter((l) => !(l in REQUIRED_EXAMPLES) || l === 'typescript');
  if (languages.length === 0 || unknown.length > 0) {
    console.error('usage: compare-templates.ts python|java...');
    process.exit(2);
  }
  const problems = compareExamples(languages);
  const checked = languages.map((l) => `${l} (${REQUIRED_EXAMPLES[l].join(', ')})`).join('; ');
  if (problems.length > 0) {
    console.error(`Example templates: ${checked} compared with typescript:\n${problems.join('\n')}`);
    console.error('\nIf src/ changed since the last `npx projen compile`, the bindings are stale: compile first.');
    process.exit(1);
  }
  console.log(`Example templates: ${checked} identical to typescript apart from asset hashes and metadata; no cdk-nag findings.`);
}
