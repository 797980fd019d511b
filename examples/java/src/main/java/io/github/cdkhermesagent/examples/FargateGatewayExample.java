package io.github.cdkhermesagent.examples;

import io.github.cdkhermesagent.AgentAccess;
import io.github.cdkhermesagent.AllowedUsers;
import io.github.cdkhermesagent.GatewayEgress;
import io.github.cdkhermesagent.HermesFargateGateway;
import io.github.cdkhermesagent.HermesSettings;
import java.util.List;
import software.amazon.awscdk.App;
import software.amazon.awscdk.Stack;

/**
 * Minimal app: an always-on Slack assistant on ECS Fargate. The same app as
 * examples/typescript/fargate-gateway.ts; the test command checks that both
 * synthesize the same template.
 */
public final class FargateGatewayExample {
    private FargateGatewayExample() {
    }

    /** Adds the example's stack to {@code app}. */
    public static List<Stack> build(final App app) {
        Stack stack = new Stack(app, "HermesFargateGatewayExample");
        HermesFargateGateway.Builder.create(stack, "Gateway")
                .access(AgentAccess.allowUsers(AllowedUsers.builder().slack(List.of("U012ABCDEF")).build()))
                .egress(GatewayEgress.natInstance())
                .settings(HermesSettings.builder()
                        .soul("You are the platform team's assistant. Answer from knowledge/ and say when it does not cover a question.")
                        .build())
                .build();
        return List.of(stack);
    }

    public static void main(final String[] args) {
        App app = new App();
        build(app);
        app.synth();
    }
}
