import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { RUNTIME_ASSET_DIR } from './runtime-assets';

/**
 * The newest Python runtime this aws-cdk-lib knows. Our zip handlers need
 * only the standard library and boto3 (Python 3.11+), and cdk-nag's
 * latest-runtime rule compares against the same list.
 */
export function latestPythonRuntime(): lambda.Runtime {
  const pythons = lambda.Runtime.ALL
    .filter((r) => r.family === lambda.RuntimeFamily.PYTHON && /^python3\.\d+$/.test(r.name))
    .sort((a, b) => Number(a.name.split('.')[1]) - Number(b.name.split('.')[1]));
  return pythons[pythons.length - 1];
}

/** The zip code of the small handlers: only the hermes_aws package. */
export function runtimeZipCode(): lambda.Code {
  return lambda.Code.fromAsset(RUNTIME_ASSET_DIR, {
    exclude: ['*', '.*', '!hermes_aws', '!hermes_aws/**', '**/__pycache__', '**/*.pyc', '**/.*'],
  });
}

/** Options of {@link FunctionRole}. */
export interface FunctionRoleOptions {
  readonly logRetention: logs.RetentionDays;
  readonly encryptionKey: kms.IKey;
  readonly description: string;
}

/**
 * A Lambda execution role that writes only to the function's own
 * KMS-encrypted log group (no AWS managed policy) and to X-Ray.
 */
export class FunctionRole extends Construct {
  public readonly role: iam.Role;
  public readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, options: FunctionRoleOptions) {
    super(scope, id);
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: options.logRetention,
      encryptionKey: options.encryptionKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: options.description,
    });
    this.logGroup.grantWrite(this.role);
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({
      // X-Ray accepts no resource-level permissions for these actions.
      actions: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'],
      resources: ['*'],
    }));
  }
}

/** Common, explicit settings of every function we create. */
export function functionDefaults(role: FunctionRole, memorySize: number, timeout: Duration): Partial<lambda.FunctionProps> {
  return {
    role: role.role,
    logGroup: role.logGroup,
    architecture: lambda.Architecture.ARM_64,
    memorySize,
    timeout,
    tracing: lambda.Tracing.ACTIVE,
    loggingFormat: lambda.LoggingFormat.JSON,
  };
}
