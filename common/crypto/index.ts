export * from "./canonical";
export * from "./fields";
export * from "./keys";
export * from "./labels";
export * from "./release";
export * from "./tscs";
export * from "./call-fields";
export * from "./secrets";
