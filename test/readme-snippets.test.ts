// Every TypeScript snippet in README.md must type-check against the library's
// source, as a user would paste it (importing from 'cdk-hermes-agent').
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from 'typescript';

const ROOT = path.resolve(__dirname, '..');
const README = path.join(ROOT, 'README.md');

interface Snippet { readonly line: number; readonly code: string }

/** Fenced blocks tagged ts/typescript, with the README line they start on. */
export function typescriptSnippets(markdown: string): Snippet[] {
  const snippets: Snippet[] = [];
  let inside: 'no' | 'ts' | 'other' = 'no';
  let start = 0;
  let body: string[] = [];
  markdown.split('\n').forEach((text, index) => {
    const fence = /^```\s*(\w*)/.exec(text);
    if (!fence) {
      if (inside === 'ts') body.push(text);
    } else if (inside === 'no') {
      inside = fence[1] === 'ts' || fence[1] === 'typescript' ? 'ts' : 'other';
      start = index + 1;
      body = [];
    } else {
      if (inside === 'ts') snippets.push({ line: start, code: body.join('\n') });
      inside = 'no';
    }
  });
  return snippets;
}

function compile(snippets: Snippet[]): string[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'readme-snippets-'));
  const files = snippets.map((snippet) => {
    const file = path.join(dir, `readme-line-${snippet.line}.ts`);
    // each snippet is its own module
    fs.writeFileSync(file, `${snippet.code}\nexport {};\n`);
    return file;
  });
  const program = ts.createProgram(files, {
    target: ts.ScriptTarget.ES2020,
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    strict: true,
    noEmit: true,
    esModuleInterop: true,
    skipLibCheck: true,
    noUnusedLocals: false,
    baseUrl: ROOT,
    typeRoots: [path.join(ROOT, 'node_modules', '@types')],
    types: ['node'],
    paths: { 'cdk-hermes-agent': ['src/index.ts'], '*': ['node_modules/*'] },
  });
  return ts.getPreEmitDiagnostics(program)
    .filter((d) => d.file && files.includes(path.resolve(d.file.fileName)))
    .map((d) => {
      const { line } = d.file!.getLineAndCharacterOfPosition(d.start ?? 0);
      const snippetLine = Number(/readme-line-(\d+)/.exec(d.file!.fileName)![1]);
      return `README.md:${snippetLine + line + 1}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
    });
}

describe('README TypeScript snippets', () => {
  const snippets = typescriptSnippets(fs.readFileSync(README, 'utf8'));
  // A deliberately broken snippet compiled in the same program proves errors are seen and located.
  const canary: Snippet = { line: 100000, code: "import { HermesLambdaAgent } from 'cdk-hermes-agent';\nconst x: number = HermesLambdaAgent;" };
  let errors: string[] = [];
  beforeAll(() => { errors = compile([...snippets, canary]); }, 240_000);

  test('the README has TypeScript snippets for the shapes', () => {
    expect(snippets.length).toBeGreaterThanOrEqual(3);
  });

  test('every snippet compiles against the library', () => {
    expect(errors.filter((e) => !e.startsWith('README.md:100002:'))).toEqual([]);
  });

  test('a broken snippet is reported with its README line', () => {
    expect(errors.some((e) => e.startsWith('README.md:100002: '))).toBe(true);
  });

  test('the extractor keeps only ts blocks', () => {
    const md = ['```bash', 'npm ci', '```', 'text', '```ts', 'const a = 1;', '```', '```mermaid', 'flowchart', '```'].join('\n');
    expect(typescriptSnippets(md)).toEqual([{ line: 5, code: 'const a = 1;' }]);
  });
});
