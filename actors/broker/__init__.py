"""The broker: request handlers, client tables, long polling and its supervision tree."""
