import { CfnElement, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { IConstruct } from 'constructs';

/** A template synthesized on first use (one App can only be synthesized once it is complete). */
export function lazyTemplate(stack: Stack): () => Template {
  let template: Template | undefined;
  return () => (template ??= Template.fromStack(stack));
}

/** Logical id of an L2 construct's resource (or of an L1). */
export function lid(construct: IConstruct): string {
  const element = (construct instanceof CfnElement ? construct : construct.node.defaultChild) as CfnElement;
  return Stack.of(construct).getLogicalId(element);
}

/** Every resource of a type, with its id and properties. */
export function resourcesOf(template: Template, type: string): Array<{ id: string; props: any; resource: any }> {
  return Object.entries(template.findResources(type)).map(([id, r]) => ({ id, props: r.Properties ?? {}, resource: r }));
}
