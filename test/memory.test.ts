import { App, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { expectPropError } from './construct-assertions';
import { expectNagClean } from './nag';
import { lid, resourcesOf } from './util';
import { AgentMemory } from '../src';

const ENV = { account: '111111111111', region: 'us-east-1' };
const SHARED_KEY_ARN = { 'Fn::GetAtt': ['HermesAgentKey2DBA7C9F', 'Arn'] };
const NAMESPACES = ['/users/{actorId}/facts', '/users/{actorId}/preferences', '/summaries/{actorId}/{sessionId}'];

/** The CfnMemory of an AgentMemory (the L2 names it `Memory`, not `Resource`). */
function cfnMemory(memory: AgentMemory): any {
  const r = Template.fromStack(Stack.of(memory)).toJSON().Resources[lid(memory.memory.node.findChild('Memory'))];
  expect(r).toBeDefined();
  return r;
}

describe('AgentMemory defaults', () => {
  const stack = new Stack(new App(), 'my-team', { env: ENV });
  const memory = new AgentMemory(stack, 'Memory');
  const role = new iam.Role(stack, 'Agent', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
  memory.grantUse(role);

  test('an AgentCore memory with semantic, user-preference and summary strategies on {actorId}/{sessionId} namespaces', () => {
    const r = cfnMemory(memory);
    expect(r.Properties).toEqual({
      Name: 'myteamMemory' + r.Properties.Name.slice('myteamMemory'.length),
      Description: 'Hermes Agent long-term memory',
      EventExpiryDuration: 90,
      EncryptionKeyArn: SHARED_KEY_ARN,
      MemoryExecutionRoleArn: { 'Fn::GetAtt': [lid(memory.memory.executionRole!), 'Arn'] },
      MemoryStrategies: [
        { SemanticMemoryStrategy: { Name: 'facts', Namespaces: [NAMESPACES[0]], Type: 'SEMANTIC' } },
        { UserPreferenceMemoryStrategy: { Name: 'preferences', Namespaces: [NAMESPACES[1]], Type: 'USER_PREFERENCE' } },
        { SummaryMemoryStrategy: { Name: 'summaries', Namespaces: [NAMESPACES[2]], Type: 'SUMMARIZATION' } },
      ],
    });
    // a valid AgentCore memory name even from a stack name with hyphens
    expect(r.Properties.Name).toMatch(/^[a-zA-Z][a-zA-Z0-9_]{0,47}$/);
  });

  test('namespaces lists the strategies\' templates, in order', () => {
    expect(memory.namespaces).toEqual(NAMESPACES);
    expect([AgentMemory.FACTS_NAMESPACE, AgentMemory.PREFERENCES_NAMESPACE, AgentMemory.SUMMARIES_NAMESPACE]).toEqual(NAMESPACES);
  });

  test('encrypted with the stack\'s shared key; the memory is created after its role may use the key', () => {
    expect(memory.encryptionKey).toBe(stack.node.findChild('HermesAgentKey'));
    const r = cfnMemory(memory);
    const policy = resourcesOf(Template.fromStack(stack), 'AWS::IAM::Policy')
      .find((p) => JSON.stringify(p.props.Roles) === JSON.stringify([{ Ref: lid(memory.memory.executionRole!) }]));
    expect(policy).toBeDefined();
    expect(policy!.props.PolicyDocument.Statement).toEqual([expect.objectContaining({ Resource: SHARED_KEY_ARN })]);
    expect(r.DependsOn).toContain(policy!.id);
  });

  test('grantUse: CreateEvent and RetrieveMemoryRecords on this memory, its key through AgentCore only', () => {
    const policies = resourcesOf(Template.fromStack(stack), 'AWS::IAM::Policy')
      .filter((p) => JSON.stringify(p.props.Roles) === JSON.stringify([{ Ref: lid(role) }]));
    expect(policies).toHaveLength(1);
    expect(policies[0].props.PolicyDocument.Statement).toEqual([
      {
        Effect: 'Allow',
        Action: ['bedrock-agentcore:CreateEvent', 'bedrock-agentcore:RetrieveMemoryRecords'],
        Resource: { 'Fn::GetAtt': [lid(memory.memory.node.findChild('Memory')), 'MemoryArn'] },
      },
      {
        Effect: 'Allow',
        Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
        Resource: SHARED_KEY_ARN,
        Condition: { StringEquals: { 'kms:ViaService': 'bedrock-agentcore.us-east-1.amazonaws.com' } },
      },
    ]);
  });

  test('the runtime environment: memory id and the namespaces as a JSON list', () => {
    const env = stack.resolve(memory._environment());
    expect(env).toEqual({
      HERMES_AWS_MEMORY_ID: { 'Fn::GetAtt': [lid(memory.memory.node.findChild('Memory')), 'MemoryId'] },
      HERMES_AWS_MEMORY_NAMESPACES: JSON.stringify(NAMESPACES),
    });
  });

  test('passes the four cdk-nag packs (the memory and the shared key; the test\'s own role is not checked)', () => {
    expectNagClean(memory);
    expectNagClean(memory.encryptionKey);
  });
});

describe('AgentMemory props', () => {
  test('expiration, encryptionKey, memoryName and description', () => {
    const stack = new Stack(new App(), 'Props', { env: ENV });
    const key = new kms.Key(stack, 'TeamKey', { enableKeyRotation: true });
    const memory = new AgentMemory(stack, 'Memory', {
      expiration: Duration.days(30),
      encryptionKey: key,
      memoryName: 'team_memory',
      description: 'Team assistant memory',
    });
    expect(cfnMemory(memory).Properties).toMatchObject({
      Name: 'team_memory',
      Description: 'Team assistant memory',
      EventExpiryDuration: 30,
      EncryptionKeyArn: { 'Fn::GetAtt': [lid(key), 'Arn'] },
    });
    expect(memory.encryptionKey).toBe(key);
    expect(stack.node.tryFindChild('HermesAgentKey')).toBeUndefined();
    expectNagClean(stack);
  });

  const newStack = () => new Stack(new App(), 'Invalid', { env: ENV });

  test.each([
    [Duration.days(6), '6'],
    [Duration.days(366), '366'],
    [Duration.hours(180), '7.5'],
  ])('expiration %s is refused', (expiration, got) => {
    expectPropError(() => new AgentMemory(newStack(), 'M', { expiration }),
      `AgentMemoryProps.expiration must be a whole number of days between 7 and 365 (got ${got})`);
  });

  test('the bounds of expiration are accepted', () => {
    expect(() => new AgentMemory(newStack(), 'M', { expiration: Duration.days(7) })).not.toThrow();
    expect(() => new AgentMemory(newStack(), 'M', { expiration: Duration.days(365) })).not.toThrow();
  });

  test.each(['1memory', 'team-memory', 'a'.repeat(49)])('memoryName %j is refused', (memoryName) => {
    expectPropError(() => new AgentMemory(newStack(), 'M', { memoryName }),
      `AgentMemoryProps.memoryName must be a letter followed by letters, digits and "_", at most 48 characters (got ${JSON.stringify(memoryName)})`);
  });

  test.each(['Team memory!', 'x'.repeat(201), ''])('description %j is refused', (description) => {
    expectPropError(() => new AgentMemory(newStack(), 'M', { description }),
      `AgentMemoryProps.description must be letters, digits, spaces, "_" and "-", at most 200 characters (got ${JSON.stringify(description)})`);
  });
});
