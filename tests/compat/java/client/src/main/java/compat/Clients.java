package compat;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.apache.rocketmq.client.consumer.DefaultLitePullConsumer;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.protocol.heartbeat.MessageModel;
import org.apache.rocketmq.remoting.RPCHook;

/** Stock clients with the settings every program shares. */
final class Clients {
    private Clients() {}

    // Consumers are started after their topic exists; a 1 s route refresh still lets them catch
    // a topic that appears later instead of waiting the default 30 s.
    private static final int ROUTE_POLL_MS = 1000;

    static DefaultMQProducer producer(Args a, String group) throws Exception {
        return producer(a, group, null);
    }

    /** {@code hook}: an AclClientRPCHook for a broker with aclEnable=true, or null. */
    static DefaultMQProducer producer(Args a, String group, RPCHook hook) throws Exception {
        DefaultMQProducer producer = new DefaultMQProducer(group, hook);
        producer.setNamesrvAddr(a.namesrv());
        producer.setInstanceName(group);
        producer.setPollNameServerInterval(ROUTE_POLL_MS);
        producer.setSendMsgTimeout(10_000);
        producer.start();
        return producer;
    }

    static DefaultMQPushConsumer push(Args a, String group, String instance, MessageModel model,
                                      String expression) throws Exception {
        return push(a, group, instance, model, expression, null);
    }

    static DefaultMQPushConsumer push(Args a, String group, String instance, MessageModel model,
                                      String expression, RPCHook hook) throws Exception {
        DefaultMQPushConsumer consumer = new DefaultMQPushConsumer(null, group, hook);
        consumer.setNamesrvAddr(a.namesrv());
        consumer.setInstanceName(instance);
        consumer.setMessageModel(model);
        consumer.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        consumer.setPollNameServerInterval(ROUTE_POLL_MS);
        consumer.setPersistConsumerOffsetInterval(1000);
        consumer.subscribe(a.topic(), expression);
        return consumer;
    }

    /** A started clustering push consumer that records everything into {@code sink}. */
    static DefaultMQPushConsumer collectingPush(Args a, String group, String instance, MessageModel model,
                                                String expression, Collector sink) throws Exception {
        DefaultMQPushConsumer consumer = push(a, group, instance, model, expression);
        consumer.registerMessageListener((MessageListenerConcurrently) (msgs, context) -> {
            sink.addAll(msgs);
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        consumer.start();
        return consumer;
    }

    static DefaultLitePullConsumer litePull(Args a, String group) {
        DefaultLitePullConsumer consumer = new DefaultLitePullConsumer(group);
        consumer.setNamesrvAddr(a.namesrv());
        consumer.setInstanceName(group);
        consumer.setPollNameServerInterval(ROUTE_POLL_MS);
        consumer.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        consumer.setAutoCommit(true);
        return consumer;
    }

    static Message message(String topic, String tag, String key, String body) {
        Message msg = new Message(topic, tag, body.getBytes(StandardCharsets.UTF_8));
        if (key != null) {
            msg.setKeys(key);
        }
        return msg;
    }

    static List<Message> numbered(String topic, String tag, String prefix, int count) {
        List<Message> out = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            out.add(message(topic, tag, prefix + "-key-" + i, prefix + "-" + i));
        }
        return out;
    }

    static void checkOk(SendResult result, String what) {
        Check.that(result != null, "%s: no SendResult", what);
        Check.equal(SendStatus.SEND_OK, result.getSendStatus(), what + " send status");
        Check.that(result.getMsgId() != null && !result.getMsgId().isEmpty(), "%s: empty msgId", what);
        Check.that(result.getOffsetMsgId() != null && result.getOffsetMsgId().matches("[0-9A-F]{32}(,[0-9A-F]{32})*"),
            "%s: offsetMsgId %s is not upper-case hex ids", what, result.getOffsetMsgId());
        Check.that(result.getQueueOffset() >= 0, "%s: negative queue offset %d", what, result.getQueueOffset());
    }

    static String body(org.apache.rocketmq.common.message.MessageExt msg) {
        return new String(msg.getBody(), StandardCharsets.UTF_8);
    }
}
