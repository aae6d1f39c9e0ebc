// Apache's benchmark Consumer (rocketmq-example 4.7.0, org.apache.rocketmq.example.benchmark),
// run unchanged in this JVM, plus a watch on its own push consumer's consume offsets, for the
// java-drain load of scripts/bench_vs_apache.py.  The benchmark only prints a TPS averaged over
// the last 9 s, every 10 s, and no total: too coarse to time a drain that lasts a few seconds, and
// blind to where it started.  This reads, every 5 ms, the offsets the client itself advances
// after each consumed batch (the ones it commits to the broker), and prints
//   DRAIN start <ms> <sum of the starting offsets>   once every queue is assigned
//   DRAIN first <ms> <consumed>                      when the first message has been consumed
//   DRAIN progress <ms> <consumed>                   once a second
//   DRAIN done <ms> <consumed>                       when <expected> messages have been consumed
// then leaves the consumer running: the caller stops the JVM by its pid.
//
// Run as a single source file (java -cp <bench classpath> scripts/DrainProbe.java ...), so the
// Maven build stays as it is.
//   args: <group> <expected messages> <queues> <benchmark Consumer's own arguments...>

import java.lang.reflect.Field;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import org.apache.rocketmq.client.consumer.store.OffsetStore;
import org.apache.rocketmq.client.consumer.store.ReadOffsetType;
import org.apache.rocketmq.client.impl.MQClientManager;
import org.apache.rocketmq.client.impl.consumer.DefaultMQPushConsumerImpl;
import org.apache.rocketmq.client.impl.consumer.MQConsumerInner;
import org.apache.rocketmq.client.impl.factory.MQClientInstance;
import org.apache.rocketmq.common.message.MessageQueue;

public class DrainProbe {
    public static void main(String[] args) throws Exception {
        String group = args[0];
        long expected = Long.parseLong(args[1]);
        int queues = Integer.parseInt(args[2]);
        String[] benchmarkArgs = Arrays.copyOfRange(args, 3, args.length);
        org.apache.rocketmq.example.benchmark.Consumer.main(benchmarkArgs);
        DefaultMQPushConsumerImpl consumer = find(group);
        OffsetStore store = consumer.getOffsetStore();
        // Where each queue started, read once the rebalance has assigned it: the rebalance puts a
        // queue in the table only after it has read the group's offset from the broker.
        Map<MessageQueue, Long> start = new HashMap<>();
        long first = 0;
        long lastProgress = 0;
        while (true) {
            long consumed = 0;
            for (MessageQueue mq : consumer.getRebalanceImpl().getProcessQueueTable().keySet()) {
                long offset = store.readOffset(mq, ReadOffsetType.READ_FROM_MEMORY);
                if (offset < 0) {
                    continue;
                }
                Long from = start.get(mq);
                if (from == null) {
                    start.put(mq, offset);
                    if (start.size() == queues) {
                        long sum = 0;
                        for (long s : start.values()) {
                            sum += s;
                        }
                        say("start", sum);
                    }
                    continue;
                }
                consumed += offset - from;
            }
            long now = System.currentTimeMillis();
            if (first == 0 && consumed > 0) {
                first = now;
                say("first", consumed);
            }
            if (consumed >= expected) {
                say("done", consumed);
                return;
            }
            if (now - lastProgress >= 1000) {
                lastProgress = now;
                say("progress", consumed);
            }
            Thread.sleep(5);
        }
    }

    private static void say(String what, long count) {
        System.out.println("DRAIN " + what + " " + System.currentTimeMillis() + " " + count);
        System.out.flush();
    }

    /** The benchmark keeps its consumer in a local: reach it through the client's registry. */
    @SuppressWarnings("unchecked")
    private static DefaultMQPushConsumerImpl find(String group) throws Exception {
        Field table = MQClientManager.class.getDeclaredField("factoryTable");
        table.setAccessible(true);
        Map<String, MQClientInstance> instances =
            (Map<String, MQClientInstance>) table.get(MQClientManager.getInstance());
        for (MQClientInstance instance : instances.values()) {
            MQConsumerInner inner = instance.selectConsumer(group);
            if (inner instanceof DefaultMQPushConsumerImpl) {
                return (DefaultMQPushConsumerImpl) inner;
            }
        }
        throw new IllegalStateException("no push consumer of group " + group + " in this JVM");
    }
}
