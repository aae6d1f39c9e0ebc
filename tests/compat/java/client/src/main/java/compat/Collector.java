package compat;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.rocketmq.common.message.MessageExt;

/** Thread-safe record of consumed messages that a program can wait on. */
final class Collector {
    private final List<MessageExt> messages = new ArrayList<>();
    private final List<Long> arrivals = new ArrayList<>();

    synchronized void addAll(List<MessageExt> msgs) {
        long now = System.currentTimeMillis();
        for (MessageExt msg : msgs) {
            messages.add(msg);
            arrivals.add(now);
        }
        notifyAll();
    }

    /** Waits until at least {@code count} messages arrived; fails with what did arrive otherwise. */
    synchronized void awaitCount(int count, long timeoutMillis, String what) throws InterruptedException {
        long deadline = System.currentTimeMillis() + timeoutMillis;
        while (messages.size() < count) {
            long left = deadline - System.currentTimeMillis();
            if (left <= 0) {
                throw new Check.Failure(what + ": received " + messages.size() + " of " + count
                    + " messages within " + timeoutMillis + " ms: " + bodies());
            }
            wait(left);
        }
    }

    synchronized List<MessageExt> messages() {
        return new ArrayList<>(messages);
    }

    synchronized long arrivalOf(int index) {
        return arrivals.get(index);
    }

    synchronized int size() {
        return messages.size();
    }

    synchronized List<String> bodies() {
        List<String> out = new ArrayList<>();
        for (MessageExt msg : messages) {
            out.add(Clients.body(msg));
        }
        return out;
    }

    /** Each expected body exactly once and nothing else. */
    synchronized void checkExactly(Set<String> expected, String what) {
        Map<String, Integer> seen = new HashMap<>();
        for (String body : bodies()) {
            seen.merge(body, 1, Integer::sum);
        }
        Set<String> missing = new HashSet<>(expected);
        missing.removeAll(seen.keySet());
        Set<String> extra = new HashSet<>(seen.keySet());
        extra.removeAll(expected);
        List<String> duplicated = new ArrayList<>();
        seen.forEach((body, n) -> {
            if (n > 1) {
                duplicated.add(body + "x" + n);
            }
        });
        Check.that(missing.isEmpty() && extra.isEmpty() && duplicated.isEmpty(),
            "%s: missing %s, unexpected %s, duplicated %s", what, missing, extra, duplicated);
    }
}
