import { PolicyValidationPluginReport, Stage } from 'aws-cdk-lib';
import { AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks, NagPack, ServerlessChecks } from 'cdk-nag';
import { IConstruct } from 'constructs';

/** The four packs every construct of this library must pass. */
export function nagPacks(): NagPack[] {
  return [new AwsSolutionsChecks(), new ServerlessChecks(), new NIST80053R5Checks(), new HIPAASecurityChecks()];
}

/**
 * Runs the four cdk-nag v3 packs over `scope` and returns every finding that
 * was not acknowledged, as `RuleId @ construct/path`, sorted.
 */
export function nagFindings(scope: IConstruct): string[] {
  // Synthesize first, as `cdk synth` does before it runs validation plugins:
  // aspects (some acknowledgements are computed by one) run during synthesis.
  Stage.of(scope)?.synth({ force: true });
  const findings: string[] = [];
  for (const pack of nagPacks()) {
    const report: PolicyValidationPluginReport = pack.validateScope(scope);
    for (const violation of report.violations) {
      for (const resource of violation.violatingResources) {
        findings.push(`${violation.ruleName} @ ${resource.constructPath ?? resource.resourceLogicalId}`);
      }
    }
  }
  return [...new Set(findings)].sort();
}

/** Fails with the full list of unacknowledged findings, if any. */
export function expectNagClean(scope: IConstruct): void {
  expect(nagFindings(scope)).toEqual([]);
}
