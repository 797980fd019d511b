import * as ec2 from 'aws-cdk-lib/aws-ec2';

/**
 * How a gateway's private subnets reach the internet (Slack, Telegram, model
 * endpoints, npm for MCP servers). Only used when the construct creates the VPC.
 */
export class GatewayEgress {
  /**
   * One managed NAT gateway (about $33/month in us-east-1 plus data). The
   * default: no instance to patch.
   */
  public static natGateway(): GatewayEgress {
    return new GatewayEgress('nat-gateway');
  }

  /**
   * One NAT instance (Amazon Linux 2023, outbound traffic only), about
   * $3/month for a t4g.nano: the lowest idle bill. You own its patching.
   *
   * @param instanceType @default t4g.nano
   */
  public static natInstance(instanceType?: ec2.InstanceType): GatewayEgress {
    return new GatewayEgress('nat-instance', instanceType ?? ec2.InstanceType.of(ec2.InstanceClass.T4G, ec2.InstanceSize.NANO));
  }

  private constructor(
    /** `nat-gateway` or `nat-instance`. */
    public readonly kind: string,
    /** The NAT instance type, for `nat-instance`. */
    public readonly instanceType?: ec2.InstanceType,
  ) {}
}
