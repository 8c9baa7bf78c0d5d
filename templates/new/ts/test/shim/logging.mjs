// Stub of wasi:logging/logging: records go to `records` (and stderr).
export const records = [];

export function log(level, context, message) {
  records.push({ level, context, message });
  console.error(`[${level}] ${context}: ${message}`);
}
