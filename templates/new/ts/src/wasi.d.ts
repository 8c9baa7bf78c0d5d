// The host interfaces of the WIT world `tool-plugin`, as componentize-js
// presents them: imports as modules, and the engine's globals.

/** The world's imports, as modules. */
declare module 'wasi:config/store@0.2.0-rc.1' {
  /** A `[config]` value or `[secrets]` entry of the manifest, or undefined. Throws on a host failure. */
  export function get(key: string): string | undefined;
  /** Every value the plugin may read, as [key, value] pairs. */
  export function getAll(): Array<[string, string]>;
}

declare module 'wasi:logging/logging@0.1.0-draft' {
  export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'critical';
  /** A record in Switchboard's log, tagged with the plugin, tool and call. */
  export function log(level: Level, context: string, message: string): void;
}

/** The engine's console: its lines go to Switchboard's log. */
declare const console: {
  log(...data: unknown[]): void;
  info(...data: unknown[]): void;
  warn(...data: unknown[]): void;
  error(...data: unknown[]): void;
};
declare function fetch(input: string, init?: { method?: string; headers?: Record<string, string>; body?: string }): Promise<{
  ok: boolean;
  status: number;
  headers: { get(name: string): string | null };
  text(): Promise<string>;
  json(): Promise<unknown>;
}>;
