package compat;

import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.nio.charset.StandardCharsets;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageDecoder;

/**
 * Sends without end for scripts/failover_time.py, which kills the master meanwhile and reads
 * this program's stdout: {@code OK <epoch ms> <broker addr>} when a send succeeds through
 * another broker than the last success, after failures, and at least once a second while
 * sends succeed; {@code ERR <epoch ms> <reason>} at the first failure after a success. The
 * broker address is the one in the reply's offsetMsgId (where the message was stored).
 *
 * <p>Options: {@code --poll <ms>} the producer's pollNameServerInterval (Java's default 30000),
 * {@code --interval <ms>} pause between sends (default 10), {@code --timeout <s>}.
 */
final class FailoverProbe {
    private FailoverProbe() {}

    static String run(Args a) throws Exception {
        DefaultMQProducer producer = new DefaultMQProducer(a.group() + "_P");
        producer.setNamesrvAddr(a.namesrv());
        producer.setInstanceName(a.group());
        producer.setPollNameServerInterval(a.integer("poll", 30_000));
        producer.setSendMsgTimeout(2_000);
        producer.start();
        int interval = a.integer("interval", 10);
        String lastAddr = null;
        boolean failing = true;
        long lastPrinted = 0;
        byte[] body = "failover-probe".getBytes(StandardCharsets.UTF_8);
        while (true) {
            long now;
            try {
                SendResult r = producer.send(new Message(a.topic(), body));
                now = System.currentTimeMillis();
                if (r.getSendStatus() != SendStatus.SEND_OK) {
                    throw new IllegalStateException(r.getSendStatus().toString());
                }
                String addr = address(MessageDecoder.decodeMessageId(r.getOffsetMsgId()).getAddress());
                if (failing || !addr.equals(lastAddr) || now - lastPrinted >= 1000) {
                    System.out.println("OK " + now + " " + addr);
                    System.out.flush();
                    lastPrinted = now;
                }
                lastAddr = addr;
                failing = false;
            } catch (Exception e) {
                now = System.currentTimeMillis();
                if (!failing) {
                    String reason = String.valueOf(e.getMessage()).replace('\n', ' ');
                    System.out.println("ERR " + now + " " + reason.substring(0, Math.min(120, reason.length())));
                    System.out.flush();
                }
                failing = true;
            }
            Thread.sleep(interval);
        }
    }

    private static String address(SocketAddress sa) {
        InetSocketAddress inet = (InetSocketAddress) sa;
        return inet.getAddress().getHostAddress() + ":" + inet.getPort();
    }
}
