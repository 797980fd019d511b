package io.github.cdkhermesagent.examples;

import io.github.cdkhermesagent.AgentAccess;
import io.github.cdkhermesagent.AgentModel;
import io.github.cdkhermesagent.AllowedUsers;
import io.github.cdkhermesagent.HermesLambdaAgent;
import io.github.cdkhermesagent.HermesSettings;
import java.util.List;
import software.amazon.awscdk.App;
import software.amazon.awscdk.Stack;

/**
 * Minimal app: a wake-on-demand Telegram assistant on AWS Lambda. The same app
 * as examples/typescript/lambda-agent.ts; the test command checks that both
 * synthesize the same template.
 */
public final class LambdaAgentExample {
    private LambdaAgentExample() {
    }

    /** Adds the example's stack to {@code app}. */
    public static List<Stack> build(final App app) {
        Stack stack = new Stack(app, "HermesLambdaAgentExample");
        HermesLambdaAgent.Builder.create(stack, "Agent")
                .access(AgentAccess.allowUsers(AllowedUsers.builder().telegram(List.of("123456789")).build()))
                .model(AgentModel.bedrock("us.anthropic.claude-sonnet-4-6"))
                .settings(HermesSettings.builder().soul("You are a concise personal assistant.").build())
                .build();
        return List.of(stack);
    }

    public static void main(final String[] args) {
        App app = new App();
        build(app);
        app.synth();
    }
}
