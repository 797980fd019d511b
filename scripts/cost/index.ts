/**
 * Cost report: the fixed monthly cost of synthesized CloudFormation templates.
 *
 * ```ts
 * const assembly = app.synth();
 * console.log(renderCostTable(estimateAssemblyCost(assembly)));
 * // or one template: estimateStackCost('MyStack', Template.fromStack(stack).toJSON())
 * ```
 *
 * From the command line, for a synthesized app: `npx ts-node --project test/tsconfig.json scripts/cost/cli.ts cdk.out`.
 */
export * from './estimate';
export * from './prices';
export * from './render';
