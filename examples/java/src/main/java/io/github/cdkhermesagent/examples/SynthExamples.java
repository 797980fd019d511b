package io.github.cdkhermesagent.examples;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Collectors;
import software.amazon.awscdk.App;
import software.amazon.awscdk.AppProps;
import software.amazon.awscdk.Stack;

/**
 * Synthesizes every Java example app (or the ones named) into OUTDIR/NAME for
 * scripts/bindings/compare-templates.ts. Usage: {@code SynthExamples OUTDIR [NAME...]}.
 */
public final class SynthExamples {
    /** Same names as examples/typescript/index.ts. */
    static final Map<String, Function<App, List<Stack>>> EXAMPLES = new LinkedHashMap<>();

    static {
        EXAMPLES.put("fargate-gateway", FargateGatewayExample::build);
        EXAMPLES.put("lambda-agent", LambdaAgentExample::build);
        EXAMPLES.put("agentcore-agent", AgentCoreAgentExample::build);
    }

    private SynthExamples() {
    }

    public static void main(final String[] args) {
        if (args.length < 1) {
            throw new IllegalArgumentException("usage: SynthExamples OUTDIR [NAME...]");
        }
        List<String> names = args.length > 1 ? Arrays.asList(args).subList(1, args.length) : List.copyOf(EXAMPLES.keySet());
        for (String name : names) {
            Function<App, List<Stack>> example = EXAMPLES.get(name);
            if (example == null) {
                throw new IllegalArgumentException("unknown example '" + name + "' (known: " + EXAMPLES.keySet() + ")");
            }
            long started = System.nanoTime();
            App app = new App(AppProps.builder().outdir(Path.of(args[0], name).toString()).build());
            List<Stack> stacks = example.apply(app);
            app.synth();
            System.out.printf("java %s: %s (%.1f s)%n", name,
                    stacks.stream().map(Stack::getStackName).collect(Collectors.joining(", ")),
                    (System.nanoTime() - started) / 1e9);
        }
    }
}
