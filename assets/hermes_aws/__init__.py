"""Runtime glue that runs Hermes Agent (NousResearch) on AWS.

Shared by every deployment shape of the cdk-hermes-agent constructs
(Fargate gateway, Lambda worker, AgentCore runtime).
"""

__version__ = "0.1.0"
