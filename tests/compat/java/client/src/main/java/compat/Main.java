package compat;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * Entry point of the conformance programs: {@code compat.Main <sub-command> --namesrv host:port ...}.
 *
 * <p>Every sub-command checks its own outcome and ends the JVM with exit status 0 on success,
 * 1 on a failed check or exception, 2 when the watchdog's time limit runs out. The last line
 * on stdout is {@code OK ...} or {@code FAIL ...} so a test can show why.
 */
public final class Main {
    private Main() {}

    private static final Map<String, Callable<String>> COMMANDS = new LinkedHashMap<>();

    public static void main(String[] argv) {
        if (argv.length < 1) {
            System.out.println("FAIL usage: compat.Main <sub-command> [--key value ...]");
            System.exit(1);
        }
        Args args = Args.parse(Arrays.copyOfRange(argv, 1, argv.length));
        register(args);
        Callable<String> command = COMMANDS.get(argv[0]);
        if (command == null) {
            System.out.println("FAIL unknown sub-command " + argv[0] + "; known: " + COMMANDS.keySet());
            System.exit(1);
        }
        startWatchdog(args.integer("timeout", 90));
        int status;
        try {
            String summary = command.call();
            System.out.println("OK " + summary);
            status = 0;
        } catch (Check.Failure e) {
            System.out.println("FAIL " + e.getMessage());
            status = 1;
        } catch (Throwable e) {
            e.printStackTrace(System.out);
            System.out.println("FAIL " + e);
            status = 1;
        }
        System.out.flush();
        // Client threads (netty, rebalance, scheduled executors) shut down gracefully over
        // seconds; the checks are done, so do not wait for them.
        Runtime.getRuntime().halt(status);
    }

    private static void register(Args a) {
        COMMANDS.put("sync", () -> Producers.sync(a));
        COMMANDS.put("async", () -> Producers.async(a));
        COMMANDS.put("oneway", () -> Producers.oneway(a));
        COMMANDS.put("batch", () -> Producers.batch(a));
        COMMANDS.put("orderly", () -> Producers.orderly(a));
        COMMANDS.put("delay", () -> Producers.delay(a));
        COMMANDS.put("transaction", () -> Transactions.run(a));
        COMMANDS.put("clustering", () -> Consumers.clustering(a));
        COMMANDS.put("broadcast", () -> Consumers.broadcast(a));
        COMMANDS.put("tag-filter", () -> Consumers.tagFilter(a));
        COMMANDS.put("consume-stored", () -> Consumers.consumeStored(a));
        COMMANDS.put("mqadmin", () -> AdminBatch.run(a));
        COMMANDS.put("acl-allowed", () -> Acl.allowed(a));
        COMMANDS.put("acl-refused", () -> Acl.refused(a));
        COMMANDS.put("failover-probe", () -> FailoverProbe.run(a));
    }

    private static void startWatchdog(int seconds) {
        Thread dog = new Thread(() -> {
            try {
                Thread.sleep(seconds * 1000L);
            } catch (InterruptedException e) {
                return;
            }
            System.out.println("FAIL timed out after " + seconds + " s");
            System.out.flush();
            Runtime.getRuntime().halt(2);
        }, "watchdog");
        dog.setDaemon(true);
        dog.start();
    }
}
