package compat;

import com.alibaba.fastjson.JSON;
import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.protocol.heartbeat.MessageModel;
import org.apache.rocketmq.tools.command.MQAdminStartup;

/**
 * Runs mqadmin ({@link MQAdminStartup#main0}, the real entry point) once per stdin line, in one
 * JVM, after setting up the state the commands report on:
 *
 * <ul>
 *   <li>producer group {@code <group>_P} online, having sent 10 messages with key {@code <group>-K1}
 *       then 5 with key {@code <group>-K2} to {@code --topic};
 *   <li>consumer group {@code <group>_LAG} consumed the first 10 and went offline (lag 5);
 *   <li>consumer group {@code <group>_ON} online, subscribed to the topic.
 * </ul>
 *
 * <p>Each stdin line is one command, arguments separated by tabs; {@code {msgId}} and
 * {@code {offsetMsgId}} stand for the ids of the first message. Each command's stdout and
 * stderr are printed as one JSON line {@code {"args":[...],"out":"...","err":"..."}}.
 */
final class AdminBatch {
    private AdminBatch() {}

    static String run(Args a) throws Exception {
        Map<String, String> ids = setUp(a);
        System.out.println("SETUP " + JSON.toJSONString(ids));
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PrintStream realOut = System.out;
        PrintStream realErr = System.err;
        int commands = 0;
        for (String line; (line = in.readLine()) != null; ) {
            if (line.isBlank()) {
                continue;
            }
            for (Map.Entry<String, String> id : ids.entrySet()) {
                line = line.replace("{" + id.getKey() + "}", id.getValue());
            }
            String[] argv = line.split("\t");
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            ByteArrayOutputStream err = new ByteArrayOutputStream();
            try (PrintStream capturedOut = new PrintStream(out, true, StandardCharsets.UTF_8);
                 PrintStream capturedErr = new PrintStream(err, true, StandardCharsets.UTF_8)) {
                System.setOut(capturedOut);
                System.setErr(capturedErr);
                MQAdminStartup.main0(argv, null);
            } catch (Throwable e) {
                e.printStackTrace(new PrintStream(err, true, StandardCharsets.UTF_8));
            } finally {
                System.setOut(realOut);
                System.setErr(realErr);
            }
            Map<String, Object> result = new LinkedHashMap<>();
            result.put("args", Arrays.asList(argv));
            result.put("out", out.toString(StandardCharsets.UTF_8));
            result.put("err", err.toString(StandardCharsets.UTF_8));
            realOut.println(JSON.toJSONString(result));
            realOut.flush();
            commands++;
        }
        return commands + " mqadmin commands run";
    }

    private static Map<String, String> setUp(Args a) throws Exception {
        DefaultMQProducer producer = Clients.producer(a, a.group() + "_P");
        List<SendResult> first = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            SendResult result = producer.send(Clients.message(a.topic(), "TagA", a.group() + "-K1", "first-" + i));
            Clients.checkOk(result, "first send");
            first.add(result);
        }
        Collector lagged = new Collector();
        DefaultMQPushConsumer lagGroup = Clients.collectingPush(
            a, a.group() + "_LAG", a.group() + "_LAG", MessageModel.CLUSTERING, "*", lagged);
        lagged.awaitCount(10, 30_000, "lag group");
        // Offsets reach the broker with the next pull and the 1 s persist timer; give both a turn
        // so consumerProgress sees the consumed 10, then leave the group.
        Thread.sleep(2500);
        lagGroup.shutdown();
        for (int i = 0; i < 5; i++) {
            Clients.checkOk(producer.send(Clients.message(a.topic(), "TagB", a.group() + "-K2", "second-" + i)),
                "second send");
        }
        Collector online = new Collector();
        Clients.collectingPush(a, a.group() + "_ON", a.group() + "_ON", MessageModel.CLUSTERING, "*", online);
        online.awaitCount(15, 30_000, "online group");
        // The producer's start-up heartbeat went out before it knew any broker.
        producer.getDefaultMQProducerImpl().getmQClientFactory().sendHeartbeatToAllBrokerWithLock();
        Map<String, String> ids = new LinkedHashMap<>();
        ids.put("msgId", first.get(0).getMsgId());
        ids.put("offsetMsgId", first.get(0).getOffsetMsgId());
        ids.put("producerClientId", producer.buildMQClientId());
        return ids;
    }
}
