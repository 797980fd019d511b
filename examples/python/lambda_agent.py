"""Minimal app: a wake-on-demand Telegram assistant on AWS Lambda.

    cdk synth --app "python lambda_agent.py"

The same app as examples/typescript/lambda-agent.ts; the test command checks
that both synthesize the same template.
"""
from aws_cdk import App, Stack
from cdk_hermes_agent import AgentAccess, AgentModel, HermesLambdaAgent, HermesSettings


def lambda_agent_example(app: App) -> list[Stack]:
    """Adds the example's stack to `app`."""
    stack = Stack(app, "HermesLambdaAgentExample")
    HermesLambdaAgent(
        stack,
        "Agent",
        access=AgentAccess.allow_users(telegram=["123456789"]),
        model=AgentModel.bedrock("us.anthropic.claude-sonnet-4-6"),
        settings=HermesSettings(soul="You are a concise personal assistant."),
    )
    return [stack]


if __name__ == "__main__":
    app = App()
    lambda_agent_example(app)
    app.synth()
