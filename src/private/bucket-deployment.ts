import { Stack } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { acknowledge } from './acknowledge';
import { acknowledgeWildcards } from './iam-wildcards';

const acknowledged = new WeakSet<object>();

/**
 * BucketDeployment runs one CDK-owned singleton Lambda per stack. Its code,
 * runtime, role and policy are fixed by aws-cdk-lib, so its findings can only
 * be acknowledged, which we do on that function alone.
 */
export function acknowledgeBucketDeploymentHandler(scope: Construct): void {
  const stack = Stack.of(scope);
  for (const child of stack.node.children) {
    if (!child.node.id.startsWith('Custom::CDKBucketDeployment') || acknowledged.has(child)) continue;
    acknowledged.add(child);
    acknowledgeWildcards(child,
      'CDK-owned BucketDeployment handler: CDK grants it read on the asset bucket and read/write on the destination bucket and its key; the wildcards are the object keys of those buckets and the KMS data-key actions.');
    acknowledge(child,
      'CDK-owned BucketDeployment handler: AWS managed basic-execution policy, fixed runtime, S3 wildcards limited to the asset and destination buckets, synchronous custom-resource invocation (no DLQ/VPC/concurrency/tracing needed for a deploy-time copy).',
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
      'AwsSolutions-L1',
      'Serverless-LambdaDLQ', 'Serverless-LambdaTracing', 'Serverless-LambdaLatestVersion',
      'NIST.800.53.R5-LambdaConcurrency', 'NIST.800.53.R5-LambdaDLQ', 'NIST.800.53.R5-LambdaInsideVPC', 'NIST.800.53.R5-IAMNoInlinePolicy',
      'HIPAA.Security-LambdaConcurrency', 'HIPAA.Security-LambdaDLQ', 'HIPAA.Security-LambdaInsideVPC', 'HIPAA.Security-IAMNoInlinePolicy',
    );
  }
}
