// The redis-server launcher lives with the local tooling (the benchmark uses it too).
export * from "../../cli/redis-server";
