import { App, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { AgentEncryptionKey, SecretPlaceholder, SlackSecrets, TelegramSecrets } from '../src';

const ENV = { account: '111111111111', region: 'us-east-1' };
/** Logical id of the stack's shared key. */
const SHARED_KEY = 'HermesAgentKey2DBA7C9F';
const FILL_IN = 'Created as a placeholder: store the real value with `aws secretsmanager put-secret-value --secret-id <this secret> --secret-string <token>`.';

function newStack(): Stack {
  return new Stack(new App(), 'S', { env: ENV });
}

function newRole(stack: Stack): iam.Role {
  return new iam.Role(stack, 'Role', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
}

function logicalId(secret: secretsmanager.ISecret): string {
  return Stack.of(secret).getLogicalId(secret.node.defaultChild as secretsmanager.CfnSecret);
}

function policyStatements(template: Template): any[] {
  const policies = Object.values(template.findResources('AWS::IAM::Policy'));
  expect(policies).toHaveLength(1);
  return (policies[0] as any).Properties.PolicyDocument.Statement;
}

/**
 * The shared key lives in the same stack, so Secret.grantRead puts kms:Decrypt
 * (through Secrets Manager only) into the key policy, naming the grantee.
 */
function decryptStatementsFor(stack: Stack): any[] {
  const key = Template.fromStack(stack).findResources('AWS::KMS::Key')[SHARED_KEY];
  return key.Properties.KeyPolicy.Statement.filter((s: any) => JSON.stringify(s.Principal).includes(ROLE));
}

/** kms:Decrypt statements in the role's own policy. */
function roleDecryptStatements(stack: Stack): any[] {
  return policyStatements(Template.fromStack(stack)).filter((s) => s.Action === 'kms:Decrypt');
}

/** The grant is on the role's side only: the key policy never names the grantee. */
function expectDecryptViaSecretsManagerOnRoleOnly(stack: Stack): void {
  expect(decryptStatementsFor(stack)).toEqual([]);
  expect(roleDecryptStatements(stack)).toEqual([{
    Effect: 'Allow',
    Action: 'kms:Decrypt',
    Resource: { 'Fn::GetAtt': [SHARED_KEY, 'Arn'] },
    Condition: { StringEquals: { 'kms:ViaService': 'secretsmanager.us-east-1.amazonaws.com' } },
  }]);
}

const ROLE = 'Role1ABCC5F0';
const SECRET_READ = ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'];

describe('SlackSecrets', () => {
  test('creates three retained, KMS-encrypted placeholders that say how to fill them in', () => {
    const stack = newStack();
    const slack = new SlackSecrets(stack, 'Slack');
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::SecretsManager::Secret', 3);
    template.resourceCountIs('AWS::KMS::Key', 1);

    const expected: Array<[secretsmanager.ISecret, string]> = [
      [slack.botToken, 'Slack bot token (xoxb-...) for Hermes Agent. OAuth & Permissions > Bot User OAuth Token.'],
      [slack.appToken, 'Slack app-level token (xapp-..., scope connections:write) for Hermes Agent Socket Mode. Basic Information > App-Level Tokens.'],
      [slack.signingSecret, 'Slack signing secret for Hermes Agent Events API requests. Basic Information > App Credentials > Signing Secret.'],
    ];
    const secrets = template.findResources('AWS::SecretsManager::Secret');
    for (const [secret, description] of expected) {
      expect(secrets[logicalId(secret)]).toEqual({
        Type: 'AWS::SecretsManager::Secret',
        Properties: {
          Description: `${description} ${FILL_IN}`,
          KmsKeyId: { 'Fn::GetAtt': [SHARED_KEY, 'Arn'] },
          SecretString: SecretPlaceholder.VALUE,
        },
        DeletionPolicy: 'Retain',
        UpdateReplacePolicy: 'Retain',
      });
    }
  });

  test('the placeholder value is a fixed, recognisable marker', () => {
    expect(SecretPlaceholder.VALUE).toBe('HERMES_PLACEHOLDER_SET_ME');
  });

  test('imported secrets are used as they are and nothing is created', () => {
    const stack = newStack();
    const botToken = secretsmanager.Secret.fromSecretNameV2(stack, 'Bot', 'slack/bot');
    const appToken = secretsmanager.Secret.fromSecretNameV2(stack, 'App', 'slack/app');
    const signingSecret = secretsmanager.Secret.fromSecretNameV2(stack, 'Signing', 'slack/signing');
    const slack = new SlackSecrets(stack, 'Slack', { botToken, appToken, signingSecret });
    expect(slack.botToken).toBe(botToken);
    expect(slack.appToken).toBe(appToken);
    expect(slack.signingSecret).toBe(signingSecret);
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::SecretsManager::Secret', 0);
    template.resourceCountIs('AWS::KMS::Key', 0);
  });

  test('mixed: one imported secret, two placeholders', () => {
    const stack = newStack();
    const botToken = secretsmanager.Secret.fromSecretNameV2(stack, 'Bot', 'slack/bot');
    const slack = new SlackSecrets(stack, 'Slack', { botToken });
    expect(slack.botToken).toBe(botToken);
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::SecretsManager::Secret', 2);
    template.hasResourceProperties('AWS::SecretsManager::Secret', { Description: Match.stringLikeRegexp('^Slack app-level token') });
    template.hasResourceProperties('AWS::SecretsManager::Secret', { Description: Match.stringLikeRegexp('^Slack signing secret') });
    expect(JSON.stringify(template.toJSON())).not.toContain('Slack bot token');
  });

  test('grantRead allows reading all three secrets and decrypting them through Secrets Manager', () => {
    const stack = newStack();
    const botToken = secretsmanager.Secret.fromSecretNameV2(stack, 'Bot', 'slack/bot');
    const slack = new SlackSecrets(stack, 'Slack', { botToken });
    const grant = slack.grantRead(newRole(stack));
    expect(grant.success).toBe(true);

    const statements = policyStatements(Template.fromStack(stack));
    const secretStatements = statements.filter((s) => JSON.stringify(s.Action) === JSON.stringify(SECRET_READ));
    const resources = secretStatements.flatMap((s) => (Array.isArray(s.Resource) ? s.Resource : [s.Resource]));
    expect(resources).toHaveLength(3);
    expect(resources).toEqual(expect.arrayContaining([
      { Ref: logicalId(slack.appToken) },
      { Ref: logicalId(slack.signingSecret) },
      { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':secretsmanager:us-east-1:111111111111:secret:slack/bot-??????']] },
    ]));
    expectDecryptViaSecretsManagerOnRoleOnly(stack);
  });

  test('grantRead to a role in another stack keeps the stacks free of a cycle', () => {
    const app = new App();
    const shared = new Stack(app, 'Shared', { env: { account: '111111111111', region: 'us-east-1' } });
    const consumer = new Stack(app, 'Consumer', { env: { account: '111111111111', region: 'us-east-1' } });
    const slack = new SlackSecrets(shared, 'Slack');
    slack.grantRead(new iam.Role(consumer, 'Role', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') }));
    expect(() => app.synth()).not.toThrow();
    expect(consumer.dependencies.map((s) => s.stackName)).toEqual(['Shared']);
    expect(shared.dependencies).toEqual([]);
  });

  test('removalPolicy DESTROY deletes the placeholders', () => {
    const stack = newStack();
    new SlackSecrets(stack, 'Slack', { removalPolicy: RemovalPolicy.DESTROY });
    const secrets = Object.values(Template.fromStack(stack).findResources('AWS::SecretsManager::Secret'));
    expect(secrets).toHaveLength(3);
    for (const secret of secrets) expect(secret.DeletionPolicy).toBe('Delete');
  });

  test('encryptionKey encrypts the placeholders and no shared key is created', () => {
    const stack = newStack();
    const key = new kms.Key(stack, 'MyKey', { enableKeyRotation: true });
    new SlackSecrets(stack, 'Slack', { encryptionKey: key });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::KMS::Key', 1);
    expect(stack.node.tryFindChild(AgentEncryptionKey.ID)).toBeUndefined();
    const keyId = stack.getLogicalId(key.node.defaultChild as kms.CfnKey);
    const secrets = Object.values(template.findResources('AWS::SecretsManager::Secret'));
    expect(secrets.map((s) => s.Properties.KmsKeyId)).toEqual(Array(3).fill({ 'Fn::GetAtt': [keyId, 'Arn'] }));
  });
});

describe('TelegramSecrets', () => {
  test('creates a bot-token placeholder and a generated 64-character webhook secret', () => {
    const stack = newStack();
    const telegram = new TelegramSecrets(stack, 'Telegram');
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::SecretsManager::Secret', 2);
    const secrets = template.findResources('AWS::SecretsManager::Secret');
    expect(secrets[logicalId(telegram.botToken)]).toEqual({
      Type: 'AWS::SecretsManager::Secret',
      Properties: {
        Description: `Telegram bot token for Hermes Agent, from @BotFather. ${FILL_IN}`,
        KmsKeyId: { 'Fn::GetAtt': [SHARED_KEY, 'Arn'] },
        SecretString: SecretPlaceholder.VALUE,
      },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
    expect(secrets[logicalId(telegram.webhookSecret)]).toEqual({
      Type: 'AWS::SecretsManager::Secret',
      Properties: {
        Description: expect.any(String),
        KmsKeyId: { 'Fn::GetAtt': [SHARED_KEY, 'Arn'] },
        GenerateSecretString: {
          PasswordLength: 64,
          ExcludePunctuation: true,
          IncludeSpace: false,
          RequireEachIncludedType: true,
        },
      },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
  });

  test('the webhook secret has no fixed value and explains what it is', () => {
    const stack = newStack();
    const telegram = new TelegramSecrets(stack, 'Telegram');
    const props = Template.fromStack(stack).findResources('AWS::SecretsManager::Secret')[logicalId(telegram.webhookSecret)].Properties;
    expect(props.SecretString).toBeUndefined();
    expect(props.Description).toBe(
      'Generated Telegram webhook secret token for Hermes Agent (sent by Telegram in X-Telegram-Bot-Api-Secret-Token). Do not edit.');
  });

  test.each([16, 100, 256])('webhookSecretLength %d sets the generated length', (length) => {
    const stack = newStack();
    new TelegramSecrets(stack, 'Telegram', { webhookSecretLength: length });
    Template.fromStack(stack).hasResourceProperties('AWS::SecretsManager::Secret', {
      GenerateSecretString: Match.objectLike({ PasswordLength: length, ExcludePunctuation: true, IncludeSpace: false }),
    });
  });

  test.each([15, 257, 20.5, 0])('webhookSecretLength %d is rejected before anything is created', (length) => {
    const stack = newStack();
    expect(() => new TelegramSecrets(stack, 'Telegram', { webhookSecretLength: length }))
      .toThrow(`TelegramSecretsProps.webhookSecretLength must be an integer between 16 and 256 (got ${length})`);
    Template.fromStack(stack).resourceCountIs('AWS::SecretsManager::Secret', 0);
  });

  test('an imported bot token is used; only the webhook secret is created', () => {
    const stack = newStack();
    const botToken = secretsmanager.Secret.fromSecretNameV2(stack, 'Bot', 'telegram/bot');
    const telegram = new TelegramSecrets(stack, 'Telegram', { botToken });
    expect(telegram.botToken).toBe(botToken);
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::SecretsManager::Secret', 1);
    template.hasResourceProperties('AWS::SecretsManager::Secret', { GenerateSecretString: Match.objectLike({ PasswordLength: 64 }) });
  });

  test('grantRead allows reading the bot token and the webhook secret', () => {
    const stack = newStack();
    const botToken = secretsmanager.Secret.fromSecretNameV2(stack, 'Bot', 'telegram/bot');
    const telegram = new TelegramSecrets(stack, 'Telegram', { botToken });
    telegram.grantRead(newRole(stack));
    const statements = policyStatements(Template.fromStack(stack));
    const resources = statements
      .filter((s) => JSON.stringify(s.Action) === JSON.stringify(SECRET_READ))
      .flatMap((s) => (Array.isArray(s.Resource) ? s.Resource : [s.Resource]));
    expect(resources).toHaveLength(2);
    expect(resources).toEqual(expect.arrayContaining([
      { Ref: logicalId(telegram.webhookSecret) },
      { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':secretsmanager:us-east-1:111111111111:secret:telegram/bot-??????']] },
    ]));
    expectDecryptViaSecretsManagerOnRoleOnly(stack);
  });

  test('removalPolicy applies to both created secrets', () => {
    const stack = newStack();
    new TelegramSecrets(stack, 'Telegram', { removalPolicy: RemovalPolicy.DESTROY });
    const secrets = Object.values(Template.fromStack(stack).findResources('AWS::SecretsManager::Secret'));
    expect(secrets.map((s) => s.DeletionPolicy)).toEqual(['Delete', 'Delete']);
  });

  test('encryptionKey applies to both created secrets and no shared key is created', () => {
    const stack = newStack();
    const key = new kms.Key(stack, 'MyKey', { enableKeyRotation: true });
    new TelegramSecrets(stack, 'Telegram', { encryptionKey: key });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::KMS::Key', 1);
    const keyId = stack.getLogicalId(key.node.defaultChild as kms.CfnKey);
    const secrets = Object.values(template.findResources('AWS::SecretsManager::Secret'));
    expect(secrets.map((s) => s.Properties.KmsKeyId)).toEqual(Array(2).fill({ 'Fn::GetAtt': [keyId, 'Arn'] }));
  });
});
