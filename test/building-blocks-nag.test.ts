import * as path from 'path';
import { App, Stack, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { expectNagClean, nagFindings } from './nag';
import { KnowledgeBucket, SlackSecrets, TelegramSecrets } from '../src';

const ENV = { account: '111111111111', region: 'us-east-1' };
const FIXTURE = path.join(__dirname, 'fixtures', 'knowledge');

function newStack(id: string): Stack {
  return new Stack(new App(), id, { env: ENV });
}

test('default building blocks pass all four packs', () => {
  const stack = newStack('Defaults');
  const kb = new KnowledgeBucket(stack, 'Knowledge');
  kb.addFolder(FIXTURE, { prefix: 'knowledge/' });
  new SlackSecrets(stack, 'Slack');
  new TelegramSecrets(stack, 'Telegram');

  // the stack really holds what the packs are meant to check
  const template = Template.fromStack(stack);
  template.resourceCountIs('AWS::S3::Bucket', 1);
  template.resourceCountIs('AWS::SecretsManager::Secret', 5);
  template.resourceCountIs('AWS::Lambda::Function', 1);
  template.resourceCountIs('Custom::CDKBucketDeployment', 1);

  expectNagClean(stack);
});

test('fully-featured building blocks pass all four packs', () => {
  const stack = newStack('Full');

  // The access-log bucket is this test's own resource, standing in for the
  // account's central log bucket; it is not part of the library. S3 server
  // access logging only delivers to SSE-S3 buckets (so no KMS default
  // encryption) and replicating a log bucket is the account's choice, so
  // exactly those four findings are acknowledged, on it alone. (The packs
  // already exempt a bucket that receives access logs from logging itself.)
  const logBucket = new s3.Bucket(stack, 'AccessLogs', {
    encryption: s3.BucketEncryption.S3_MANAGED,
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    enforceSSL: true,
    versioned: true,
  });
  const logBucketReason = 'Test-owned stand-in for the account access-log bucket: S3 server access logs can only be delivered to an SSE-S3 bucket, ' +
    'and replicating the log bucket is outside what this test covers.';
  Validations.of(logBucket).acknowledge(...[
    'NIST.800.53.R5-S3DefaultEncryptionKMS', 'HIPAA.Security-S3DefaultEncryptionKMS',
    'NIST.800.53.R5-S3BucketReplicationEnabled', 'HIPAA.Security-S3BucketReplicationEnabled',
  ].map((id) => ({ id, reason: logBucketReason })));

  const key = new kms.Key(stack, 'OrgKey', { enableKeyRotation: true });
  const kb = new KnowledgeBucket(stack, 'Knowledge', {
    encryptionKey: key,
    serverAccessLogsBucket: logBucket,
    serverAccessLogsPrefix: 'knowledge/',
    noncurrentVersionExpirationDays: 90,
    bucketName: 'full-knowledge-111111111111',
  });
  kb.addFolder(FIXTURE, { prefix: 'knowledge/', prune: true });
  kb.addFolder(FIXTURE, { prefix: 'projects/runbooks/' });

  new SlackSecrets(stack, 'Slack', {
    botToken: secretsmanager.Secret.fromSecretNameV2(stack, 'SlackBot', 'slack/bot'),
    appToken: secretsmanager.Secret.fromSecretNameV2(stack, 'SlackApp', 'slack/app'),
    encryptionKey: key,
  });
  new TelegramSecrets(stack, 'Telegram', {
    botToken: secretsmanager.Secret.fromSecretNameV2(stack, 'TelegramBot', 'telegram/bot'),
    encryptionKey: key,
    webhookSecretLength: 128,
  });

  const template = Template.fromStack(stack);
  template.resourceCountIs('AWS::KMS::Key', 1);
  template.resourceCountIs('AWS::S3::Bucket', 2);
  // signing secret placeholder + webhook secret; the imported ones are not created
  template.resourceCountIs('AWS::SecretsManager::Secret', 2);

  expectNagClean(stack);
});

test('an imported bucket with its key, filled by addFolder, passes all four packs', () => {
  const stack = newStack('Imported');
  const key = kms.Key.fromKeyArn(stack, 'BucketKey', 'arn:aws:kms:us-east-1:111111111111:key/11111111-2222-3333-4444-555555555555');
  const kb = KnowledgeBucket.fromBucket(stack, 'Knowledge', s3.Bucket.fromBucketName(stack, 'Existing', 'existing-knowledge'), key);
  kb.addFolder(FIXTURE, { prefix: 'skills/' });
  // the handler may use the bucket's key (it writes encrypted objects)
  expect(JSON.stringify(Template.fromStack(stack).findResources('AWS::IAM::Policy'))).toContain(key.keyArn);
  expectNagClean(stack);
});

test('the helper reports findings: a plain bucket is not clean', () => {
  const stack = newStack('Plain');
  new s3.Bucket(stack, 'Plain');
  const findings = nagFindings(stack);
  expect(findings).toEqual(expect.arrayContaining([
    'AwsSolutions-S1 @ Plain/Plain/Resource',
    'AwsSolutions-S10 @ Plain/Plain/Resource',
    'NIST.800.53.R5-S3DefaultEncryptionKMS @ Plain/Plain/Resource',
  ]));
  expect(() => expectNagClean(stack)).toThrow();
});
