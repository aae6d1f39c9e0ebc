package compat;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.rocketmq.client.consumer.DefaultLitePullConsumer;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeOrderlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerOrderly;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendCallback;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;
import org.apache.rocketmq.common.protocol.heartbeat.MessageModel;

/** Each send mode, checked end to end: what the producer is told and what a consumer then gets. */
final class Producers {
    private Producers() {}

    private static final long RECEIVE_MS = 30_000;

    /** Sync sends; a concurrent clustering push consumer must see each message with its ids and keys. */
    static String sync(Args a) throws Exception {
        DefaultMQProducer producer = Clients.producer(a, a.group() + "_P");
        Map<String, SendResult> sent = new HashMap<>();
        Set<String> offsetIds = new HashSet<>();
        for (Message msg : Clients.numbered(a.topic(), "TagA", "sync", a.count())) {
            SendResult result = producer.send(msg);
            Clients.checkOk(result, "sync send");
            Check.that(offsetIds.add(result.getOffsetMsgId()), "offsetMsgId %s repeated", result.getOffsetMsgId());
            sent.put(new String(msg.getBody(), "UTF-8"), result);
        }
        Collector got = new Collector();
        Clients.collectingPush(a, a.group() + "_C", a.group() + "_C", MessageModel.CLUSTERING, "*", got);
        got.awaitCount(sent.size(), RECEIVE_MS, "push consumer");
        got.checkExactly(sent.keySet(), "push consumer");
        for (MessageExt msg : got.messages()) {
            String body = Clients.body(msg);
            SendResult result = sent.get(body);
            Check.equal(result.getMsgId(), msg.getMsgId(), body + " msgId (UNIQ_KEY)");
            Check.equal(result.getQueueOffset(), msg.getQueueOffset(), body + " queue offset");
            Check.equal(result.getMessageQueue().getQueueId(), msg.getQueueId(), body + " queue id");
            Check.equal(a.topic(), msg.getTopic(), body + " topic");
            Check.equal("TagA", msg.getTags(), body + " tag");
            Check.equal(body.replace("sync-", "sync-key-"), msg.getKeys(), body + " keys");
            Check.equal(0, msg.getReconsumeTimes(), body + " reconsume times");
            Check.that(msg.getStoreTimestamp() >= msg.getBornTimestamp(), "%s stored before it was born", body);
        }
        return sent.size() + " sync sends consumed by a push consumer";
    }

    /** Async sends with callbacks; a subscribing lite pull consumer must get them all. */
    static String async(Args a) throws Exception {
        DefaultMQProducer producer = Clients.producer(a, a.group() + "_P");
        List<Message> msgs = Clients.numbered(a.topic(), "TagA", "async", a.count());
        CountDownLatch done = new CountDownLatch(msgs.size());
        ConcurrentLinkedQueue<String> errors = new ConcurrentLinkedQueue<>();
        Set<String> bodies = new HashSet<>();
        for (Message msg : msgs) {
            bodies.add(new String(msg.getBody(), "UTF-8"));
            producer.send(msg, new SendCallback() {
                @Override
                public void onSuccess(SendResult result) {
                    try {
                        Clients.checkOk(result, "async send");
                    } catch (Check.Failure e) {
                        errors.add(e.getMessage());
                    }
                    done.countDown();
                }

                @Override
                public void onException(Throwable e) {
                    errors.add(String.valueOf(e));
                    done.countDown();
                }
            });
        }
        Check.that(done.await(RECEIVE_MS, TimeUnit.MILLISECONDS), "async callbacks did not all run");
        Check.that(errors.isEmpty(), "async send failures: %s", errors);

        DefaultLitePullConsumer consumer = Clients.litePull(a, a.group() + "_C");
        consumer.subscribe(a.topic(), "*");
        consumer.start();
        Collector got = pollUntil(consumer, bodies.size());
        got.checkExactly(bodies, "lite pull (subscribe)");
        return bodies.size() + " async sends consumed by a lite pull consumer";
    }

    /** Oneway sends; a lite pull consumer assigned to every queue from the start must get them all. */
    static String oneway(Args a) throws Exception {
        DefaultMQProducer producer = Clients.producer(a, a.group() + "_P");
        Set<String> bodies = new HashSet<>();
        for (Message msg : Clients.numbered(a.topic(), "TagA", "oneway", a.count())) {
            producer.sendOneway(msg);
            bodies.add(new String(msg.getBody(), "UTF-8"));
        }
        DefaultLitePullConsumer probe = Clients.litePull(a, a.group() + "_Q");
        probe.start();
        Collection<MessageQueue> queues = fetchQueuesEventually(probe, a.topic());
        probe.shutdown();
        // Assigned and paused before start, so no pull task runs until the seeks are done: a task
        // started by assign() on a running consumer can still deliver what it pulled before
        // seekToBegin replaced it (the 4.9 client's race; oneway sends still landing make it
        // likely), which shows up as duplicates that no broker caused.
        DefaultLitePullConsumer consumer = Clients.litePull(a, a.group() + "_C");
        consumer.assign(queues);
        consumer.pause(queues);
        consumer.start();
        for (MessageQueue mq : queues) {
            consumer.seekToBegin(mq);
        }
        consumer.resume(queues);
        Collector got = pollUntil(consumer, bodies.size());
        got.checkExactly(bodies, "lite pull (assign)");
        return bodies.size() + " oneway sends consumed by an assigned lite pull consumer on " + queues.size() + " queues";
    }

    /** One batch send; the messages land together in one queue with consecutive offsets. */
    static String batch(Args a) throws Exception {
        DefaultMQProducer producer = Clients.producer(a, a.group() + "_P");
        List<Message> msgs = Clients.numbered(a.topic(), "TagA", "batch", a.count());
        SendResult result = producer.send(msgs);
        Clients.checkOk(result, "batch send");
        Check.equal(msgs.size(), result.getMsgId().split(",").length, "ids in batch msgId " + result.getMsgId());
        Check.equal(msgs.size(), result.getOffsetMsgId().split(",").length, "ids in batch offsetMsgId");
        Set<String> bodies = new HashSet<>();
        for (Message msg : msgs) {
            bodies.add(new String(msg.getBody(), "UTF-8"));
        }
        Collector got = new Collector();
        Clients.collectingPush(a, a.group() + "_C", a.group() + "_C", MessageModel.CLUSTERING, "*", got);
        got.awaitCount(bodies.size(), RECEIVE_MS, "push consumer");
        got.checkExactly(bodies, "push consumer");
        for (MessageExt msg : got.messages()) {
            int index = Integer.parseInt(Clients.body(msg).substring("batch-".length()));
            Check.equal(result.getMessageQueue().getQueueId(), msg.getQueueId(), "queue of batch element " + index);
            Check.equal(result.getQueueOffset() + index, msg.getQueueOffset(), "offset of batch element " + index);
            Check.equal("batch-key-" + index, msg.getKeys(), "keys of batch element " + index);
            Check.equal(result.getMsgId().split(",")[index], msg.getMsgId(), "msgId of batch element " + index);
        }
        return msgs.size() + " messages in one batch, consumed in place";
    }

    /** Sends with a queue selector; an orderly push consumer sees each order's steps in sequence. */
    static String orderly(Args a) throws Exception {
        DefaultMQProducer producer = Clients.producer(a, a.group() + "_P");
        int orders = 4;
        int steps = Math.max(2, a.count() / orders);
        Map<Integer, Integer> queueOfOrder = new HashMap<>();
        for (int step = 0; step < steps; step++) {
            for (int order = 0; order < orders; order++) {
                Message msg = Clients.message(a.topic(), "TagA", "order-" + order, order + ":" + step);
                SendResult result = producer.send(msg, (mqs, m, arg) -> mqs.get((Integer) arg % mqs.size()), order);
                Clients.checkOk(result, "orderly send");
                Integer previous = queueOfOrder.put(order, result.getMessageQueue().getQueueId());
                Check.that(previous == null || previous == result.getMessageQueue().getQueueId(),
                    "order %d moved from queue %s to %d", order, previous, result.getMessageQueue().getQueueId());
            }
        }
        Collector got = new Collector();
        DefaultMQPushConsumer consumer = Clients.push(a, a.group() + "_C", a.group() + "_C", MessageModel.CLUSTERING, "*");
        consumer.registerMessageListener((MessageListenerOrderly) (msgs, context) -> {
            got.addAll(msgs);
            return ConsumeOrderlyStatus.SUCCESS;
        });
        consumer.start();
        got.awaitCount(orders * steps, RECEIVE_MS, "orderly push consumer");
        Map<Integer, Integer> lastStep = new HashMap<>();
        for (MessageExt msg : got.messages()) {
            String[] parts = Clients.body(msg).split(":");
            int order = Integer.parseInt(parts[0]);
            int step = Integer.parseInt(parts[1]);
            int expected = lastStep.getOrDefault(order, -1) + 1;
            Check.equal(expected, step, "next step of order " + order);
            lastStep.put(order, step);
            Check.equal(queueOfOrder.get(order), msg.getQueueId(), "queue of order " + order);
        }
        Check.equal(orders * steps, got.size(), "messages consumed in order");
        return orders + " orders x " + steps + " steps consumed in sequence";
    }

    /** Delay levels 1 (1 s) and 2 (5 s): delivered to the real topic, not before their time. */
    static String delay(Args a) throws Exception {
        DefaultMQProducer producer = Clients.producer(a, a.group() + "_P");
        int[] levels = {1, 2};
        long[] delays = {1000, 5000};
        Map<String, Long> minimumDelay = new HashMap<>();
        for (int i = 0; i < levels.length; i++) {
            for (int n = 0; n < 2; n++) {
                String body = "delay-L" + levels[i] + "-" + n;
                Message msg = Clients.message(a.topic(), "TagA", body, body);
                msg.setDelayTimeLevel(levels[i]);
                Clients.checkOk(producer.send(msg), "delayed send");
                minimumDelay.put(body, delays[i]);
            }
        }
        Collector got = new Collector();
        Clients.collectingPush(a, a.group() + "_C", a.group() + "_C", MessageModel.CLUSTERING, "*", got);
        got.awaitCount(minimumDelay.size(), RECEIVE_MS, "push consumer of delayed messages");
        got.checkExactly(minimumDelay.keySet(), "push consumer of delayed messages");
        List<MessageExt> msgs = got.messages();
        List<String> report = new ArrayList<>();
        for (int i = 0; i < msgs.size(); i++) {
            MessageExt msg = msgs.get(i);
            String body = Clients.body(msg);
            long waited = got.arrivalOf(i) - msg.getBornTimestamp();
            // The schedule service ticks every 100 ms and the store clock is the broker's;
            // allow 300 ms of slack but no early delivery beyond that.
            Check.that(waited >= minimumDelay.get(body) - 300, "%s arrived after %d ms, before its %d ms delay",
                body, waited, minimumDelay.get(body));
            Check.equal(a.topic(), msg.getTopic(), body + " topic");
            report.add(body + "=" + waited + "ms");
        }
        return "delayed deliveries " + report;
    }

    static Collection<MessageQueue> fetchQueuesEventually(DefaultLitePullConsumer consumer, String topic)
            throws Exception {
        long deadline = System.currentTimeMillis() + 10_000;
        while (true) {
            try {
                Collection<MessageQueue> queues = consumer.fetchMessageQueues(topic);
                if (!queues.isEmpty()) {
                    return queues;
                }
            } catch (Exception e) {
                if (System.currentTimeMillis() > deadline) {
                    throw e;
                }
            }
            Check.that(System.currentTimeMillis() <= deadline, "no queues for %s", topic);
            Thread.sleep(200);
        }
    }

    static Collector pollUntil(DefaultLitePullConsumer consumer, int count) {
        Collector got = new Collector();
        long deadline = System.currentTimeMillis() + RECEIVE_MS;
        while (got.size() < count && System.currentTimeMillis() < deadline) {
            got.addAll(consumer.poll(1000));
        }
        Check.that(got.size() >= count, "lite pull got %d of %d messages: %s", got.size(), count, got.bodies());
        return got;
    }
}
