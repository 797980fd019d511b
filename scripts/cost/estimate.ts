/**
 * Fixed monthly cost of synthesized CloudFormation templates, resource by
 * resource, from the price table in ./prices.ts.
 *
 * "Fixed" means what a stack costs while nobody uses it: hourly resources
 * (NAT, instances, Fargate tasks, endpoints, public IPv4) and per-item monthly
 * fees (secrets, keys, alarms, dashboards). Usage (requests, storage, data,
 * logs, model tokens) is listed at $0 with a note saying what it bills.
 *
 * Intrinsic functions are resolved only as far as the figures need (Ref to a
 * resource of the same template, Ref to a parameter's default); anything else
 * makes the line "not priced" with the reason, never a guess.
 */
import type * as cxapi from 'aws-cdk-lib/cx-api';
import { HOURS_PER_MONTH, PRICES, PRICE_REGION, PRICES_AS_OF } from './prices';

/**
 * fixed: a standing charge, in the total. usage: bills only when used ($0 at idle).
 * free: no charge of its own. unpriced: may have a standing charge the report cannot compute.
 */
export type CostKind = 'fixed' | 'usage' | 'free' | 'unpriced';

/** One priced item; a resource may produce several (an instance, its volume, its public IP). */
export interface CostLine {
  readonly logicalId: string;
  readonly type: string;
  /** What is charged and how the figure was computed. */
  readonly description: string;
  /** USD per month, rounded to cents; 0 for every kind but `fixed`. */
  readonly monthlyUsd: number;
  readonly kind: CostKind;
}

/** The fixed monthly cost of one stack. */
export interface StackCost {
  readonly stackName: string;
  /** The stack's region, when known. */
  readonly region?: string;
  readonly lines: CostLine[];
  /** Sum of the `fixed` lines, USD per month. */
  readonly totalUsd: number;
  /** Caveats about the whole stack (region mismatch, unpriced items). */
  readonly notes: string[];
}

/** The parts of a CloudFormation template the report reads. */
export interface CfnTemplate {
  readonly Parameters?: Record<string, { readonly Type?: string; readonly Default?: unknown }>;
  readonly Resources?: Record<string, CfnResource>;
}

/** One resource of a template. */
export interface CfnResource {
  readonly Type: string;
  readonly Properties?: Record<string, any>;
}

/** Options of {@link estimateStackCost}. */
export interface EstimateOptions {
  /** The stack's region; a region other than the table's adds a note. @default unknown */
  readonly region?: string;
}

const round2 = (n: number) => Math.round(n * 100) / 100;
/** A rate as the price table writes it: cents to 2 places, smaller rates in full. */
const rate = (n: number) => (Number(n.toFixed(2)) === n ? `$${n.toFixed(2)}` : `$${n}`);
/** A quantity (vCPU, GB, tasks) without float noise. */
const num = (n: number) => String(Math.round(n * 1000) / 1000);
const HOURS = `${HOURS_PER_MONTH} h`;

/** Resolves references inside one template. */
class TemplateScope {
  constructor(private readonly template: CfnTemplate) {}

  get resources(): Record<string, CfnResource> {
    return this.template.Resources ?? {};
  }

  /** The resource a `Ref` or `Fn::GetAtt` points to, if it is in this template. */
  target(value: unknown): { id: string; resource: CfnResource } | undefined {
    let id: unknown;
    if (isObject(value) && 'Ref' in value) id = value.Ref;
    else if (isObject(value) && 'Fn::GetAtt' in value) id = Array.isArray(value['Fn::GetAtt']) ? value['Fn::GetAtt'][0] : undefined;
    if (typeof id !== 'string') return undefined;
    const resource = this.resources[id];
    return resource ? { id, resource } : undefined;
  }

  /** A literal string or number, or a `Ref` to a parameter with a default. */
  scalar(value: unknown): string | number | undefined {
    if (typeof value === 'string' || typeof value === 'number') return value;
    if (isObject(value) && typeof value.Ref === 'string') {
      const param = this.template.Parameters?.[value.Ref];
      const d = param?.Default;
      if (typeof d === 'string' || typeof d === 'number') return d;
    }
    return undefined;
  }

  /** A literal list, or a `Ref` to a list parameter with a default. */
  list(value: unknown): unknown[] | undefined {
    if (Array.isArray(value)) return value;
    if (isObject(value) && typeof value.Ref === 'string') {
      const param = this.template.Parameters?.[value.Ref];
      if (param?.Type?.startsWith('List<') || param?.Type === 'CommaDelimitedList') {
        if (Array.isArray(param.Default)) return param.Default;
        if (typeof param.Default === 'string') return param.Default.split(',').map((s) => s.trim()).filter(Boolean);
      }
    }
    return undefined;
  }

  /** A number, from a literal, a numeric string or a parameter default. */
  number(value: unknown): number | undefined {
    const v = this.scalar(value);
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    return Number.isFinite(n) ? n : undefined;
  }

  /** Every resource of a type. */
  ofType(type: string): Array<[string, CfnResource]> {
    return Object.entries(this.resources).filter(([, r]) => r.Type === type);
  }
}

function isObject(v: unknown): v is Record<string, any> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isTrue(v: unknown): boolean {
  return v === true || v === 'true';
}

type Pricer = (id: string, r: CfnResource, scope: TemplateScope) => CostLine[];

function line(id: string, r: CfnResource, kind: CostKind, description: string, monthlyUsd = 0): CostLine {
  return { logicalId: id, type: r.Type, description, monthlyUsd: kind === 'fixed' ? round2(monthlyUsd) : 0, kind };
}

const fixed = (id: string, r: CfnResource, description: string, monthlyUsd: number) => line(id, r, 'fixed', description, monthlyUsd);
const unpriced = (id: string, r: CfnResource, why: string) => line(id, r, 'unpriced', `not priced: ${why}`);

function publicIpLine(id: string, r: CfnResource, what: string, count = 1): CostLine {
  const each = PRICES.publicIpv4Hour * HOURS_PER_MONTH;
  const times = count === 1 ? '' : `${num(count)} × `;
  return fixed(id, r, `public IPv4 (${what}): ${times}${HOURS} × ${rate(PRICES.publicIpv4Hour)}`, count * each);
}

// ---------------------------------------------------------------------------
// Network
// ---------------------------------------------------------------------------

const priceNatGateway: Pricer = (id, r) => [
  fixed(id, r, `NAT gateway: ${HOURS} × ${rate(PRICES.natGatewayHour)} (data processed is usage)`, PRICES.natGatewayHour * HOURS_PER_MONTH),
];

const priceEip: Pricer = (id, r, scope) => {
  const nat = scope.ofType('AWS::EC2::NatGateway').find(([, n]) => scope.target(n.Properties?.AllocationId)?.id === id);
  return [publicIpLine(id, r, nat ? `Elastic IP of NAT gateway ${nat[0]}` : 'Elastic IP')];
};

/** `com.amazonaws.us-east-1.ecr.dkr` or its Fn::Join → `ecr.dkr`. */
function endpointService(value: unknown): string {
  let name: string | undefined;
  if (typeof value === 'string') {
    name = value;
  } else if (isObject(value) && Array.isArray(value['Fn::Join'])) {
    const [sep, parts] = value['Fn::Join'];
    if (Array.isArray(parts)) name = parts.map((p: unknown) => (typeof p === 'string' ? p : 'region')).join(sep);
  }
  return name ? name.replace(/^com\.amazonaws\.[^.]+\./, '') : 'unknown service';
}

const priceVpcEndpoint: Pricer = (id, r, scope) => {
  const p = r.Properties ?? {};
  const type = scope.scalar(p.VpcEndpointType) ?? 'Gateway'; // CloudFormation's default
  const service = endpointService(p.ServiceName);
  if (type === 'Gateway') return [line(id, r, 'free', `gateway endpoint (${service}): no charge`)];
  if (type !== 'Interface') return [unpriced(id, r, `${type} endpoint (${service}) is not in the price table`)];
  const subnets = scope.list(p.SubnetIds);
  if (!subnets) return [unpriced(id, r, `interface endpoint (${service}): its subnets (one per AZ) cannot be resolved from the template`)];
  const azs = new Set(subnets.map((s) => JSON.stringify(s))).size;
  return [fixed(id, r, `interface endpoint (${service}): ${azs} AZ × ${HOURS} × ${rate(PRICES.interfaceEndpointAzHour)} (data processed is usage)`,
    azs * PRICES.interfaceEndpointAzHour * HOURS_PER_MONTH)];
};

/** What the report needs of an EBS volume. */
interface EbsSpec { readonly type: unknown; readonly size: unknown; readonly snapshot: unknown }

/** One EBS volume; `amiDefault`: a block device mapping whose size may be left to the AMI. */
function ebsLine(id: string, r: CfnResource, ebs: EbsSpec, scope: TemplateScope, what: string, amiDefault: boolean): CostLine {
  const volumeType = scope.scalar(ebs.type);
  if (typeof volumeType !== 'string') return unpriced(id, r, `${what}: volume type left to the AMI`);
  const perGb = PRICES.ebsGbMonth[volumeType];
  if (perGb === undefined) return unpriced(id, r, `${what}: EBS ${volumeType} is not in the price table`);
  let size = scope.number(ebs.size);
  let sizeNote = `${size} GiB`;
  if (size === undefined) {
    if (!amiDefault || ebs.size !== undefined || ebs.snapshot !== undefined) return unpriced(id, r, `${what}: volume size cannot be resolved`);
    size = PRICES.amiRootVolumeGiB;
    sizeNote = `${size} GiB (size left to the AMI; Amazon Linux 2023's assumed)`;
  }
  return fixed(id, r, `${what}: EBS ${volumeType} ${sizeNote} × ${rate(perGb)}/GB-month`, size * perGb);
}

const priceInstance: Pricer = (id, r, scope) => {
  const p = r.Properties ?? {};
  const lines: CostLine[] = [];
  const instanceType = scope.scalar(p.InstanceType ?? 'm1.small'); // m1.small is CloudFormation's default
  const perHour = typeof instanceType === 'string' ? PRICES.ec2InstanceHour[instanceType] : undefined;
  const role = p.SourceDestCheck === false || p.SourceDestCheck === 'false' ? 'NAT instance' : 'instance';
  if (perHour === undefined) {
    lines.push(unpriced(id, r, `EC2 ${typeof instanceType === 'string' ? instanceType : 'instance type'} is not in the price table`));
  } else {
    lines.push(fixed(id, r, `EC2 ${instanceType} ${role}: ${HOURS} × ${rate(perHour)}`, perHour * HOURS_PER_MONTH));
  }
  const mappings = Array.isArray(p.BlockDeviceMappings) ? p.BlockDeviceMappings : [];
  const ebsMappings = mappings.filter((m: any) => isObject(m?.Ebs));
  if (ebsMappings.length === 0) lines.push(unpriced(id, r, 'root volume defined only by the AMI'));
  for (const m of ebsMappings) {
    const what = `volume ${typeof m.DeviceName === 'string' ? m.DeviceName : ''}`.trim();
    lines.push(ebsLine(id, r, { type: m.Ebs.VolumeType, size: m.Ebs.VolumeSize, snapshot: m.Ebs.SnapshotId }, scope, what, true));
  }

  const interfaces = Array.isArray(p.NetworkInterfaces) ? p.NetworkInterfaces : [];
  const publicIps = interfaces.filter((n: any) => isTrue(n?.AssociatePublicIpAddress)).length;
  if (publicIps > 0) {
    lines.push(publicIpLine(id, r, `${role} public IP`, publicIps));
  } else if (interfaces.length === 0) {
    const subnet = scope.target(p.SubnetId);
    if (subnet && isTrue(subnet.resource.Properties?.MapPublicIpOnLaunch)) lines.push(publicIpLine(id, r, `${role} in a public-IP subnet`));
  }
  return lines;
};

const priceVolume: Pricer = (id, r, scope) => {
  const p = r.Properties ?? {};
  // gp2 is CloudFormation's default volume type
  return [ebsLine(id, r, { type: p.VolumeType ?? 'gp2', size: p.Size, snapshot: p.SnapshotId }, scope, 'EBS volume', false)];
};

// ---------------------------------------------------------------------------
// ECS on Fargate
// ---------------------------------------------------------------------------

/** Task CPU in vCPU from `512` (units) or `0.5 vCPU`. */
function parseCpu(v: string | number | undefined): number | undefined {
  if (v === undefined) return undefined;
  const m = /^\s*([\d.]+)\s*(vcpu)?\s*$/i.exec(String(v));
  if (!m) return undefined;
  return m[2] ? Number(m[1]) : Number(m[1]) / 1024;
}

/** Task memory in GB from `1024` (MiB) or `1 GB`. */
function parseMemory(v: string | number | undefined): number | undefined {
  if (v === undefined) return undefined;
  const m = /^\s*([\d.]+)\s*(gb)?\s*$/i.exec(String(v));
  if (!m) return undefined;
  return m[2] ? Number(m[1]) : Number(m[1]) / 1024;
}

interface StrategyItem { readonly provider: string; readonly base: number; readonly weight: number }

/** The capacity provider strategy of a service: its own, its launch type, or its cluster's default. */
function capacityStrategy(p: Record<string, any>, scope: TemplateScope): StrategyItem[] | string {
  const parse = (items: unknown[], where: string): StrategyItem[] | string => {
    const out: StrategyItem[] = [];
    for (const item of items) {
      if (!isObject(item)) return `${where} cannot be resolved`;
      const cp = item.CapacityProvider;
      const ref = scope.target(cp);
      if (ref) return `${where} uses capacity provider ${ref.id} (EC2 capacity, priced with its instances)`;
      if (typeof cp !== 'string') return `${where} names a capacity provider that cannot be resolved`;
      out.push({ provider: cp, base: scope.number(item.Base ?? 0) ?? NaN, weight: scope.number(item.Weight ?? 0) ?? NaN });
    }
    if (out.some((i) => Number.isNaN(i.base) || Number.isNaN(i.weight))) return `${where}: base or weight cannot be resolved`;
    return out;
  };
  if (Array.isArray(p.CapacityProviderStrategy) && p.CapacityProviderStrategy.length > 0) {
    return parse(p.CapacityProviderStrategy, 'capacity provider strategy');
  }
  if (p.LaunchType !== undefined) {
    const lt = scope.scalar(p.LaunchType);
    return lt === 'FARGATE' ? [{ provider: 'FARGATE', base: 0, weight: 1 }] : `launch type ${String(lt ?? 'unresolved')} runs on EC2 capacity, priced with its instances`;
  }
  const cluster = scope.target(p.Cluster);
  if (!cluster) return 'no launch type or capacity provider strategy, and the cluster is not in this template';
  const assoc = scope.ofType('AWS::ECS::ClusterCapacityProviderAssociations')
    .find(([, a]) => scope.target(a.Properties?.Cluster)?.id === cluster.id);
  const defaults = assoc?.[1].Properties?.DefaultCapacityProviderStrategy;
  if (Array.isArray(defaults) && defaults.length > 0) return parse(defaults, `cluster ${cluster.id}'s default capacity provider strategy`);
  return 'no launch type or capacity provider strategy (neither on the service nor as the cluster default)';
}

/** Expected tasks per capacity provider: bases first, the rest split by weight. */
function splitTasks(strategy: StrategyItem[], tasks: number): Map<string, number> | string {
  const out = new Map<string, number>();
  let rest = tasks;
  for (const item of strategy) {
    const n = Math.min(item.base, rest);
    if (n > 0) out.set(item.provider, (out.get(item.provider) ?? 0) + n);
    rest -= Math.max(n, 0);
  }
  const totalWeight = strategy.reduce((s, i) => s + i.weight, 0);
  if (rest > 0 && totalWeight <= 0) {
    if (strategy.length !== 1) return 'capacity provider weights are all 0';
    out.set(strategy[0].provider, (out.get(strategy[0].provider) ?? 0) + rest); // a lone provider takes every task
    return out;
  }
  for (const item of strategy) {
    if (rest > 0 && item.weight > 0) out.set(item.provider, (out.get(item.provider) ?? 0) + rest * item.weight / totalWeight);
  }
  return out;
}

const priceEcsService: Pricer = (id, r, scope) => {
  const p = r.Properties ?? {};
  if (scope.scalar(p.SchedulingStrategy) === 'DAEMON') return [unpriced(id, r, 'daemon service runs on EC2 capacity, priced with its instances')];
  const td = scope.target(p.TaskDefinition);
  if (!td || td.resource.Type !== 'AWS::ECS::TaskDefinition') return [unpriced(id, r, 'its task definition is not in this template')];
  const tdp = td.resource.Properties ?? {};

  const os = scope.scalar(tdp.RuntimePlatform?.OperatingSystemFamily ?? 'LINUX');
  if (os !== 'LINUX') return [unpriced(id, r, `operating system ${String(os ?? 'unresolved')} (only Linux is in the price table)`)];
  const arch = scope.scalar(tdp.RuntimePlatform?.CpuArchitecture ?? 'X86_64'); // Fargate's default
  const rates = typeof arch === 'string' ? PRICES.fargate[arch] : undefined;
  if (!rates) return [unpriced(id, r, `CPU architecture ${String(arch ?? 'unresolved')} is not in the price table`)];
  const vcpu = parseCpu(scope.scalar(tdp.Cpu));
  const gb = parseMemory(scope.scalar(tdp.Memory));
  if (vcpu === undefined || gb === undefined) return [unpriced(id, r, `task-level Cpu/Memory of ${td.id} cannot be resolved`)];

  let desired: number | undefined = 1; // CloudFormation starts one task when DesiredCount is absent
  let desiredNote = ' (DesiredCount not set: 1)';
  if (p.DesiredCount !== undefined) {
    desired = scope.number(p.DesiredCount);
    desiredNote = isObject(p.DesiredCount) ? ` (DesiredCount: default of parameter ${String(p.DesiredCount.Ref)})` : '';
  }
  if (desired === undefined) return [unpriced(id, r, 'DesiredCount cannot be resolved')];

  const strategy = capacityStrategy(p, scope);
  if (typeof strategy === 'string') return [unpriced(id, r, strategy)];
  const split = splitTasks(strategy, desired);
  if (typeof split === 'string') return [unpriced(id, r, split)];

  const lines: CostLine[] = [];
  const size = `${num(vcpu)} vCPU / ${num(gb)} GB`;
  const perTaskHour = vcpu * rates.vcpuHour + gb * rates.gbHour;
  const formula = `(${num(vcpu)} × ${rate(rates.vcpuHour)} + ${num(gb)} × ${rate(rates.gbHour)})`;
  for (const [provider, tasks] of split) {
    if (tasks <= 0) continue;
    const taskWord = `${num(tasks)} task${tasks === 1 ? '' : 's'}`;
    if (provider === 'FARGATE') {
      lines.push(fixed(id, r, `Fargate ${arch} ${size}, ${taskWord}${desiredNote}: ${HOURS} × ${formula}`, tasks * perTaskHour * HOURS_PER_MONTH));
    } else if (provider === 'FARGATE_SPOT') {
      const factor = 1 - PRICES.fargateSpotDiscount;
      lines.push(fixed(id, r, `Fargate Spot ${arch} ${size}, ${taskWord}${desiredNote}: ${HOURS} × ${formula} × ${num(factor)} (Spot varies; AWS's maximum discount assumed)`,
        tasks * perTaskHour * factor * HOURS_PER_MONTH));
    } else {
      lines.push(unpriced(id, r, `capacity provider ${provider} is not Fargate`));
    }
  }

  if (lines.length === 0) lines.push(fixed(id, r, `Fargate ${arch} ${size}: DesiredCount ${desired}, no task runs`, 0));

  const ephemeral = scope.number(tdp.EphemeralStorage?.SizeInGiB);
  if (ephemeral !== undefined && ephemeral > PRICES.fargateEphemeralFreeGb) {
    const extra = ephemeral - PRICES.fargateEphemeralFreeGb;
    lines.push(fixed(id, r, `Fargate ephemeral storage beyond ${PRICES.fargateEphemeralFreeGb} GB: ${num(desired)} × ${extra} GB × ${HOURS} × ${rate(PRICES.fargateEphemeralGbHour)}`,
      desired * extra * PRICES.fargateEphemeralGbHour * HOURS_PER_MONTH));
  }

  const assign = scope.scalar(p.NetworkConfiguration?.AwsvpcConfiguration?.AssignPublicIp);
  if (assign === 'ENABLED' && desired > 0) lines.push(publicIpLine(id, r, 'Fargate task public IP', desired));
  return lines;
};

const priceEcsCluster: Pricer = (id, r, scope) => {
  const settings = Array.isArray(r.Properties?.ClusterSettings) ? r.Properties!.ClusterSettings : [];
  const insights = settings.find((s: any) => s?.Name === 'containerInsights');
  const value = insights ? scope.scalar(insights.Value) : undefined;
  if (value === 'enabled' || value === 'enhanced') {
    return [unpriced(id, r, `Container Insights (${value}) is billed as CloudWatch custom metrics and performance-log ingestion; `
      + 'the metric count depends on the services and tasks that run')];
  }
  return [line(id, r, 'free', 'ECS cluster: no charge')];
};

// ---------------------------------------------------------------------------
// Per-item monthly fees
// ---------------------------------------------------------------------------

const priceSecret: Pricer = (id, r, scope) => {
  const replicas = scope.list(r.Properties?.ReplicaRegions)?.length ?? 0;
  const copies = 1 + replicas;
  const what = replicas > 0 ? `secret + ${replicas} replica${replicas === 1 ? '' : 's'}: ${copies} × ${rate(PRICES.secretMonth)}` : `secret: ${rate(PRICES.secretMonth)}/month`;
  return [fixed(id, r, `Secrets Manager ${what} (API calls are usage)`, copies * PRICES.secretMonth)];
};

const priceKmsKey: Pricer = (id, r) => {
  const rotation = isTrue(r.Properties?.EnableKeyRotation);
  const note = rotation ? '; +$1 after each of its first two rotations' : '';
  return [fixed(id, r, `KMS customer managed key: ${rate(PRICES.kmsKeyMonth)}/month${note} (requests are usage)`, PRICES.kmsKeyMonth)];
};

const priceAlarm: Pricer = (id, r, scope) => {
  const p = r.Properties ?? {};
  const periods: number[] = [];
  let metrics = 1;
  let anomaly = false;
  if (Array.isArray(p.Metrics) && p.Metrics.length > 0) {
    metrics = p.Metrics.filter((m: any) => isObject(m?.MetricStat)).length;
    for (const m of p.Metrics) {
      const period = scope.number(m?.MetricStat?.Period ?? m?.Period);
      if (period !== undefined) periods.push(period);
      if (typeof m?.Expression === 'string' && m.Expression.includes('ANOMALY_DETECTION_BAND')) anomaly = true;
    }
  } else {
    const period = scope.number(p.Period);
    if (period !== undefined) periods.push(period);
  }
  if (metrics === 0) return [unpriced(id, r, 'alarm on a metric query (no MetricStat): billed per metric the query analyzes')];
  if (anomaly) metrics *= 3; // an anomaly detection alarm is billed as 3 metrics: the metric and its two bands
  const highRes = periods.some((s) => s < 60);
  const perMetric = highRes ? PRICES.alarmHighResMetricMonth : PRICES.alarmMetricMonth;
  const kind = `${highRes ? 'high-resolution' : 'standard'}${anomaly ? ' anomaly detection' : ''}`;
  return [fixed(id, r, `CloudWatch ${kind} alarm: ${metrics} metric${metrics === 1 ? '' : 's'} × ${rate(perMetric)}/month`, metrics * perMetric)];
};

const priceCompositeAlarm: Pricer = (id, r) => [
  fixed(id, r, `CloudWatch composite alarm: ${rate(PRICES.compositeAlarmMonth)}/month`, PRICES.compositeAlarmMonth),
];

const priceDashboard: Pricer = (id, r) => [
  fixed(id, r, `CloudWatch dashboard: ${rate(PRICES.dashboardMonth)}/month (the account's first 3 dashboards are free; not assumed here)`, PRICES.dashboardMonth),
];

const priceHostedZone: Pricer = (id, r) => [
  fixed(id, r, `Route 53 hosted zone: ${rate(PRICES.hostedZoneMonth)}/month (queries are usage)`, PRICES.hostedZoneMonth),
];

const priceSsmParameter: Pricer = (id, r, scope) => {
  const tier = scope.scalar(r.Properties?.Tier) ?? 'Standard';
  if (tier === 'Standard') return [line(id, r, 'free', 'SSM standard parameter: no charge')];
  if (tier === 'Advanced') return [fixed(id, r, 'SSM advanced parameter: $0.05/month', 0.05)];
  return [unpriced(id, r, `SSM parameter tier ${String(tier)}`)];
};

const priceDynamoTable: Pricer = (id, r, scope) => {
  const p = r.Properties ?? {};
  const mode = scope.scalar(p.BillingMode) ?? 'PROVISIONED'; // CloudFormation's default
  if (mode === 'PAY_PER_REQUEST') {
    return [line(id, r, 'usage', 'usage-based: DynamoDB on demand: requests, storage and backups, $0 at idle')];
  }
  if (mode !== 'PROVISIONED') return [unpriced(id, r, `billing mode ${String(mode)}`)];
  if ((scope.scalar(p.TableClass) ?? 'STANDARD') !== 'STANDARD') return [unpriced(id, r, 'provisioned capacity of a non-Standard table class')];
  let rcu = 0;
  let wcu = 0;
  const indexes: any[] = Array.isArray(p.GlobalSecondaryIndexes) ? p.GlobalSecondaryIndexes : [];
  const throughputs = [p.ProvisionedThroughput, ...indexes.map((g) => g?.ProvisionedThroughput)];
  for (const t of throughputs) {
    if (t === undefined) continue;
    const reads = scope.number(t.ReadCapacityUnits);
    const writes = scope.number(t.WriteCapacityUnits);
    if (reads === undefined || writes === undefined) return [unpriced(id, r, 'provisioned capacity cannot be resolved')];
    rcu += reads;
    wcu += writes;
  }
  return [fixed(id, r, `DynamoDB provisioned: ${rcu} RCU × ${rate(PRICES.dynamoRcuHour)} + ${wcu} WCU × ${rate(PRICES.dynamoWcuHour)}, ${HOURS} (storage is usage)`,
    (rcu * PRICES.dynamoRcuHour + wcu * PRICES.dynamoWcuHour) * HOURS_PER_MONTH)];
};

/** Lambda versions and aliases: free unless they keep provisioned concurrency warm. */
const priceLambdaConcurrency: Pricer = (id, r, scope) => {
  const pc = r.Properties?.ProvisionedConcurrencyConfig;
  if (pc === undefined) return [line(id, r, 'free', 'Lambda version/alias: no charge')];
  const executions = scope.number(pc.ProvisionedConcurrentExecutions);
  const fn = scope.target(r.Properties?.FunctionName);
  if (executions === undefined || !fn || fn.resource.Type !== 'AWS::Lambda::Function') {
    return [unpriced(id, r, 'provisioned concurrency: the executions or the function cannot be resolved')];
  }
  const memoryMb = scope.number(fn.resource.Properties?.MemorySize ?? 128) ?? NaN;
  const archs = scope.list(fn.resource.Properties?.Architectures);
  const arch = typeof archs?.[0] === 'string' ? archs[0] : 'x86_64';
  const perGbSecond = PRICES.lambdaProvisionedGbSecond[arch];
  if (Number.isNaN(memoryMb) || perGbSecond === undefined) return [unpriced(id, r, 'provisioned concurrency: memory or architecture cannot be resolved')];
  const gb = memoryMb / 1024;
  return [fixed(id, r, `Lambda provisioned concurrency (${fn.id}): ${executions} × ${num(gb)} GB × ${HOURS_PER_MONTH * 3600} s × ${rate(perGbSecond)}`,
    executions * gb * HOURS_PER_MONTH * 3600 * perGbSecond)];
};

// ---------------------------------------------------------------------------
// Usage-based and free resources
// ---------------------------------------------------------------------------

/** Resource types that only bill when used, with what they bill. */
const USAGE: Record<string, string> = {
  'AWS::Lambda::Function': 'Lambda: requests and GB-seconds, $0 at idle',
  'AWS::SQS::Queue': 'SQS: $0.40 (standard) / $0.50 (FIFO) per million requests (Lambda\'s polling included) beyond the free million',
  'AWS::S3::Bucket': 'S3: storage and requests',
  'AWS::SNS::Topic': 'SNS: publishes and deliveries',
  'AWS::Logs::LogGroup': 'CloudWatch Logs: $0.50/GB ingested, $0.03/GB-month stored',
  'AWS::EC2::FlowLog': 'flow logs: log ingestion',
  'AWS::EFS::FileSystem': 'EFS: storage (Standard / Infrequent Access) and elastic throughput; a few GB of agent state costs cents',
  'AWS::Backup::BackupVault': 'AWS Backup: backup storage per GB-month',
  'AWS::ECR::Repository': 'ECR: $0.10/GB-month of image storage',
  'AWS::Scheduler::Schedule': 'EventBridge Scheduler: $1.00 per million invocations beyond 14 million a month',
  'AWS::Events::Rule': 'EventBridge: events and invocations',
  'AWS::Bedrock::Guardrail': 'Bedrock Guardrails: per text unit evaluated',
  'AWS::DynamoDB::GlobalTable': 'DynamoDB: usage (on demand) — provisioned global tables are not priced here',
  'AWS::Logs::SubscriptionFilter': 'CloudWatch Logs: delivery is usage',
  'AWS::StepFunctions::StateMachine': 'Step Functions: state transitions',
};

/** What an AgentCore resource bills; anything AgentCore is usage-based. */
const AGENTCORE: Record<string, string> = {
  Runtime: 'AgentCore Runtime: CPU and memory of active sessions, $0 while no session runs',
  RuntimeEndpoint: 'AgentCore Runtime endpoint: no charge of its own',
  Memory: 'AgentCore Memory: per event written and per long-term record stored and retrieved, $0 without use',
  Gateway: 'AgentCore Gateway: per tool invocation and search',
  GatewayTarget: 'AgentCore Gateway target: no charge of its own',
};

/** Resource types with no charge of their own. */
const FREE_PREFIXES = ['AWS::IAM::', 'Custom::', 'AWS::ApplicationAutoScaling::'];
const FREE = new Set([
  'AWS::CDK::Metadata', 'AWS::CloudFormation::CustomResource', 'AWS::CloudFormation::WaitConditionHandle',
  'AWS::EC2::VPC', 'AWS::EC2::Subnet', 'AWS::EC2::RouteTable', 'AWS::EC2::Route', 'AWS::EC2::SubnetRouteTableAssociation',
  'AWS::EC2::InternetGateway', 'AWS::EC2::EgressOnlyInternetGateway', 'AWS::EC2::VPCGatewayAttachment', 'AWS::EC2::SecurityGroup',
  'AWS::EC2::SecurityGroupIngress', 'AWS::EC2::SecurityGroupEgress', 'AWS::EC2::NetworkAcl', 'AWS::EC2::NetworkAclEntry',
  'AWS::EC2::SubnetNetworkAclAssociation', 'AWS::EC2::EIPAssociation', 'AWS::EC2::VPCCidrBlock', 'AWS::EC2::LaunchTemplate',
  'AWS::EC2::DHCPOptions', 'AWS::EC2::VPCDHCPOptionsAssociation',
  'AWS::ECS::TaskDefinition', 'AWS::ECS::ClusterCapacityProviderAssociations', 'AWS::ECS::CapacityProvider',
  'AWS::EFS::AccessPoint', 'AWS::EFS::MountTarget',
  'AWS::KMS::Alias', 'AWS::Lambda::Permission', 'AWS::Lambda::Url', 'AWS::Lambda::EventSourceMapping', 'AWS::Lambda::LayerVersion',
  'AWS::Lambda::EventInvokeConfig', 'AWS::Logs::MetricFilter', 'AWS::Logs::ResourcePolicy',
  'AWS::S3::BucketPolicy', 'AWS::SQS::QueuePolicy', 'AWS::SNS::TopicPolicy', 'AWS::SNS::Subscription',
  'AWS::SecretsManager::SecretTargetAttachment', 'AWS::SecretsManager::ResourcePolicy', 'AWS::SecretsManager::RotationSchedule',
  'AWS::Backup::BackupPlan', 'AWS::Backup::BackupSelection', 'AWS::Scheduler::ScheduleGroup',
  // Vended log and trace delivery: only the data delivered is billed (usage).
  'AWS::Logs::DeliverySource', 'AWS::Logs::DeliveryDestination', 'AWS::Logs::Delivery', 'AWS::XRay::ResourcePolicy',
]);

const PRICERS: Record<string, Pricer> = {
  'AWS::EC2::NatGateway': priceNatGateway,
  'AWS::EC2::EIP': priceEip,
  'AWS::EC2::VPCEndpoint': priceVpcEndpoint,
  'AWS::EC2::Instance': priceInstance,
  'AWS::EC2::Volume': priceVolume,
  'AWS::ECS::Service': priceEcsService,
  'AWS::ECS::Cluster': priceEcsCluster,
  'AWS::SecretsManager::Secret': priceSecret,
  'AWS::KMS::Key': priceKmsKey,
  'AWS::KMS::ReplicaKey': priceKmsKey,
  'AWS::CloudWatch::Alarm': priceAlarm,
  'AWS::CloudWatch::CompositeAlarm': priceCompositeAlarm,
  'AWS::CloudWatch::Dashboard': priceDashboard,
  'AWS::Route53::HostedZone': priceHostedZone,
  'AWS::SSM::Parameter': priceSsmParameter,
  'AWS::DynamoDB::Table': priceDynamoTable,
  'AWS::Lambda::Version': priceLambdaConcurrency,
  'AWS::Lambda::Alias': priceLambdaConcurrency,
};

function priceResource(id: string, r: CfnResource, scope: TemplateScope): CostLine[] {
  const pricer = PRICERS[r.Type];
  if (pricer) return pricer(id, r, scope);
  if (USAGE[r.Type]) return [line(id, r, 'usage', `usage-based: ${USAGE[r.Type]}`)];
  if (r.Type.startsWith('AWS::BedrockAgentCore::')) {
    const what = AGENTCORE[r.Type.slice('AWS::BedrockAgentCore::'.length)] ?? 'AgentCore: usage-based, $0 at idle';
    return [line(id, r, 'usage', `usage-based: ${what}`)];
  }
  if (FREE.has(r.Type) || FREE_PREFIXES.some((prefix) => r.Type.startsWith(prefix))) return [line(id, r, 'free', 'no charge of its own')];
  if (r.Type === 'AWS::CloudFormation::Stack') return [unpriced(id, r, 'nested stack: estimate its template separately')];
  return [unpriced(id, r, 'type not in the price table (usage-based or unknown)')];
}

/** The fixed monthly cost of one synthesized template. */
export function estimateStackCost(stackName: string, template: CfnTemplate, options: EstimateOptions = {}): StackCost {
  const scope = new TemplateScope(template);
  const lines = Object.entries(scope.resources).flatMap(([id, r]) => priceResource(id, r, scope));
  const totalUsd = round2(lines.reduce((s, l) => s + l.monthlyUsd, 0));
  const notes: string[] = [];
  if (options.region && !options.region.startsWith('${') && options.region !== PRICE_REGION) {
    notes.push(`the stack is in ${options.region}; prices are ${PRICE_REGION}'s`);
  }
  const unpricedCount = lines.filter((l) => l.kind === 'unpriced').length;
  if (unpricedCount > 0) notes.push(`${unpricedCount} item${unpricedCount === 1 ? '' : 's'} not priced (see the lines): the total may be higher`);
  return { stackName, region: options.region, lines, totalUsd, notes };
}

/** The fixed monthly cost of every stack in a cloud assembly (`app.synth()` or `new CloudAssembly('cdk.out')`). */
export function estimateAssemblyCost(assembly: cxapi.CloudAssembly): StackCost[] {
  return assembly.stacksRecursively.map((stack) =>
    estimateStackCost(stack.stackName, stack.template, { region: stack.environment.region }));
}

/** The assumptions every report rests on, for printing next to it. */
export const ASSUMPTIONS: readonly string[] = [
  `${PRICE_REGION} on-demand list prices as of ${PRICES_AS_OF} (scripts/cost/prices.ts), ${HOURS_PER_MONTH} hours a month, no free tier, Savings Plans or taxes`,
  'fixed = what the stack costs while idle; requests, storage, data transfer, logs and model tokens are usage and not in the totals',
  `Fargate Spot at ${PRICES.fargateSpotDiscount * 100}% off on-demand (AWS's maximum; the Spot rate varies), so Spot lines are a lower bound`,
  `EBS volumes whose size is left to the AMI are counted at ${PRICES.amiRootVolumeGiB} GiB (Amazon Linux 2023)`,
  'every CloudWatch dashboard is charged (an account\'s first 3 are free); KMS key rotation adds $1/month per rotation for the first two',
];
