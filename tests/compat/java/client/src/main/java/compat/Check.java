package compat;

/** Assertions that survive without {@code -ea} and end the program with a readable reason. */
final class Check {
    private Check() {}

    static final class Failure extends RuntimeException {
        Failure(String message) {
            super(message);
        }
    }

    static void that(boolean condition, String format, Object... args) {
        if (!condition) {
            throw new Failure(String.format(format, args));
        }
    }

    static void equal(Object expected, Object actual, String what) {
        if (expected == null ? actual != null : !expected.equals(actual)) {
            throw new Failure(what + ": expected <" + expected + "> but was <" + actual + ">");
        }
    }
}
