"""Minimal app: an always-on Slack assistant on ECS Fargate.

    cdk synth --app "python fargate_gateway.py"

The same app as examples/typescript/fargate-gateway.ts; the test command
checks that both synthesize the same template.
"""
from aws_cdk import App, Stack
from cdk_hermes_agent import AgentAccess, GatewayEgress, HermesFargateGateway, HermesSettings


def fargate_gateway_example(app: App) -> list[Stack]:
    """Adds the example's stack to `app`."""
    stack = Stack(app, "HermesFargateGatewayExample")
    HermesFargateGateway(
        stack,
        "Gateway",
        access=AgentAccess.allow_users(slack=["U012ABCDEF"]),
        egress=GatewayEgress.nat_instance(),
        settings=HermesSettings(
            soul="You are the platform team's assistant. Answer from knowledge/ and say when it does not cover a question.",
        ),
    )
    return [stack]


if __name__ == "__main__":
    app = App()
    fargate_gateway_example(app)
    app.synth()
