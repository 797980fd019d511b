/**
 * Text and Markdown renderings of {@link StackCost} results.
 */
import { ASSUMPTIONS, CostLine, StackCost } from './estimate';
import { HOURS_PER_MONTH, PRICE_REGION, PRICES_AS_OF } from './prices';

/** Options of {@link renderCostTable}. */
export interface RenderOptions {
  /** List the usage-based resources ($0 at idle). @default true */
  readonly usage?: boolean;
  /** List resources with no charge of their own one by one (otherwise counted). @default false */
  readonly free?: boolean;
}

const money = (n: number) => `$${n.toFixed(2)}`;
const shortType = (type: string) => type.replace(/^AWS::/, '');
const MAX_NAME = 64;
const label = (l: CostLine) => `${l.logicalId} (${shortType(l.type)})`;
/** Shortens a long logical id in the middle, keeping its type. */
function fit(name: string, width: number): string {
  if (name.length <= width) return name;
  const cut = name.length - width + 1;
  const mid = Math.floor((width - 1) / 2);
  return `${name.slice(0, mid)}…${name.slice(mid + cut)}`;
}
const KIND_ORDER: Record<string, number> = { fixed: 0, unpriced: 1, usage: 2, free: 3 };

/** Fixed lines by cost (highest first), then the unpriced, usage and free ones in template order. */
function ordered(lines: CostLine[]): CostLine[] {
  return lines
    .map((l, i) => ({ l, i }))
    .sort((a, b) => KIND_ORDER[a.l.kind] - KIND_ORDER[b.l.kind] || b.l.monthlyUsd - a.l.monthlyUsd || a.i - b.i)
    .map(({ l }) => l);
}

function amount(l: CostLine): string {
  if (l.kind === 'unpriced') return 'not priced';
  return money(l.monthlyUsd);
}

/** A plain-text table per stack, then a summary across stacks and the assumptions. */
export function renderCostTable(stacks: StackCost[], options: RenderOptions = {}): string {
  const showUsage = options.usage ?? true;
  const showFree = options.free ?? false;
  const out: string[] = [`Fixed monthly cost by stack (${PRICE_REGION} prices as of ${PRICES_AS_OF}, ${HOURS_PER_MONTH} h/month)`, ''];

  for (const stack of stacks) {
    const shown = ordered(stack.lines).filter((l) => (l.kind !== 'usage' || showUsage) && (l.kind !== 'free' || showFree));
    const hiddenFree = showFree ? [] : stack.lines.filter((l) => l.kind === 'free');
    const width = Math.min(Math.max(24, ...shown.map((l) => label(l).length)), MAX_NAME);
    const names = shown.map((l) => fit(label(l), width));
    out.push(`${stack.stackName}${stack.region ? ` (${stack.region})` : ''}: ${money(stack.totalUsd)}/month fixed`);
    out.push(`  ${'monthly'.padStart(10)}  ${'resource (type)'.padEnd(width)}  what`);
    shown.forEach((l, i) => out.push(`  ${amount(l).padStart(10)}  ${names[i].padEnd(width)}  ${l.description}`));
    if (hiddenFree.length > 0) {
      const types = [...new Set(hiddenFree.map((l) => shortType(l.type).split('::')[0]))].sort().join(', ');
      out.push(`  ${''.padStart(10)}  + ${hiddenFree.length} resources with no charge of their own (${types})`);
    }
    for (const note of stack.notes) out.push(`  note: ${note}`);
    out.push('');
  }

  out.push(...summaryRows(stacks).map((row) => `  ${row[0].padEnd(Math.max(12, ...stacks.map((s) => s.stackName.length)))}  ${row[1].padStart(12)}  ${row[2].padStart(10)}`));
  out.push('', 'Assumptions:', ...ASSUMPTIONS.map((a) => `  - ${a}`));
  return out.join('\n');
}

function summaryRows(stacks: StackCost[]): string[][] {
  const unpriced = (s: StackCost) => s.lines.filter((l) => l.kind === 'unpriced').length;
  const total = stacks.reduce((sum, s) => sum + s.totalUsd, 0);
  return [
    ['stack', 'fixed/month', 'not priced'],
    ...stacks.map((s) => [s.stackName, money(s.totalUsd), String(unpriced(s))]),
    ['all stacks', money(total), String(stacks.reduce((n, s) => n + unpriced(s), 0))],
  ];
}

/** Markdown: a summary table, then one table per stack of its fixed and unpriced lines. */
export function renderCostMarkdown(stacks: StackCost[]): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const rows = summaryRows(stacks);
  const out: string[] = [
    `| ${rows[0].join(' | ')} |`, '|---|---:|---:|',
    ...rows.slice(1, -1).map((r) => `| ${r.join(' | ')} |`),
    `| **${rows[rows.length - 1][0]}** | **${rows[rows.length - 1][1]}** | ${rows[rows.length - 1][2]} |`,
    '',
  ];
  for (const stack of stacks) {
    out.push(`**${stack.stackName}** — ${money(stack.totalUsd)}/month fixed`, '', '| monthly | resource | what |', '|---:|---|---|');
    for (const l of ordered(stack.lines).filter((x) => x.kind === 'fixed' || x.kind === 'unpriced')) {
      out.push(`| ${amount(l)} | \`${l.logicalId}\` (${shortType(l.type)}) | ${esc(l.description)} |`);
    }
    const usage = stack.lines.filter((l) => l.kind === 'usage');
    if (usage.length > 0) {
      const types = [...new Set(usage.map((l) => shortType(l.type)))].join(', ');
      out.push(`| $0.00 | ${usage.length} usage-based resources | ${types} |`);
    }
    out.push('');
  }
  out.push('Assumptions:', '', ...ASSUMPTIONS.map((a) => `- ${a}`));
  return out.join('\n');
}
