import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { IConstruct } from 'constructs';
import { acknowledge } from './acknowledge';

/**
 * Acknowledges the AwsSolutions-IAM5 (wildcard) findings of every IAM policy
 * under `scope`, with one reason, finding by finding.
 *
 * cdk-nag v3 has no wildcard acknowledgement: each `Action::x*` and
 * `Resource::y/*` finding must be named exactly. The names depend on logical
 * ids, on grants added after the construct is built and on cross-stack
 * references (which become `Fn::ImportValue` only once the app is prepared),
 * so they are computed in a construct validation, which runs after that and
 * before any validation plugin, the same way cdk-nag flattens them. Use it
 * only where every wildcard under `scope` has the same justification.
 */
export function acknowledgeWildcards(scope: IConstruct, reason: string): void {
  scope.node.addValidation({
    validate: () => {
      for (const node of scope.node.findAll()) {
        if (node instanceof iam.CfnPolicy) acknowledgePolicy(node, reason);
      }
      return [];
    },
  });
}

function acknowledgePolicy(node: iam.CfnPolicy, reason: string): void {
  const document = Stack.of(node).resolve(node.policyDocument);
  const findings = new Set<string>();
  for (const statement of document?.Statement ?? []) {
    if (statement.Effect !== 'Allow') continue;
    for (const action of asArray(statement.Action)) {
      if (typeof action === 'string' && action.includes('*')) findings.add(`Action::${action}`);
    }
    for (const resource of asArray(statement.Resource)) {
      const flat = flatten(resource);
      if (flat.includes('*')) findings.add(`Resource::${flat}`);
    }
  }
  if (findings.size > 0) {
    acknowledge(node, reason, ...[...findings].map((f) => `AwsSolutions-IAM5[${f}]`));
  }
}

function asArray(value: unknown): unknown[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/** Flattens a CloudFormation reference the way cdk-nag names findings. */
function flatten(node: any): string {
  if (node === undefined) return '';
  if (typeof node === 'string') return node.replace(/\${/g, '<').replace(/}/g, '>');
  if (node['Fn::Join']) {
    const [delimiter, items] = node['Fn::Join'];
    return items.map(flatten).join(delimiter);
  }
  if (node['Fn::Sub']) return flatten(node['Fn::Sub']);
  if (node['Fn::GetAtt']) return `<${flatten(node['Fn::GetAtt'][0])}.${flatten(node['Fn::GetAtt'][1])}>`;
  if (node['Fn::ImportValue']) return flatten(node['Fn::ImportValue']);
  if (node.Ref) return `<${flatten(node.Ref)}>`;
  return JSON.stringify(node);
}
