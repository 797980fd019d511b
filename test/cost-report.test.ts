/**
 * The cost report (scripts/cost) against templates whose fixed monthly cost is
 * computed by hand here from the price table (us-east-1, 730 h/month):
 *   NAT gateway      730 × $0.045 = $32.85       public IPv4   730 × $0.005 = $3.65
 *   interface endpoint per AZ  730 × $0.01 = $7.30
 *   t4g.nano         730 × $0.0042 = $3.066      gp3 8 GiB     8 × $0.08 = $0.64
 *   Fargate ARM64    $0.03238/vCPU-h, $0.00356/GB-h;  X86_64 $0.04048/vCPU-h, $0.004445/GB-h; Spot × 0.3
 *   secret $0.40, KMS key $1.00, standard alarm metric $0.10, high-resolution $0.30, dashboard $3.00
 */
import { App } from 'aws-cdk-lib';
import {
  CfnResource, CfnTemplate, CostLine, estimateAssemblyCost, estimateStackCost, renderCostMarkdown, renderCostTable, StackCost,
} from '../scripts/cost';
import { fargateGatewayDefault, fargateGatewayFull, lambdaAgentDefault } from './fixtures/stacks';

const tpl = (resources: Record<string, CfnResource>, parameters?: CfnTemplate['Parameters']): CfnTemplate =>
  ({ Resources: resources, Parameters: parameters });

/** The line(s) of one resource. */
const linesOf = (cost: StackCost, id: string): CostLine[] => cost.lines.filter((l) => l.logicalId === id);
const only = (cost: StackCost, id: string): CostLine => {
  const lines = linesOf(cost, id);
  expect(lines).toHaveLength(1);
  return lines[0];
};
/** Fixed cost summed per resource type (short type), plus the total: a readable diff when a stack changes. */
function byType(cost: StackCost): Record<string, number> {
  const out: Record<string, number> = {};
  for (const l of cost.lines.filter((x) => x.kind === 'fixed')) {
    const key = l.type.replace(/^AWS::/, '');
    out[key] = Math.round(((out[key] ?? 0) + l.monthlyUsd) * 100) / 100;
  }
  return { ...out, total: cost.totalUsd };
}

describe('a minimal hand-written template', () => {
  const cost = estimateStackCost('Minimal', tpl({
    Eip: { Type: 'AWS::EC2::EIP', Properties: { Domain: 'vpc' } },
    Nat: { Type: 'AWS::EC2::NatGateway', Properties: { AllocationId: { 'Fn::GetAtt': ['Eip', 'AllocationId'] }, SubnetId: 'subnet-1' } },
    Secret: { Type: 'AWS::SecretsManager::Secret', Properties: {} },
    Key: { Type: 'AWS::KMS::Key', Properties: { EnableKeyRotation: true } },
    AlarmA: { Type: 'AWS::CloudWatch::Alarm', Properties: { MetricName: 'Errors', Namespace: 'AWS/Lambda', Period: 300 } },
    AlarmB: { Type: 'AWS::CloudWatch::Alarm', Properties: { MetricName: 'Errors', Namespace: 'AWS/Lambda', Period: 60 } },
    Role: { Type: 'AWS::IAM::Role', Properties: {} },
  }), { region: 'us-east-1' });

  test('totals $38.10: NAT $32.85 + its EIP $3.65 + secret $0.40 + key $1.00 + 2 alarms $0.20', () => {
    expect(cost.totalUsd).toBeCloseTo(38.10, 6);
    expect(byType(cost)).toEqual({
      'EC2::NatGateway': 32.85, 'EC2::EIP': 3.65, 'SecretsManager::Secret': 0.4, 'KMS::Key': 1, 'CloudWatch::Alarm': 0.2, 'total': 38.1,
    });
    expect(cost.notes).toEqual([]);
  });

  test('each line says what it charges', () => {
    expect(only(cost, 'Nat').description).toMatch(/NAT gateway: 730 h × \$0\.045/);
    expect(only(cost, 'Eip').description).toMatch(/Elastic IP of NAT gateway Nat/);
    expect(only(cost, 'Key').description).toMatch(/rotation/);
    expect(only(cost, 'AlarmA')).toMatchObject({ kind: 'fixed', monthlyUsd: 0.1, type: 'AWS::CloudWatch::Alarm' });
    expect(only(cost, 'Role')).toMatchObject({ kind: 'free', monthlyUsd: 0 });
  });

  test('a stack outside us-east-1 says the prices are not its region\'s', () => {
    const elsewhere = estimateStackCost('Elsewhere', tpl({ Secret: { Type: 'AWS::SecretsManager::Secret' } }), { region: 'eu-west-1' });
    expect(elsewhere.notes.join()).toMatch(/eu-west-1.*us-east-1/);
  });
});

describe('Fargate services', () => {
  const taskDef = (cpu: unknown, memory: unknown, arch?: string, extra: Record<string, unknown> = {}): CfnResource => ({
    Type: 'AWS::ECS::TaskDefinition',
    Properties: { Cpu: cpu, Memory: memory, RequiresCompatibilities: ['FARGATE'], ...(arch ? { RuntimePlatform: { CpuArchitecture: arch, OperatingSystemFamily: 'LINUX' } } : {}), ...extra },
  });
  const service = (props: Record<string, unknown>): CfnResource => ({ Type: 'AWS::ECS::Service', Properties: { TaskDefinition: { Ref: 'Task' }, Cluster: { Ref: 'Cluster' }, ...props } });
  const cluster: CfnResource = { Type: 'AWS::ECS::Cluster', Properties: {} };

  test('on-demand X86_64 (the default architecture), 2 tasks with public IPs', () => {
    // 2 × 730 × (1 × 0.04048 + 2 × 0.004445) = 72.0802 → $72.08; public IPs 2 × $3.65 = $7.30
    const cost = estimateStackCost('S', tpl({
      Cluster: cluster,
      Task: taskDef('1024', '2048'),
      Service: service({ LaunchType: 'FARGATE', DesiredCount: 2, NetworkConfiguration: { AwsvpcConfiguration: { AssignPublicIp: 'ENABLED', Subnets: ['a'] } } }),
    }));
    const [compute, ip] = linesOf(cost, 'Service');
    expect(compute).toMatchObject({ kind: 'fixed', monthlyUsd: 72.08 });
    expect(compute.description).toMatch(/^Fargate X86_64 1 vCPU \/ 2 GB, 2 tasks/);
    expect(ip).toMatchObject({ kind: 'fixed', monthlyUsd: 7.3 });
    expect(ip.description).toMatch(/Fargate task public IP/);
    expect(cost.totalUsd).toBeCloseTo(79.38, 6);
  });

  test('a strategy with a base and weights splits the tasks; Spot at 30% of on-demand', () => {
    // ARM64 0.25 vCPU / 0.5 GB: 730 × (0.25 × 0.03238 + 0.5 × 0.00356) = 7.20875 per task-month.
    // 5 tasks, FARGATE base 1 weight 1, FARGATE_SPOT weight 3: on-demand 1 + 4/4 = 2 → 14.4175 → $14.42;
    // Spot 3 × 7.20875 × 0.3 = 6.487875 → $6.49. Total $20.91.
    const cost = estimateStackCost('S', tpl({
      Cluster: cluster,
      Task: taskDef('256', '512', 'ARM64'),
      Service: service({
        DesiredCount: { Ref: 'Count' },
        CapacityProviderStrategy: [{ CapacityProvider: 'FARGATE', Base: 1, Weight: 1 }, { CapacityProvider: 'FARGATE_SPOT', Weight: 3 }],
      }),
    }, { Count: { Type: 'Number', Default: 5 } }));
    const [onDemand, spot] = linesOf(cost, 'Service');
    expect(onDemand).toMatchObject({ monthlyUsd: 14.42 });
    expect(onDemand.description).toMatch(/^Fargate ARM64 0\.25 vCPU \/ 0\.5 GB, 2 tasks \(DesiredCount: default of parameter Count\)/);
    expect(spot).toMatchObject({ monthlyUsd: 6.49 });
    expect(spot.description).toMatch(/^Fargate Spot ARM64 .* 3 tasks/);
    expect(cost.totalUsd).toBeCloseTo(20.91, 6);
  });

  test('no strategy on the service: the cluster\'s default strategy; DesiredCount absent means 1', () => {
    // X86_64 0.5 vCPU / 1 GB Spot: 730 × (0.5 × 0.04048 + 1 × 0.004445) × 0.3 = 5.406135 → $5.41
    const cost = estimateStackCost('S', tpl({
      Cluster: cluster,
      Assoc: {
        Type: 'AWS::ECS::ClusterCapacityProviderAssociations',
        Properties: { Cluster: { Ref: 'Cluster' }, CapacityProviders: ['FARGATE_SPOT'], DefaultCapacityProviderStrategy: [{ CapacityProvider: 'FARGATE_SPOT', Weight: 1 }] },
      },
      Task: taskDef('0.5 vCPU', '1 GB', 'X86_64', { EphemeralStorage: { SizeInGiB: 30 } }),
      Service: service({}),
    }));
    // ephemeral storage beyond 20 GB: 1 × 10 × 730 × 0.000111 = 0.8103 → $0.81
    expect(linesOf(cost, 'Service').map((l) => l.monthlyUsd)).toEqual([5.41, 0.81]);
    expect(linesOf(cost, 'Service')[0].description).toMatch(/DesiredCount not set: 1/);
    expect(only(cost, 'Assoc').kind).toBe('free');
  });

  test('a lone provider without weight takes every task; DesiredCount 0 costs nothing', () => {
    // ARM64 1 vCPU / 2 GB Spot, 3 tasks: 3 × 730 × (0.03238 + 2 × 0.00356) × 0.3 = 25.9515 → $25.95
    const cost = estimateStackCost('S', tpl({
      Cluster: cluster,
      Task: taskDef('1024', '2048', 'ARM64'),
      Spot: service({ DesiredCount: 3, CapacityProviderStrategy: [{ CapacityProvider: 'FARGATE_SPOT' }] }),
      Stopped: service({ DesiredCount: 0, LaunchType: 'FARGATE' }),
    }));
    expect(only(cost, 'Spot').monthlyUsd).toBeCloseTo(25.95, 6);
    expect(only(cost, 'Stopped')).toMatchObject({ kind: 'fixed', monthlyUsd: 0, description: expect.stringMatching(/no task runs/) });
  });

  test('what cannot be resolved is not priced, with the reason', () => {
    const cost = estimateStackCost('S', tpl({
      Cluster: cluster,
      Task: taskDef({ 'Fn::ImportValue': 'cpu' }, '1024'),
      Provider: { Type: 'AWS::ECS::CapacityProvider', Properties: {} },
      Imported: service({ LaunchType: 'FARGATE' }),
      Ec2Backed: { Type: 'AWS::ECS::Service', Properties: { TaskDefinition: { Ref: 'Task2' }, CapacityProviderStrategy: [{ CapacityProvider: { Ref: 'Provider' }, Weight: 1 }] } },
      Task2: taskDef('512', '1024'),
      Elsewhere: { Type: 'AWS::ECS::Service', Properties: { TaskDefinition: 'arn:aws:ecs:us-east-1:111111111111:task-definition/x:1', LaunchType: 'FARGATE' } },
      NoCapacity: { Type: 'AWS::ECS::Service', Properties: { TaskDefinition: { Ref: 'Task2' }, Cluster: { Ref: 'Cluster' } } },
    }));
    expect(only(cost, 'Imported')).toMatchObject({ kind: 'unpriced', monthlyUsd: 0 });
    expect(only(cost, 'Imported').description).toMatch(/Cpu\/Memory of Task cannot be resolved/);
    expect(only(cost, 'Ec2Backed').description).toMatch(/capacity provider Provider \(EC2 capacity/);
    expect(only(cost, 'Elsewhere').description).toMatch(/task definition is not in this template/);
    expect(only(cost, 'NoCapacity').description).toMatch(/no launch type or capacity provider strategy/);
    expect(cost.totalUsd).toBe(0);
    expect(cost.notes.join()).toMatch(/4 items not priced/);
  });
});

describe('other priced resources', () => {
  const cost = estimateStackCost('Misc', tpl({
    Endpoint: { Type: 'AWS::EC2::VPCEndpoint', Properties: { VpcEndpointType: 'Interface', ServiceName: 'com.amazonaws.us-east-1.bedrock-runtime', SubnetIds: ['a', 'b', 'c'] } },
    SplitEndpoint: { Type: 'AWS::EC2::VPCEndpoint', Properties: { VpcEndpointType: 'Interface', ServiceName: 'x', SubnetIds: { 'Fn::Split': [',', { 'Fn::ImportValue': 'subnets' }] } } },
    S3Endpoint: { Type: 'AWS::EC2::VPCEndpoint', Properties: { ServiceName: { 'Fn::Join': ['', ['com.amazonaws.', { Ref: 'AWS::Region' }, '.s3']] } } },
    Replicated: { Type: 'AWS::SecretsManager::Secret', Properties: { ReplicaRegions: [{ Region: 'eu-west-1' }, { Region: 'us-west-2' }] } },
    MathAlarm: {
      Type: 'AWS::CloudWatch::Alarm',
      Properties: {
        Metrics: [
          { Id: 'a', MetricStat: { Metric: { MetricName: 'A' }, Period: 60, Stat: 'Sum' } },
          { Id: 'b', MetricStat: { Metric: { MetricName: 'B' }, Period: 60, Stat: 'Sum' } },
          { Id: 'e', Expression: 'a / b' },
        ],
      },
    },
    FastAlarm: { Type: 'AWS::CloudWatch::Alarm', Properties: { MetricName: 'A', Period: 10 } },
    AnomalyAlarm: {
      Type: 'AWS::CloudWatch::Alarm',
      Properties: { Metrics: [{ Id: 'm', MetricStat: { Metric: { MetricName: 'A' }, Period: 300, Stat: 'Average' } }, { Id: 'ad', Expression: 'ANOMALY_DETECTION_BAND(m, 2)' }] },
    },
    Dashboard: { Type: 'AWS::CloudWatch::Dashboard', Properties: { DashboardBody: '{}' } },
    Table: { Type: 'AWS::DynamoDB::Table', Properties: { ProvisionedThroughput: { ReadCapacityUnits: 5, WriteCapacityUnits: 5 } } },
    Fn: { Type: 'AWS::Lambda::Function', Properties: { MemorySize: 1024, Architectures: ['arm64'] } },
    Version: { Type: 'AWS::Lambda::Version', Properties: { FunctionName: { Ref: 'Fn' }, ProvisionedConcurrencyConfig: { ProvisionedConcurrentExecutions: 2 } } },
    Instance: { Type: 'AWS::EC2::Instance', Properties: { InstanceType: 't3.micro', SubnetId: { Ref: 'PublicSubnet' }, BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { VolumeType: 'gp3', VolumeSize: 20 } }] } },
    PublicSubnet: { Type: 'AWS::EC2::Subnet', Properties: { MapPublicIpOnLaunch: true } },
    Big: { Type: 'AWS::EC2::Instance', Properties: { InstanceType: 'm7i.48xlarge' } },
    Data: { Type: 'AWS::EC2::Volume', Properties: { Size: 100, VolumeType: 'gp3' } },
    OldData: { Type: 'AWS::EC2::Volume', Properties: { Size: 10 } },
    QueryAlarm: { Type: 'AWS::CloudWatch::Alarm', Properties: { Metrics: [{ Id: 'q', Expression: 'SELECT AVG(CPUUtilization) FROM "AWS/EC2"', Period: 300 }] } },
  }));

  test.each([
    // 3 AZ × 730 × 0.01
    ['Endpoint', 21.9, /interface endpoint \(bedrock-runtime\): 3 AZ/],
    ['S3Endpoint', 0, /gateway endpoint \(s3\): no charge/],
    ['SplitEndpoint', 0, /not priced: .*subnets .* cannot be resolved/],
    // the secret and 2 replicas: 3 × 0.40
    ['Replicated', 1.2, /2 replicas/],
    // metric math: 2 metrics × 0.10; 10 s period: high resolution 0.30; anomaly band: 3 metrics × 0.10
    ['MathAlarm', 0.2, /standard alarm: 2 metrics/],
    ['FastAlarm', 0.3, /high-resolution alarm: 1 metric/],
    ['AnomalyAlarm', 0.3, /anomaly detection alarm: 3 metrics/],
    ['Dashboard', 3, /first 3 dashboards are free/],
    // (5 × 0.00013 + 5 × 0.00065) × 730 = 2.847
    ['Table', 2.85, /DynamoDB provisioned: 5 RCU/],
    // 2 × 1 GB × 2,628,000 s × 0.0000033334 = 17.5203504
    ['Version', 17.52, /provisioned concurrency \(Fn\)/],
    // 100 × 0.08; gp2 (CloudFormation's default) 10 × 0.10
    ['Data', 8, /EBS gp3 100 GiB/],
    ['OldData', 1, /EBS gp2 10 GiB/],
    ['QueryAlarm', 0, /not priced: alarm on a metric query/],
  ])('%s: $%d', (id, usd, description) => {
    const l = only(cost, id as string);
    expect(l.monthlyUsd).toBeCloseTo(usd as number, 6);
    expect(l.description).toMatch(description as RegExp);
  });

  test('an instance: hours, its volume and the public IP its subnet maps', () => {
    // t3.micro 730 × 0.0104 = 7.592; gp3 20 × 0.08 = 1.60; public IP 3.65
    expect(linesOf(cost, 'Instance').map((l) => [l.monthlyUsd, l.kind])).toEqual([[7.59, 'fixed'], [1.6, 'fixed'], [3.65, 'fixed']]);
    // an instance type missing from the table, and a root volume left to the AMI
    expect(linesOf(cost, 'Big').map((l) => l.kind)).toEqual(['unpriced', 'unpriced']);
    expect(linesOf(cost, 'Big')[0].description).toMatch(/m7i\.48xlarge is not in the price table/);
  });

  test('the total is the sum of the fixed lines', () => {
    const sum = cost.lines.reduce((s, l) => s + l.monthlyUsd, 0);
    // 21.90 + 1.20 + 0.20 + 0.30 + 0.30 + 3.00 + 2.85 + 17.52 + 7.59 + 1.60 + 3.65 + 8.00 + 1.00 = 69.11
    expect(cost.totalUsd).toBeCloseTo(69.11, 6);
    expect(cost.totalUsd).toBeCloseTo(sum, 6);
  });
});

describe('resources that idle at zero, and unknown ones', () => {
  const cost = estimateStackCost('Idle', tpl({
    Table: { Type: 'AWS::DynamoDB::Table', Properties: { BillingMode: 'PAY_PER_REQUEST' } },
    Fn: { Type: 'AWS::Lambda::Function', Properties: {} },
    Queue: { Type: 'AWS::SQS::Queue', Properties: { FifoQueue: true } },
    Bucket: { Type: 'AWS::S3::Bucket', Properties: {} },
    Runtime: { Type: 'AWS::BedrockAgentCore::Runtime', Properties: {} },
    Memory: { Type: 'AWS::BedrockAgentCore::Memory', Properties: {} },
    Browser: { Type: 'AWS::BedrockAgentCore::BrowserCustom', Properties: {} },
    Group: { Type: 'AWS::Scheduler::ScheduleGroup', Properties: {} },
    Schedule: { Type: 'AWS::Scheduler::Schedule', Properties: {} },
    Fs: { Type: 'AWS::EFS::FileSystem', Properties: {} },
    Mystery: { Type: 'AWS::Future::Thing', Properties: {} },
    Handler: { Type: 'Custom::Whatever', Properties: {} },
  }));

  test('cost $0 and say what they bill', () => {
    expect(cost.totalUsd).toBe(0);
    for (const id of ['Table', 'Fn', 'Queue', 'Bucket', 'Runtime', 'Memory', 'Browser', 'Schedule', 'Fs']) {
      expect(only(cost, id)).toMatchObject({ kind: 'usage', monthlyUsd: 0, description: expect.stringMatching(/^usage-based: /) });
    }
    expect(only(cost, 'Runtime').description).toMatch(/AgentCore Runtime/);
    expect(only(cost, 'Memory').description).toMatch(/AgentCore Memory/);
    expect(only(cost, 'Fs').description).toMatch(/EFS: storage/);
    expect(only(cost, 'Group').kind).toBe('free');
    expect(only(cost, 'Handler').kind).toBe('free');
  });

  test('an unknown type is listed as not priced instead of failing', () => {
    expect(only(cost, 'Mystery')).toMatchObject({ kind: 'unpriced', monthlyUsd: 0, type: 'AWS::Future::Thing' });
    expect(only(cost, 'Mystery').description).toMatch(/not in the price table/);
    expect(cost.notes.join()).toMatch(/1 item not priced/);
  });
});

describe('the fixture stacks (one synthesized app)', () => {
  const app = new App();
  fargateGatewayDefault(app);
  fargateGatewayFull(app);
  lambdaAgentDefault(app);
  let stacks: Map<string, StackCost>;
  beforeAll(() => {
    stacks = new Map(estimateAssemblyCost(app.synth()).map((s) => [s.stackName, s]));
  });
  const lineOfType = (cost: StackCost, type: string) => cost.lines.filter((l) => l.type === type && l.kind === 'fixed');

  test('FargateGatewayDefault: NAT gateway, ARM64 task, 4 secrets — $53.72', () => {
    const cost = stacks.get('FargateGatewayDefault')!;
    expect(cost.region).toBe('us-east-1');
    // NAT gateway 32.85; its EIP 3.65; Fargate ARM64 0.5 vCPU / 1 GB, 1 task: 730 × (0.5 × 0.03238 + 1 × 0.00356)
    // = 14.4175 → 14.42; KMS key 1.00; 4 secrets (Slack bot, app, signing; API server key) 1.60; 2 alarms 0.20.
    expect(byType(cost)).toEqual({
      'EC2::NatGateway': 32.85, 'EC2::EIP': 3.65, 'ECS::Service': 14.42, 'KMS::Key': 1, 'SecretsManager::Secret': 1.6, 'CloudWatch::Alarm': 0.2, 'total': 53.72,
    });
    expect(lineOfType(cost, 'AWS::ECS::Service')[0].description).toMatch(/^Fargate ARM64 0\.5 vCPU \/ 1 GB, 1 task/);
    expect(lineOfType(cost, 'AWS::EC2::EIP')[0].description).toMatch(/Elastic IP of NAT gateway/);
    // Container Insights is on: listed, not guessed
    expect(cost.lines.filter((l) => l.kind === 'unpriced').map((l) => l.type)).toEqual(['AWS::ECS::Cluster']);
    expect(cost.lines.find((l) => l.type === 'AWS::EFS::FileSystem')).toMatchObject({ kind: 'usage', monthlyUsd: 0 });
  });

  test('FargateGatewayFull: NAT instance, 5 interface endpoints, X86 Spot + ARM64 on-demand — $112.17', () => {
    const cost = stacks.get('FargateGatewayFull')!;
    // 5 interface endpoints × 2 AZ × 7.30 = 73.00
    // Engineering: Spot X86_64 1 vCPU / 3 GB: 730 × (0.04048 + 3 × 0.004445) × 0.3 = 11.785485 → 11.79
    // ProjectManagement: on-demand ARM64 0.5 vCPU / 1 GB = 14.42 → services 26.21
    // NAT instance: t4g.nano 3.066 → 3.07, gp3 8 GiB 0.64, public IP 3.65 → 7.36
    // 2 KMS keys (team key, the second gateway's shared key) 2.00; 8 secrets 3.20; 4 alarms 0.40
    expect(byType(cost)).toEqual({
      'EC2::VPCEndpoint': 73, 'ECS::Service': 26.21, 'EC2::Instance': 7.36, 'KMS::Key': 2, 'SecretsManager::Secret': 3.2, 'CloudWatch::Alarm': 0.4, 'total': 112.17,
    });
    const services = lineOfType(cost, 'AWS::ECS::Service').map((l) => l.description);
    expect(services).toEqual(expect.arrayContaining([
      expect.stringMatching(/^Fargate Spot X86_64 1 vCPU \/ 3 GB, 1 task/),
      expect.stringMatching(/^Fargate ARM64 0\.5 vCPU \/ 1 GB, 1 task/),
    ]));
    const instance = lineOfType(cost, 'AWS::EC2::Instance').map((l) => l.description);
    expect(instance).toEqual([
      expect.stringMatching(/^EC2 t4g\.nano NAT instance/),
      expect.stringMatching(/EBS gp3 8 GiB \(size left to the AMI/),
      expect.stringMatching(/public IPv4 \(NAT instance public IP\)/),
    ]);
    expect(cost.lines.filter((l) => l.type === 'AWS::EC2::NatGateway')).toEqual([]);
  });

  test('LambdaAgentDefault: idles at $5.20 (dashboard, key, 2 secrets, 4 alarms)', () => {
    const cost = stacks.get('LambdaAgentDefault')!;
    // dashboard 3.00 + KMS key 1.00 + Telegram bot token and webhook secret 0.80 + 4 alarms 0.40
    expect(byType(cost)).toEqual({
      'CloudWatch::Dashboard': 3, 'KMS::Key': 1, 'SecretsManager::Secret': 0.8, 'CloudWatch::Alarm': 0.4, 'total': 5.2,
    });
    const usage = new Set(cost.lines.filter((l) => l.kind === 'usage').map((l) => l.type));
    for (const type of ['AWS::DynamoDB::Table', 'AWS::Lambda::Function', 'AWS::SQS::Queue', 'AWS::S3::Bucket']) expect(usage).toContain(type);
    expect(cost.lines.filter((l) => l.kind === 'unpriced')).toEqual([]);
  });

  test('the text table and the Markdown list every stack with its total', () => {
    const all = [...stacks.values()];
    const text = renderCostTable(all);
    expect(text).toMatch(/FargateGatewayDefault \(us-east-1\): \$53\.72\/month fixed/);
    expect(text).toMatch(/\$32\.85 {2}GatewayVpcpublicSubnet1NATGateway\w+ \(EC2::NatGateway\)/);
    expect(text).toMatch(/not priced {2}GatewayCluster\w+ \(ECS::Cluster\)/);
    expect(text).toMatch(/all stacks +\$171\.09 +2/); // 53.72 + 112.17 + 5.20
    expect(text).toMatch(/resources with no charge of their own \(.*IAM/);
    expect(text).toMatch(/Assumptions:\n {2}- us-east-1 on-demand list prices as of \d{4}-\d{2}/);
    expect(text).not.toMatch(/AWS::IAM::Role/);

    const md = renderCostMarkdown(all);
    expect(md).toMatch(/\| FargateGatewayFull \| \$112\.17 \| 1 \|/);
    expect(md).toMatch(/\| \*\*all stacks\*\* \| \*\*\$171\.09\*\* \| 2 \|/);
  });
});
