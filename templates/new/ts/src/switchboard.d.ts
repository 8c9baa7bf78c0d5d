// Type definitions of the WIT world `tool-plugin` (wit/world.wit) as
// componentize-js presents it to JavaScript: records are objects with
// camelCase fields, `option<T>` is `T | undefined`, a `result` error is
// thrown, and variants are `{ tag, val }`.

/** Where a tool call comes from, taken from the webhook envelope. */
export interface CallContext {
  /** The platform's id of the phone call. */
  callId: string;
  /** `inbound_phone_call`, `outbound_phone_call`, `web_call` (or `mcp`). */
  callType: string;
  /** The id the platform gave this tool call; unique per call attempt. */
  toolCallId: string;
  /** The caller (or callee) number in E.164; absent on web calls. */
  customerNumber?: string;
  /** The platform number the call came in on; absent on web calls. */
  phoneNumber?: string;
  /** The assistant's custom `metadata`, as JSON, when the platform sends it. */
  assistantMetadata?: string;
  /** Milliseconds left before Switchboard must answer this call. */
  deadlineMs: number;
}

/** One tool as the LLM will see it. */
export interface ToolDefinition {
  /** The function name the LLM calls. */
  name: string;
  /** What the tool does, written for the LLM. */
  description: string;
  /** JSON Schema (as a JSON string) of the tool's arguments object. */
  parametersSchema: string;
}

/** Why a call failed, worded for the LLM to read: throw one. */
export type ToolError =
  | { tag: 'invalid-arguments'; val: string }
  | { tag: 'not-found'; val: string }
  | { tag: 'failed'; val: string };

/** The `tools` export of the world. */
export interface Tools {
  /** The tools this plugin offers. Called once when the plugin is loaded. */
  list(): ToolDefinition[];
  /** Run tool `name` with `argumentsJson`; returns the result as JSON text. May be async. */
  call(name: string, argumentsJson: string, context: CallContext): string | Promise<string>;
}
