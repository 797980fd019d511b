/**
 * Integration test of the shared building blocks: a knowledge bucket with a
 * folder uploaded at deploy time, Slack and Telegram secrets.
 *
 * `npx projen test:integ` checks the committed snapshot without AWS
 * credentials; `npx integ-runner --directory integ --update-on-failed`
 * deploys it and runs the assertions below.
 */
import * as path from 'path';
import { ExpectedResult, IntegTest } from '@aws-cdk/integ-tests-alpha';
import { App, Stack } from 'aws-cdk-lib';
import { KnowledgeBucket, SecretPlaceholder, SlackSecrets, TelegramSecrets } from '../src';

const app = new App();
const stack = new Stack(app, 'HermesBuildingBlocks');
const knowledge = new KnowledgeBucket(stack, 'Knowledge');
knowledge.addFolder(path.join(__dirname, 'knowledge'), { prefix: KnowledgeBucket.KNOWLEDGE_PREFIX });
const slack = new SlackSecrets(stack, 'Slack');
const telegram = new TelegramSecrets(stack, 'Telegram');

const integ = new IntegTest(app, 'BuildingBlocks', { testCases: [stack] });

// The uploaded folder is in the bucket under knowledge/. (The IAM action of
// ListObjectsV2 is s3:ListBucket, which the assertion provider cannot derive.)
const listed = integ.assertions.awsApiCall('S3', 'listObjectsV2', { Bucket: knowledge.bucket.bucketName, Prefix: 'knowledge/' });
listed.provider.addToRolePolicy({ Effect: 'Allow', Action: ['s3:ListBucket'], Resource: [knowledge.bucket.bucketArn] });
listed.expect(ExpectedResult.objectLike({ KeyCount: 1, Contents: [{ Key: 'knowledge/runbook.md' }] }));

// Versioning is on.
integ.assertions.awsApiCall('S3', 'getBucketVersioning', { Bucket: knowledge.bucket.bucketName })
  .expect(ExpectedResult.objectLike({ Status: 'Enabled' }));

// The secrets are encrypted with the stack's shared key.
const decrypt = { Effect: 'Allow', Action: ['kms:Decrypt'], Resource: [knowledge.encryptionKey!.keyArn] };

// A placeholder token holds the placeholder value until an operator sets it.
const placeholder = integ.assertions.awsApiCall('SecretsManager', 'getSecretValue', { SecretId: slack.botToken.secretArn });
placeholder.provider.addToRolePolicy(decrypt);
placeholder.expect(ExpectedResult.objectLike({ SecretString: SecretPlaceholder.VALUE }));

// The generated webhook secret is 64 characters Telegram accepts.
const webhook = integ.assertions.awsApiCall('SecretsManager', 'getSecretValue', { SecretId: telegram.webhookSecret.secretArn });
webhook.provider.addToRolePolicy(decrypt);
webhook.assertAtPath('SecretString', ExpectedResult.stringLikeRegexp('^[A-Za-z0-9]{64}$'));
