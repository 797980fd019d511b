package io.github.cdkhermesagent.examples;

import io.github.cdkhermesagent.AgentAccess;
import io.github.cdkhermesagent.AllowedUsers;
import io.github.cdkhermesagent.HermesAgentCoreAgent;
import io.github.cdkhermesagent.HermesSettings;
import java.util.List;
import software.amazon.awscdk.App;
import software.amazon.awscdk.Stack;

/**
 * Minimal app: a Telegram assistant on Bedrock AgentCore Runtime (one microVM
 * per chat, nothing running while idle). The same app as
 * examples/typescript/agentcore-agent.ts; the test command checks that both
 * synthesize the same template.
 */
public final class AgentCoreAgentExample {
    private AgentCoreAgentExample() {
    }

    /** Adds the example's stack to {@code app}. */
    public static List<Stack> build(final App app) {
        Stack stack = new Stack(app, "HermesAgentCoreExample");
        HermesAgentCoreAgent.Builder.create(stack, "Agent")
                .access(AgentAccess.allowUsers(AllowedUsers.builder().telegram(List.of("123456789")).build()))
                .settings(HermesSettings.builder().soul("You are a patient research assistant. Cite your sources.").build())
                .build();
        return List.of(stack);
    }

    public static void main(final String[] args) {
        App app = new App();
        build(app);
        app.synth();
    }
}
