"""What a platform team writes: two Slack assistants with different
personalities in the team's existing network, reading the team's existing
knowledge bucket, with Slack tokens that already live in Secrets Manager,
alarms going to the on-call topic, and cdk-nag's four packs run over the whole
app (the app exits non-zero on any unacknowledged finding).

    cdk synth --app "python platform_team.py"

The same app as examples/typescript/platform-team.ts; the test command checks
that both synthesize the same template.
"""
import sys

from aws_cdk import App, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from cdk_hermes_agent import (
    AgentAccess,
    AgentModel,
    HermesFargateGateway,
    HermesSettings,
    KnowledgeBucket,
    SlackSecrets,
)
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks, ServerlessChecks
from constructs import Construct

# The account and region the platform team deploys to.
ENV = Environment(account="123456789012", region="eu-west-1")


class PlatformAgentsStack(Stack):
    """Two gateways sharing the team's VPC, ECS cluster and knowledge bucket."""

    def __init__(self, scope: Construct, construct_id: str, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)

        # The network team's VPC (private subnets route through their NAT).
        vpc = ec2.Vpc.from_vpc_attributes(
            self,
            "Vpc",
            vpc_id="vpc-0a1b2c3d4e5f60718",
            availability_zones=["eu-west-1a", "eu-west-1b"],
            private_subnet_ids=["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
            private_subnet_route_table_ids=["rtb-0a1b2c3d4e5f60001", "rtb-0a1b2c3d4e5f60002"],
        )

        # The team's documentation bucket, SSE-KMS with the team's key.
        knowledge = KnowledgeBucket.from_bucket(
            self,
            "Knowledge",
            s3.Bucket.from_bucket_name(self, "DocsBucket", "acme-platform-knowledge"),
            kms.Key.from_key_arn(self, "DocsKey", "arn:aws:kms:eu-west-1:123456789012:key/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"),
        )

        on_call = sns.Topic.from_topic_arn(self, "OnCall", "arn:aws:sns:eu-west-1:123456789012:platform-on-call")

        # One Slack app per gateway: two Socket Mode connections of one app would split its events.
        self.assistant = HermesFargateGateway(
            self,
            "PlatformAssistant",
            vpc=vpc,
            knowledge_bucket=knowledge,
            alarm_topic=on_call,
            access=AgentAccess.allow_users(slack=["U012ABCDEF", "U034GHIJKL", "U056MNOPQR"]),
            slack=SlackSecrets(
                self,
                "AssistantSlack",
                bot_token=secretsmanager.Secret.from_secret_name_v2(
                    self, "AssistantBotToken", "platform/hermes-assistant/slack-bot-token"),
                app_token=secretsmanager.Secret.from_secret_name_v2(
                    self, "AssistantAppToken", "platform/hermes-assistant/slack-app-token"),
                signing_secret=secretsmanager.Secret.from_secret_name_v2(
                    self, "AssistantSigning", "platform/hermes-assistant/slack-signing-secret"),
            ),
            settings=HermesSettings(
                soul="You are the platform team's friendly assistant. Explain how our ECS platform works, "
                "answer from knowledge/ and projects/, and say plainly when they do not cover a question.",
                project_context="Payments and search run on ECS in eu-west-1; deploys happen on Tuesdays.",
            ),
        )

        self.reviewer = HermesFargateGateway(
            self,
            "SecurityReviewer",
            vpc=vpc,
            cluster=self.assistant.cluster,
            knowledge_bucket=knowledge,
            alarm_topic=on_call,
            access=AgentAccess.allow_users(slack=["U078STUVWX"]),
            model=AgentModel.bedrock("us.anthropic.claude-opus-4-1"),
            slack=SlackSecrets(
                self,
                "ReviewerSlack",
                bot_token=secretsmanager.Secret.from_secret_complete_arn(
                    self, "ReviewerBotToken",
                    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:platform/hermes-reviewer/slack-bot-token-AbCdEf"),
                app_token=secretsmanager.Secret.from_secret_complete_arn(
                    self, "ReviewerAppToken",
                    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:platform/hermes-reviewer/slack-app-token-GhIjKl"),
                signing_secret=secretsmanager.Secret.from_secret_complete_arn(
                    self, "ReviewerSigning",
                    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:platform/hermes-reviewer/slack-signing-secret-MnOpQr"),
            ),
            settings=HermesSettings(
                soul="You are a sceptical security reviewer. Point out risks in designs and changes, cite the "
                "policy in knowledge/ you rely on, and never approve anything yourself.",
            ),
        )


def platform_team_example(app: App) -> list[Stack]:
    """Adds the example's stacks to `app`."""
    return [PlatformAgentsStack(app, "PlatformAgents", env=ENV)]


def nag_findings(app: App) -> list[str]:
    """Runs cdk-nag's AwsSolutions, Serverless, NIST 800-53 R5 and HIPAA packs
    over the whole (synthesized) app; returns the unacknowledged findings as
    `Rule @ construct/path`. (cdk-nag 3 packs run as CDK validation plugins
    only on an aws-cdk-lib that hands them the construct tree; 2.257 does not,
    so they are called directly.)"""
    findings = set()
    for pack in (AwsSolutionsChecks(), ServerlessChecks(), NIST80053R5Checks(), HIPAASecurityChecks()):
        for violation in pack.validate_scope(app).violations:
            for resource in violation.violating_resources:
                findings.add(f"{violation.rule_name} @ {resource.construct_path}")
    return sorted(findings)


if __name__ == "__main__":
    app = App()
    platform_team_example(app)
    app.synth()
    findings = nag_findings(app)
    for finding in findings:
        print(f"cdk-nag: {finding}", file=sys.stderr)
    sys.exit(1 if findings else 0)
