package compat;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.protocol.heartbeat.MessageModel;

/** Push consumer models and filtering. */
final class Consumers {
    private Consumers() {}

    private static final long RECEIVE_MS = 30_000;

    /**
     * Two consumers of one clustering group share the queues: once the broker has told both
     * about each other (NOTIFY_CONSUMER_IDS_CHANGED, GET_CONSUMER_LIST_BY_GROUP), each message
     * reaches exactly one of them and both get some.
     */
    static String clustering(Args a) throws Exception {
        DefaultMQProducer producer = Clients.producer(a, a.group() + "_P");
        Clients.checkOk(producer.send(Clients.message(a.topic(), "TagA", null, "warm-up")), "warm-up send");
        String group = a.group() + "_C";
        Collector first = new Collector();
        Collector second = new Collector();
        DefaultMQPushConsumer c1 = Clients.collectingPush(a, group, group + "_1", MessageModel.CLUSTERING, "*", first);
        DefaultMQPushConsumer c2 = Clients.collectingPush(a, group, group + "_2", MessageModel.CLUSTERING, "*", second);
        awaitBalanced(a.topic(), c1, c2);
        Set<String> bodies = new HashSet<>();
        for (Message msg : Clients.numbered(a.topic(), "TagA", "cluster", a.count())) {
            Clients.checkOk(producer.send(msg), "clustering send");
            bodies.add(new String(msg.getBody(), "UTF-8"));
        }
        // Wait for every body rather than a count: a rebalance may legitimately deliver the
        // warm-up message twice (at-least-once while a queue changes hands), which must not
        // end the wait early.
        long deadline = System.currentTimeMillis() + RECEIVE_MS;
        Collector all = new Collector();
        while (System.currentTimeMillis() < deadline) {
            all = new Collector();
            all.addAll(first.messages());
            all.addAll(second.messages());
            if (new HashSet<>(all.bodies()).containsAll(bodies)) {
                break;
            }
            Thread.sleep(100);
        }
        Collector sent = new Collector();
        for (MessageExt msg : all.messages()) {
            if (!Clients.body(msg).equals("warm-up")) {
                sent.addAll(List.of(msg));
            }
        }
        sent.checkExactly(bodies, "two clustering consumers together (after both had their queues)");
        long toFirst = first.bodies().stream().filter(bodies::contains).count();
        long toSecond = second.bodies().stream().filter(bodies::contains).count();
        Check.that(toFirst > 0 && toSecond > 0, "queues not shared: %d and %d messages", toFirst, toSecond);
        return "clustering group split " + toFirst + "/" + toSecond;
    }

    private static void awaitBalanced(String topic, DefaultMQPushConsumer c1, DefaultMQPushConsumer c2)
            throws InterruptedException {
        long deadline = System.currentTimeMillis() + 20_000;
        while (System.currentTimeMillis() < deadline) {
            int q1 = queuesOf(topic, c1);
            int q2 = queuesOf(topic, c2);
            if (q1 == 2 && q2 == 2) {  // AVG over 4 queues, 2 consumers
                return;
            }
            Thread.sleep(100);
        }
        throw new Check.Failure("two consumers of one group never split the 4 queues between them");
    }

    private static int queuesOf(String topic, DefaultMQPushConsumer consumer) {
        // The table also holds the group's %RETRY% queue.
        return (int) consumer.getDefaultMQPushConsumerImpl().getRebalanceImpl().getProcessQueueTable().keySet()
            .stream().filter(mq -> mq.getTopic().equals(topic)).count();
    }

    /** Two broadcasting consumers of one group each get every message. */
    static String broadcast(Args a) throws Exception {
        DefaultMQProducer producer = Clients.producer(a, a.group() + "_P");
        Set<String> bodies = new HashSet<>();
        for (Message msg : Clients.numbered(a.topic(), "TagA", "bcast", a.count())) {
            Clients.checkOk(producer.send(msg), "broadcast send");
            bodies.add(new String(msg.getBody(), "UTF-8"));
        }
        String group = a.group() + "_C";
        Collector first = new Collector();
        Collector second = new Collector();
        Clients.collectingPush(a, group, group + "_1", MessageModel.BROADCASTING, "*", first);
        Clients.collectingPush(a, group, group + "_2", MessageModel.BROADCASTING, "*", second);
        first.awaitCount(bodies.size(), RECEIVE_MS, "first broadcasting consumer");
        second.awaitCount(bodies.size(), RECEIVE_MS, "second broadcasting consumer");
        first.checkExactly(bodies, "first broadcasting consumer");
        second.checkExactly(bodies, "second broadcasting consumer");
        return "both broadcasting consumers got all " + bodies.size();
    }

    /**
     * Consumes what is already stored (sent by someone else): every body on stdin, one per
     * line, exactly once and nothing else. Used against a slave whose master is down, so the
     * client's pulls, offset queries and commits all go to the slave.
     */
    static String consumeStored(Args a) throws Exception {
        Set<String> expected = new HashSet<>();
        int lines = 0;
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        for (String line = in.readLine(); line != null; line = in.readLine()) {
            if (!line.isEmpty()) {
                expected.add(line);
                lines++;
            }
        }
        Check.that(lines == expected.size() && !expected.isEmpty(),
            "stdin must list distinct bodies: %d lines, %d distinct", lines, expected.size());
        Collector got = new Collector();
        Clients.collectingPush(a, a.group(), a.group(), MessageModel.CLUSTERING, "*", got);
        got.awaitCount(expected.size(), RECEIVE_MS, "consumer of the stored messages");
        Thread.sleep(500);  // a duplicate or a stray message would arrive by now
        got.checkExactly(expected, "consumer of the stored messages");
        return "consumed all " + expected.size() + " stored messages";
    }

    /** Subscription "TagA || TagC" gets exactly those tags. */
    static String tagFilter(Args a) throws Exception {
        DefaultMQProducer producer = Clients.producer(a, a.group() + "_P");
        Set<String> wanted = new HashSet<>();
        for (String tag : List.of("TagA", "TagB", "TagC")) {
            for (Message msg : Clients.numbered(a.topic(), tag, tag, a.count())) {
                Clients.checkOk(producer.send(msg), "tagged send");
                if (!tag.equals("TagB")) {
                    wanted.add(new String(msg.getBody(), "UTF-8"));
                }
            }
        }
        // A tail message of a wanted tag: once it is in, every earlier TagB had its chance to leak.
        Clients.checkOk(producer.send(Clients.message(a.topic(), "TagC", null, "tail")), "tail send");
        wanted.add("tail");
        Collector got = new Collector();
        Clients.collectingPush(a, a.group() + "_C", a.group() + "_C", MessageModel.CLUSTERING, "TagA || TagC", got);
        got.awaitCount(wanted.size(), RECEIVE_MS, "filtered consumer");
        Thread.sleep(500);
        got.checkExactly(wanted, "filtered consumer");
        return "tag filter passed " + wanted.size() + " of " + (3 * a.count() + 1);
    }
}
