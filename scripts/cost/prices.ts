/**
 * The price table of the cost report: on-demand list prices in one region,
 * in USD, without free tiers, Savings Plans or taxes.
 *
 * Every figure names its unit. Update `PRICES_AS_OF` whenever a figure changes.
 * Sources: the AWS pricing pages of each service (aws.amazon.com/<service>/pricing).
 */

/** The region every price below is for. */
export const PRICE_REGION = 'us-east-1';

/** When the table was last checked against the AWS pricing pages. */
export const PRICES_AS_OF = '2026-11';

/** Hours in a month, as AWS's own calculators count them (8760 / 12). */
export const HOURS_PER_MONTH = 730;

/** Fargate per-hour rates of one CPU architecture (Linux). */
export interface FargateRates {
  /** USD per vCPU-hour. */
  readonly vcpuHour: number;
  /** USD per GB-hour of task memory. */
  readonly gbHour: number;
}

export const PRICES = {
  /** NAT gateway, per gateway-hour (data processing, $0.045/GB, is usage). */
  natGatewayHour: 0.045,

  /**
   * Public IPv4 address, per address-hour, in use or idle (since February 2024):
   * Elastic IPs, the NAT gateway's EIP, instance and Fargate task public IPs.
   */
  publicIpv4Hour: 0.005,

  /** Interface VPC endpoint, per endpoint per Availability Zone (one subnet each) per hour; data ($0.01/GB) is usage. */
  interfaceEndpointAzHour: 0.01,

  /** EC2 on-demand Linux, per instance-hour (CPU credits spent above a T instance's baseline are usage). */
  ec2InstanceHour: {
    't4g.nano': 0.0042,
    't4g.micro': 0.0084,
    't4g.small': 0.0168,
    't4g.medium': 0.0336,
    't3.nano': 0.0052,
    't3.micro': 0.0104,
    't3.small': 0.0208,
    't3.medium': 0.0416,
  } as Record<string, number>,

  /** EBS, per provisioned GB-month (gp3 includes 3,000 IOPS and 125 MB/s). */
  ebsGbMonth: {
    gp3: 0.08,
    gp2: 0.10,
  } as Record<string, number>,

  /**
   * Root volume size assumed when the template leaves it to the AMI (GiB):
   * the Amazon Linux 2023 AMIs CDK's NAT instance uses have an 8 GiB root volume.
   */
  amiRootVolumeGiB: 8,

  /** Fargate on-demand, Linux, per vCPU-hour and GB-hour. */
  fargate: {
    X86_64: { vcpuHour: 0.04048, gbHour: 0.004445 },
    ARM64: { vcpuHour: 0.03238, gbHour: 0.00356 },
  } as Record<string, FargateRates>,

  /**
   * Fargate Spot: its rates move with supply and demand; AWS quotes "up to 70%"
   * off on-demand. The report applies the full 70%, so Spot lines are a lower bound.
   */
  fargateSpotDiscount: 0.70,

  /** Fargate ephemeral storage beyond the 20 GB every task gets, per GB-hour. */
  fargateEphemeralGbHour: 0.000111,
  /** Ephemeral storage included with every Fargate task (GB). */
  fargateEphemeralFreeGb: 20,

  /** Secrets Manager, per secret-month; each replica region counts as another secret. */
  secretMonth: 0.40,

  /**
   * KMS customer managed key, per key-month. With automatic rotation each of the
   * first two rotations adds $1/month from the day it happens (later ones are free).
   */
  kmsKeyMonth: 1.00,

  /** CloudWatch alarms, per alarm metric per month (standard, 60 s or longer periods). */
  alarmMetricMonth: 0.10,
  /** CloudWatch alarms, per alarm metric per month (high resolution, 10 s or 30 s periods). */
  alarmHighResMetricMonth: 0.30,
  /** CloudWatch composite alarm, per alarm-month. */
  compositeAlarmMonth: 0.50,

  /**
   * CloudWatch dashboard, per dashboard-month. The first 3 dashboards (up to 50
   * metrics each) of an account are free; the report does not know the account's
   * other dashboards, so it charges every one.
   */
  dashboardMonth: 3.00,

  /** Route 53 hosted zone, per zone-month (first 25 zones). */
  hostedZoneMonth: 0.50,

  /** DynamoDB provisioned capacity, Standard table class, per unit-hour. */
  dynamoWcuHour: 0.00065,
  dynamoRcuHour: 0.00013,

  /** Lambda provisioned concurrency, per GB-second configured. */
  lambdaProvisionedGbSecond: {
    x86_64: 0.0000041667,
    arm64: 0.0000033334,
  } as Record<string, number>,
} as const;
