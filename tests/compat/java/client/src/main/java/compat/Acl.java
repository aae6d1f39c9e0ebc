package compat;

import java.util.HashSet;
import java.util.Set;
import org.apache.rocketmq.acl.common.AclClientRPCHook;
import org.apache.rocketmq.acl.common.SessionCredentials;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.exception.MQBrokerException;
import org.apache.rocketmq.client.exception.MQClientException;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.protocol.heartbeat.MessageModel;
import org.apache.rocketmq.remoting.RPCHook;

/** The client with Apache's AclClientRPCHook against a broker with aclEnable=true. */
final class Acl {
    private Acl() {}

    private static final long RECEIVE_MS = 30_000;

    /** {@code --access-key/--secret-key}: the hook; without them no hook at all. */
    static RPCHook hook(Args a) {
        String accessKey = a.str("access-key", null);
        if (accessKey == null) {
            return null;
        }
        return new AclClientRPCHook(new SessionCredentials(accessKey, a.str("secret-key")));
    }

    /** With the account's keys: sync sends, and a signing push consumer gets every message. */
    static String allowed(Args a) throws Exception {
        RPCHook hook = hook(a);
        Check.that(hook != null, "acl-allowed needs --access-key and --secret-key");
        DefaultMQProducer producer = Clients.producer(a, a.group() + "_P", hook);
        Set<String> sent = new HashSet<>();
        for (Message msg : Clients.numbered(a.topic(), "TagA", "acl", a.count())) {
            Clients.checkOk(producer.send(msg), "signed send");
            sent.add(new String(msg.getBody(), "UTF-8"));
        }
        Collector got = new Collector();
        DefaultMQPushConsumer consumer = Clients.push(a, a.group() + "_C", a.group() + "_C",
            MessageModel.CLUSTERING, "*", hook);
        consumer.registerMessageListener((MessageListenerConcurrently) (msgs, context) -> {
            got.addAll(msgs);
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        consumer.start();
        got.awaitCount(sent.size(), RECEIVE_MS, "signed push consumer");
        got.checkExactly(sent, "signed push consumer");
        return sent.size() + " signed sends consumed by a signed push consumer";
    }

    /** Without keys or with wrong ones: a send fails with the broker's code {@code --expect-code}. */
    static String refused(Args a) throws Exception {
        int expected = a.integer("expect-code", 16);
        DefaultMQProducer producer = Clients.producer(a, a.group() + "_P", hook(a));
        int code;
        String remark;
        try {
            producer.send(Clients.message(a.topic(), "TagA", null, "refused"));
            throw new Check.Failure("the send was accepted");
        } catch (MQBrokerException e) {
            code = e.getResponseCode();
            remark = e.getErrorMessage();
        } catch (MQClientException e) {
            code = e.getResponseCode();
            Throwable cause = e.getCause();
            remark = cause instanceof MQBrokerException ? ((MQBrokerException) cause).getErrorMessage()
                : e.getErrorMessage();
        }
        Check.equal(expected, code, "response code of the refused send");
        return "refused with code " + code + ": " + remark;
    }
}
