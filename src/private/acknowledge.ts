import { Validations } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';

/**
 * Records a cdk-nag v3 acknowledgement on `scope` (it covers the scope's
 * children too). Every call site states why the finding is unavoidable.
 *
 * `Validations.acknowledge()` rejects ids with more than one `::`, which
 * granular cdk-nag findings such as
 * `AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/...]`
 * contain; those are written to the same metadata key directly, in the form
 * cdk-nag reads back.
 */
export function acknowledge(scope: IConstruct, reason: string, ...ruleIds: string[]): void {
  const plain = ruleIds.filter((id) => id.split('::').length <= 2);
  const granular = ruleIds.filter((id) => id.split('::').length > 2);
  if (plain.length > 0) {
    Validations.of(scope).acknowledge(...plain.map((id) => ({ id, reason })));
  }
  if (granular.length > 0) {
    scope.node.addMetadata(Validations.ACKNOWLEDGED_RULES_METADATA_KEY, Object.fromEntries(granular.map((id) => [id, reason])));
  }
}
