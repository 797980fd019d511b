import { Stack } from 'aws-cdk-lib';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';

/**
 * Grants reading a secret entirely on the grantee's side: GetSecretValue on
 * the secret and, for a KMS-encrypted one, kms:Decrypt on its key through
 * Secrets Manager only.
 *
 * CDK's own `secret.grantRead()` also writes the grantee into the key policy;
 * when the secret lives in another stack (a shared "secrets" stack is common)
 * that reference runs backwards and the two stacks form a cycle.
 */
export function grantSecretRead(secret: secretsmanager.ISecret, grantee: iam.IGrantable): iam.Grant {
  let grant = iam.Grant.addToPrincipal({
    grantee,
    actions: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
    resourceArns: [secret.secretFullArn ?? `${secret.secretArn}-??????`],
  });
  if (secret.encryptionKey) {
    grant = grant.combine(iam.Grant.addToPrincipal({
      grantee,
      actions: ['kms:Decrypt'],
      resourceArns: [secret.encryptionKey.keyArn],
      conditions: { StringEquals: { 'kms:ViaService': `secretsmanager.${Stack.of(secret).region}.amazonaws.com` } },
    }));
  }
  return grant;
}

/**
 * An ECS secret for `secret` whose read permission is granted to `role` on
 * the role's side only (see {@link grantSecretRead}). ECS grants the execution
 * role itself when the container is added; handing it a key-less reference to
 * the same secret keeps that grant out of the key policy.
 */
export function ecsSecret(scope: Construct, id: string, secret: secretsmanager.ISecret, role: iam.IRole): ecs.Secret {
  if (!secret.encryptionKey) return ecs.Secret.fromSecretsManager(secret);
  grantSecretRead(secret, role);
  const reference = secret.secretFullArn
    ? secretsmanager.Secret.fromSecretCompleteArn(scope, id, secret.secretFullArn)
    : secretsmanager.Secret.fromSecretPartialArn(scope, id, secret.secretArn);
  return ecs.Secret.fromSecretsManager(reference);
}
