package compat;

import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.rocketmq.client.producer.LocalTransactionState;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.client.producer.TransactionListener;
import org.apache.rocketmq.client.producer.TransactionMQProducer;
import org.apache.rocketmq.client.producer.TransactionSendResult;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.protocol.heartbeat.MessageModel;

/**
 * Commit, rollback, and "unknown" resolved by the broker's check-back: consumers see the
 * committed and the checked-then-committed message, never the rolled-back one.
 */
final class Transactions {
    private Transactions() {}

    static String run(Args a) throws Exception {
        Map<String, Integer> checks = new ConcurrentHashMap<>();
        TransactionMQProducer producer = new TransactionMQProducer(a.group() + "_P");
        producer.setNamesrvAddr(a.namesrv());
        producer.setInstanceName(a.group() + "_P");
        producer.setTransactionListener(new TransactionListener() {
            @Override
            public LocalTransactionState executeLocalTransaction(Message msg, Object arg) {
                return LocalTransactionState.valueOf((String) arg);
            }

            @Override
            public LocalTransactionState checkLocalTransaction(MessageExt msg) {
                checks.merge(Clients.body(msg), 1, Integer::sum);
                return LocalTransactionState.COMMIT_MESSAGE;
            }
        });
        producer.start();
        for (LocalTransactionState state : LocalTransactionState.values()) {
            Message msg = Clients.message(a.topic(), "TagA", "tx-" + state, "tx-" + state);
            TransactionSendResult result = producer.sendMessageInTransaction(msg, state.name());
            // TransactionSendResult copies status, msgId, queue and offset but not offsetMsgId.
            Check.equal(SendStatus.SEND_OK, result.getSendStatus(), "half message " + state);
            Check.that(result.getMsgId() != null, "half message %s: no msgId", state);
            Check.equal(state, result.getLocalTransactionState(), "local state reported for " + state);
        }
        Collector got = new Collector();
        Clients.collectingPush(a, a.group() + "_C", a.group() + "_C", MessageModel.CLUSTERING, "*", got);
        // The unknown one waits for the broker's check: the compat brokers run with
        // transactionTimeOut=2000 and transactionCheckInterval=1000 (tests/compat/servers.py).
        got.awaitCount(2, 20_000, "transactional consumer");
        Thread.sleep(1000);
        got.checkExactly(Set.of("tx-COMMIT_MESSAGE", "tx-UNKNOW"), "transactional consumer");
        Check.that(checks.containsKey("tx-UNKNOW"), "the broker never checked the unknown transaction: %s", checks);
        Check.that(!checks.containsKey("tx-ROLLBACK_MESSAGE") && !checks.containsKey("tx-COMMIT_MESSAGE"),
            "the broker checked transactions that were already ended: %s", checks);
        for (MessageExt msg : got.messages()) {
            Check.equal(a.topic(), msg.getTopic(), "topic of " + Clients.body(msg));
        }
        return "commit delivered, rollback dropped, unknown checked " + checks.get("tx-UNKNOW") + "x then delivered";
    }
}
