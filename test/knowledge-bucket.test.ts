import * as path from 'path';
import { App, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { AgentEncryptionKey, KnowledgeBucket, KnowledgeBucketProps, SlackSecrets } from '../src';

const ENV = { account: '111111111111', region: 'us-east-1' };
const FIXTURE = path.join(__dirname, 'fixtures', 'knowledge');
/** Logical id of the stack's shared key (construct id `HermesAgentKey` directly under the stack). */
const SHARED_KEY = 'HermesAgentKey2DBA7C9F';
const BUCKET = 'KnowledgeBucket8C8F037E';

function newStack(): Stack {
  return new Stack(new App(), 'S', { env: ENV });
}

function newRole(stack: Stack, id = 'Role'): iam.Role {
  return new iam.Role(stack, id, { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
}

/** The statements of the role's default policy. */
function policyStatements(template: Template): any[] {
  const policies = Object.values(template.findResources('AWS::IAM::Policy'));
  expect(policies).toHaveLength(1);
  return (policies[0] as any).Properties.PolicyDocument.Statement;
}

describe('KnowledgeBucket defaults', () => {
  const stack = newStack();
  const kb = new KnowledgeBucket(stack, 'Knowledge');
  const template = Template.fromStack(stack);

  test('creates one bucket, encrypted with the shared stack key and a bucket key', () => {
    template.resourceCountIs('AWS::S3::Bucket', 1);
    template.resourceCountIs('AWS::KMS::Key', 1);
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{
          BucketKeyEnabled: true,
          ServerSideEncryptionByDefault: {
            SSEAlgorithm: 'aws:kms',
            KMSMasterKeyID: { 'Fn::GetAtt': [SHARED_KEY, 'Arn'] },
          },
        }],
      },
    });
    expect(kb.encryptionKey).toBe(AgentEncryptionKey.of(stack));
  });

  test('the shared key rotates and is retained', () => {
    template.hasResource('AWS::KMS::Key', {
      Properties: Match.objectLike({ EnableKeyRotation: true, Description: Match.stringLikeRegexp('stack S') }),
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
  });

  test('blocks all public access and enforces bucket-owner object ownership', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
    });
  });

  test('denies every request that is not over TLS', () => {
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: BUCKET },
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({
          Effect: 'Deny',
          Action: 's3:*',
          Principal: { AWS: '*' },
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          Resource: [
            { 'Fn::GetAtt': [BUCKET, 'Arn'] },
            { 'Fn::Join': ['', [{ 'Fn::GetAtt': [BUCKET, 'Arn'] }, '/*']] },
          ],
        })]),
      },
    });
  });

  test('is versioned, expires noncurrent versions after 30 days and aborts stale multipart uploads', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      VersioningConfiguration: { Status: 'Enabled' },
      LifecycleConfiguration: {
        Rules: [{
          Id: 'expire-noncurrent-versions',
          Status: 'Enabled',
          NoncurrentVersionExpiration: { NoncurrentDays: 30 },
          AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 },
        }],
      },
    });
  });

  test('is retained on delete and replace, with no access logging and a generated name', () => {
    template.hasResource('AWS::S3::Bucket', { DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
    template.hasResourceProperties('AWS::S3::Bucket', {
      LoggingConfiguration: Match.absent(),
      BucketName: Match.absent(),
    });
  });

  test('exposes the bucket and the well-known prefixes', () => {
    expect(kb.bucket).toBeInstanceOf(s3.Bucket);
    expect(KnowledgeBucket.KNOWLEDGE_PREFIX).toBe('knowledge/');
    expect(KnowledgeBucket.PROJECTS_PREFIX).toBe('projects/');
    expect(KnowledgeBucket.SKILLS_PREFIX).toBe('skills/');
  });
});

describe('KnowledgeBucket props', () => {
  test('removalPolicy DESTROY deletes the bucket', () => {
    const stack = newStack();
    new KnowledgeBucket(stack, 'Knowledge', { removalPolicy: RemovalPolicy.DESTROY });
    Template.fromStack(stack).hasResource('AWS::S3::Bucket', { DeletionPolicy: 'Delete', UpdateReplacePolicy: 'Delete' });
  });

  test('noncurrentVersionExpirationDays sets the lifecycle rule', () => {
    const stack = newStack();
    new KnowledgeBucket(stack, 'Knowledge', { noncurrentVersionExpirationDays: 365 });
    Template.fromStack(stack).hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: { Rules: [Match.objectLike({ NoncurrentVersionExpiration: { NoncurrentDays: 365 } })] },
    });
  });

  test.each([1, 3650])('noncurrentVersionExpirationDays accepts the bound %d', (days) => {
    const stack = newStack();
    expect(() => new KnowledgeBucket(stack, 'Knowledge', { noncurrentVersionExpirationDays: days })).not.toThrow();
  });

  test('serverAccessLogsBucket turns on access logging with the default prefix', () => {
    const stack = newStack();
    const logs = new s3.Bucket(stack, 'Logs', { encryption: s3.BucketEncryption.S3_MANAGED });
    new KnowledgeBucket(stack, 'Knowledge', { serverAccessLogsBucket: logs });
    Template.fromStack(stack).hasResourceProperties('AWS::S3::Bucket', {
      LoggingConfiguration: {
        DestinationBucketName: { Ref: stack.getLogicalId(logs.node.defaultChild as s3.CfnBucket) },
        LogFilePrefix: 'knowledge-bucket/',
      },
    });
  });

  test('serverAccessLogsPrefix overrides the log prefix', () => {
    const stack = newStack();
    const logs = new s3.Bucket(stack, 'Logs', { encryption: s3.BucketEncryption.S3_MANAGED });
    new KnowledgeBucket(stack, 'Knowledge', { serverAccessLogsBucket: logs, serverAccessLogsPrefix: 'agents/alice/' });
    Template.fromStack(stack).hasResourceProperties('AWS::S3::Bucket', {
      LoggingConfiguration: Match.objectLike({ LogFilePrefix: 'agents/alice/' }),
    });
  });

  test('bucketName sets the physical name', () => {
    const stack = newStack();
    new KnowledgeBucket(stack, 'Knowledge', { bucketName: 'alice-knowledge.example-1' });
    Template.fromStack(stack).hasResourceProperties('AWS::S3::Bucket', { BucketName: 'alice-knowledge.example-1' });
  });

  test('an encryptionKey passed in is used and no shared key is created', () => {
    const stack = newStack();
    const key = new kms.Key(stack, 'MyKey', { enableKeyRotation: true });
    const kb = new KnowledgeBucket(stack, 'Knowledge', { encryptionKey: key });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::KMS::Key', 1);
    expect(stack.node.tryFindChild(AgentEncryptionKey.ID)).toBeUndefined();
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [Match.objectLike({
          ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: { 'Fn::GetAtt': [stack.getLogicalId(key.node.defaultChild as kms.CfnKey), 'Arn'] } },
        })],
      },
    });
    expect(kb.encryptionKey).toBe(key);
  });

  test('the shared key is created once per stack, whoever asks first', () => {
    const stack = newStack();
    new KnowledgeBucket(stack, 'A');
    new KnowledgeBucket(stack, 'B');
    new SlackSecrets(stack, 'Slack');
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::S3::Bucket', 2);
    template.resourceCountIs('AWS::KMS::Key', 1);
  });

  test('env-agnostic stacks work too (the key description uses the stack name)', () => {
    const stack = new Stack(new App(), 'Agnostic');
    new KnowledgeBucket(stack, 'Knowledge');
    Template.fromStack(stack).hasResourceProperties('AWS::KMS::Key', {
      Description: 'Encrypts Hermes Agent data in stack Agnostic (cdk-hermes-agent)',
    });
  });
});

describe('KnowledgeBucket.fromBucket', () => {
  test('wraps an imported bucket: no bucket or key is created, grants go to the imported bucket', () => {
    const stack = newStack();
    const imported = s3.Bucket.fromBucketName(stack, 'Imported', 'existing-knowledge');
    const kb = KnowledgeBucket.fromBucket(stack, 'Knowledge', imported);
    const role = newRole(stack);
    kb.grantRead(role, 'knowledge/');

    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::S3::Bucket', 0);
    template.resourceCountIs('AWS::S3::BucketPolicy', 0);
    template.resourceCountIs('AWS::KMS::Key', 0);
    expect(kb.bucket).toBe(imported);
    expect(kb.encryptionKey).toBeUndefined();

    const bucketArn = { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':s3:::existing-knowledge']] };
    const objectsArn = { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':s3:::existing-knowledge/knowledge/*']] };
    expect(policyStatements(template)).toEqual([{
      Effect: 'Allow',
      Action: ['s3:GetObject*', 's3:GetBucket*', 's3:List*'],
      Resource: [bucketArn, objectsArn],
    }]);
  });

  test('with the bucket key, grants and the folder deployment include that key', () => {
    const stack = newStack();
    const imported = s3.Bucket.fromBucketName(stack, 'Imported', 'existing-knowledge');
    const keyArn = 'arn:aws:kms:us-east-1:111111111111:key/11111111-2222-3333-4444-555555555555';
    const key = kms.Key.fromKeyArn(stack, 'ImportedKey', keyArn);
    const kb = KnowledgeBucket.fromBucket(stack, 'Knowledge', imported, key);
    expect(kb.encryptionKey).toBe(key);
    kb.grantRead(newRole(stack, 'Reader'));
    kb.grantReadWrite(newRole(stack, 'Writer'), 'skills/');
    kb.addFolder(FIXTURE, { prefix: 'knowledge/' });

    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::KMS::Key', 0);
    const statementsOf = (rolePrefix: string): any[] => {
      const policies = template.findResources('AWS::IAM::Policy');
      const id = Object.keys(policies).find((logicalId) => logicalId.startsWith(rolePrefix));
      expect(id).toBeDefined();
      return policies[id!].Properties.PolicyDocument.Statement;
    };
    expect(statementsOf('Reader')).toContainEqual({ Effect: 'Allow', Action: 'kms:Decrypt', Resource: keyArn });
    expect(statementsOf('Writer')).toContainEqual({
      Effect: 'Allow',
      Action: expect.arrayContaining(['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey*']),
      Resource: keyArn,
    });
    expect(statementsOf('CustomCDKBucketDeployment')).toContainEqual({
      Effect: 'Allow',
      Action: expect.arrayContaining(['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey*']),
      Resource: keyArn,
    });
  });

  test('takes the key from a bucket that knows it', () => {
    const stack = newStack();
    const key = new kms.Key(stack, 'Key', { enableKeyRotation: true });
    const imported = s3.Bucket.fromBucketAttributes(stack, 'Imported', { bucketName: 'existing-knowledge', encryptionKey: key });
    const kb = KnowledgeBucket.fromBucket(stack, 'Knowledge', imported);
    expect(kb.encryptionKey).toBe(key);
    kb.grantRead(newRole(stack));
    // the bucket's own grant covers the key: exactly one KMS statement, no duplicate
    const kmsStatements = policyStatements(Template.fromStack(stack)).filter((st) => JSON.stringify(st.Action).includes('kms:'));
    expect(kmsStatements).toEqual([{
      Effect: 'Allow',
      Action: ['kms:Decrypt', 'kms:DescribeKey'],
      Resource: { 'Fn::GetAtt': [stack.getLogicalId(key.node.defaultChild as kms.CfnKey), 'Arn'] },
    }]);
  });
});

describe('KnowledgeBucket grants', () => {
  test('grantRead with a prefix: list and get-bucket on the bucket, get on prefix* objects, kms:Decrypt on the key', () => {
    const stack = newStack();
    const kb = new KnowledgeBucket(stack, 'Knowledge');
    kb.grantRead(newRole(stack), 'knowledge/');
    expect(policyStatements(Template.fromStack(stack))).toEqual([
      {
        Effect: 'Allow',
        Action: ['s3:GetObject*', 's3:GetBucket*', 's3:List*'],
        Resource: [
          { 'Fn::GetAtt': [BUCKET, 'Arn'] },
          { 'Fn::Join': ['', [{ 'Fn::GetAtt': [BUCKET, 'Arn'] }, '/knowledge/*']] },
        ],
      },
      {
        Effect: 'Allow',
        Action: ['kms:Decrypt', 'kms:DescribeKey'],
        Resource: { 'Fn::GetAtt': [SHARED_KEY, 'Arn'] },
      },
    ]);
  });

  test('grantRead without a prefix covers the whole bucket', () => {
    const stack = newStack();
    const kb = new KnowledgeBucket(stack, 'Knowledge');
    kb.grantRead(newRole(stack));
    const [s3Statement] = policyStatements(Template.fromStack(stack));
    expect(s3Statement.Resource).toEqual([
      { 'Fn::GetAtt': [BUCKET, 'Arn'] },
      { 'Fn::Join': ['', [{ 'Fn::GetAtt': [BUCKET, 'Arn'] }, '/*']] },
    ]);
  });

  test('grantReadWrite with a prefix: read, write and delete on prefix* objects, encrypt and decrypt on the key', () => {
    const stack = newStack();
    const kb = new KnowledgeBucket(stack, 'Knowledge');
    const grant = kb.grantReadWrite(newRole(stack), 'skills/');
    expect(grant.success).toBe(true);
    const [s3Statement, kmsStatement] = policyStatements(Template.fromStack(stack));
    expect(s3Statement.Action).toEqual(expect.arrayContaining(['s3:GetObject*', 's3:List*', 's3:PutObject', 's3:DeleteObject*']));
    expect(s3Statement.Resource).toEqual([
      { 'Fn::GetAtt': [BUCKET, 'Arn'] },
      { 'Fn::Join': ['', [{ 'Fn::GetAtt': [BUCKET, 'Arn'] }, '/skills/*']] },
    ]);
    expect(kmsStatement).toEqual({
      Effect: 'Allow',
      Action: expect.arrayContaining(['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey*']),
      Resource: { 'Fn::GetAtt': [SHARED_KEY, 'Arn'] },
    });
  });
});

describe('KnowledgeBucket.addFolder', () => {
  test('deploys the folder under the prefix, without pruning, retained on delete', () => {
    const stack = newStack();
    const kb = new KnowledgeBucket(stack, 'Knowledge');
    kb.addFolder(FIXTURE, { prefix: 'knowledge/' });
    const template = Template.fromStack(stack);
    template.resourceCountIs('Custom::CDKBucketDeployment', 1);
    template.hasResourceProperties('Custom::CDKBucketDeployment', {
      DestinationBucketName: { Ref: BUCKET },
      DestinationBucketKeyPrefix: 'knowledge/',
      Prune: false,
      RetainOnDelete: true,
    });
  });

  test('prune: true deletes what is not in the folder; each call adds one deployment sharing one handler', () => {
    const stack = newStack();
    const kb = new KnowledgeBucket(stack, 'Knowledge');
    kb.addFolder(FIXTURE, { prefix: 'knowledge/' });
    kb.addFolder(FIXTURE, { prefix: 'projects/runbooks/', prune: true });
    const template = Template.fromStack(stack);
    template.resourceCountIs('Custom::CDKBucketDeployment', 2);
    template.resourceCountIs('AWS::Lambda::Function', 1);
    template.hasResourceProperties('Custom::CDKBucketDeployment', {
      DestinationBucketKeyPrefix: 'projects/runbooks/',
      Prune: true,
      RetainOnDelete: true,
    });
  });

  test('works on an imported bucket', () => {
    const stack = newStack();
    const kb = KnowledgeBucket.fromBucket(stack, 'Knowledge', s3.Bucket.fromBucketName(stack, 'Imported', 'existing-knowledge'));
    kb.addFolder(FIXTURE, { prefix: 'skills/' });
    Template.fromStack(stack).hasResourceProperties('Custom::CDKBucketDeployment', {
      DestinationBucketName: 'existing-knowledge',
      DestinationBucketKeyPrefix: 'skills/',
    });
  });
});

describe('KnowledgeBucket validation', () => {
  const otherProps: Array<[keyof KnowledgeBucketProps, (stack: Stack) => KnowledgeBucketProps]> = [
    ['removalPolicy', () => ({ removalPolicy: RemovalPolicy.DESTROY })],
    ['noncurrentVersionExpirationDays', () => ({ noncurrentVersionExpirationDays: 10 })],
    ['serverAccessLogsBucket', (stack) => ({ serverAccessLogsBucket: s3.Bucket.fromBucketName(stack, 'Logs', 'logs') })],
    ['serverAccessLogsPrefix', () => ({ serverAccessLogsPrefix: 'logs/' })],
    ['bucketName', () => ({ bucketName: 'other-name' })],
  ];

  test.each(otherProps)('bucket together with %s is rejected', (prop, extra) => {
    const stack = newStack();
    const bucket = s3.Bucket.fromBucketName(stack, 'Imported', 'existing-knowledge');
    expect(() => new KnowledgeBucket(stack, 'Knowledge', { bucket, ...extra(stack) }))
      .toThrow(`KnowledgeBucketProps.${prop} cannot be set together with \`bucket\` (an existing bucket is used as it is)`);
  });

  test('serverAccessLogsPrefix without serverAccessLogsBucket is rejected', () => {
    expect(() => new KnowledgeBucket(newStack(), 'Knowledge', { serverAccessLogsPrefix: 'logs/' }))
      .toThrow('KnowledgeBucketProps.serverAccessLogsPrefix requires `serverAccessLogsBucket`');
  });

  test.each(['My_Bucket', 'ab', '-leading-hyphen', `a${'b'.repeat(63)}`])('bucketName %j is rejected', (bucketName) => {
    expect(() => new KnowledgeBucket(newStack(), 'Knowledge', { bucketName }))
      .toThrow(`KnowledgeBucketProps.bucketName must be a valid S3 bucket name (3-63 lowercase letters, digits, dots and hyphens) (got ${JSON.stringify(bucketName)})`);
  });

  test.each([0, 3651, 1.5])('noncurrentVersionExpirationDays %d is rejected', (days) => {
    expect(() => new KnowledgeBucket(newStack(), 'Knowledge', { noncurrentVersionExpirationDays: days }))
      .toThrow(`KnowledgeBucketProps.noncurrentVersionExpirationDays must be an integer between 1 and 3650 (got ${days})`);
  });

  test.each(['/knowledge/', 'knowledge', ''])('addFolder prefix %j is rejected', (prefix) => {
    const stack = newStack();
    const kb = new KnowledgeBucket(stack, 'Knowledge');
    expect(() => kb.addFolder(FIXTURE, { prefix }))
      .toThrow(`KnowledgeFolderOptions.prefix must be a key prefix that ends with "/" and does not start with "/", e.g. "knowledge/" (got ${JSON.stringify(prefix)})`);
    Template.fromStack(stack).resourceCountIs('Custom::CDKBucketDeployment', 0);
  });

  test.each(['knowledge/*', '*', '/knowledge/'])('grant keyPrefix %j is rejected', (keyPrefix) => {
    const stack = newStack();
    const kb = new KnowledgeBucket(stack, 'Knowledge');
    const role = newRole(stack);
    const message = `keyPrefix must be a key prefix without "*" that does not start with "/" (got ${JSON.stringify(keyPrefix)})`;
    expect(() => kb.grantRead(role, keyPrefix)).toThrow(message);
    expect(() => kb.grantReadWrite(role, keyPrefix)).toThrow(message);
  });
});
