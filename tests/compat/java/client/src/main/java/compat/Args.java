package compat;

import java.util.HashMap;
import java.util.Map;

/** {@code --key value} pairs; a missing required key is a usage failure, not a NullPointerException. */
final class Args {
    private final Map<String, String> values;

    private Args(Map<String, String> values) {
        this.values = values;
    }

    static Args parse(String[] argv) {
        Map<String, String> values = new HashMap<>();
        for (int i = 0; i < argv.length; i += 2) {
            if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
                throw new IllegalArgumentException("expected --key value pairs, got " + String.join(" ", argv));
            }
            values.put(argv[i].substring(2), argv[i + 1]);
        }
        return new Args(values);
    }

    String str(String key) {
        String value = values.get(key);
        if (value == null) {
            throw new Check.Failure("missing required argument --" + key);
        }
        return value;
    }

    String str(String key, String fallback) {
        return values.getOrDefault(key, fallback);
    }

    int integer(String key, int fallback) {
        String value = values.get(key);
        return value == null ? fallback : Integer.parseInt(value);
    }

    String namesrv() {
        return str("namesrv");
    }

    String topic() {
        return str("topic");
    }

    /** Base name for this run's groups: producer {@code <group>_P}, consumers {@code <group>_C...}. */
    String group() {
        return str("group");
    }

    int count() {
        return integer("count", 16);
    }
}
