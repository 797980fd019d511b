"""Minimal app: a Telegram assistant on Bedrock AgentCore Runtime (one microVM
per chat, nothing running while idle).

    cdk synth --app "python agentcore_agent.py"

The same app as examples/typescript/agentcore-agent.ts; the test command
checks that both synthesize the same template.
"""
from aws_cdk import App, Stack
from cdk_hermes_agent import AgentAccess, HermesAgentCoreAgent, HermesSettings


def agentcore_agent_example(app: App) -> list[Stack]:
    """Adds the example's stack to `app`."""
    stack = Stack(app, "HermesAgentCoreExample")
    HermesAgentCoreAgent(
        stack,
        "Agent",
        access=AgentAccess.allow_users(telegram=["123456789"]),
        settings=HermesSettings(soul="You are a patient research assistant. Cite your sources."),
    )
    return [stack]


if __name__ == "__main__":
    app = App()
    agentcore_agent_example(app)
    app.synth()
