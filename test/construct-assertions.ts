// Helpers the construct tests share: building agents into one App, reading
// acknowledgements, and expecting validation errors.
import { App, Environment, Stack, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { IConstruct } from 'constructs';
import { lazyTemplate } from './util';

/** An agent built into its own stack. */
export interface BuiltAgent<A> {
  readonly stack: Stack;
  readonly agent: A;
  /** The stack's template, synthesized on first use. */
  readonly template: () => Template;
}

/**
 * A `build(id, props?, setup?)` function: each call adds a stack `id` (in
 * `env`) to `app` holding one agent made by `create` from `base`, `props`
 * and what `setup` returns for the stack.
 */
export function agentBuilder<A, P extends object>(app: App, env: Environment, base: P, create: (stack: Stack, props: P) => A) {
  return (id: string, props: Partial<P> = {}, setup?: (stack: Stack) => Partial<P>): BuiltAgent<A> => {
    const stack = new Stack(app, id, { env });
    const agent = create(stack, { ...base, ...props, ...(setup ? setup(stack) : {}) });
    return { stack, agent, template: lazyTemplate(stack) };
  };
}

/** The reason `construct` acknowledges cdk-nag rule `ruleId` with, if it does. */
export function acknowledgement(construct: IConstruct, ruleId: string): string | undefined {
  const entries = construct.node.metadata.filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY).map((m) => m.data);
  return entries.map((e) => e[`annotation::${ruleId}`] ?? e[ruleId]).find((r) => r !== undefined);
}

/** Fails unless `fn` throws a PropError with exactly `message`. */
export function expectPropError(fn: () => unknown, message: string): void {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(Error);
  expect((error as Error).name).toBe('PropError');
  expect((error as Error).message).toBe(message);
}
