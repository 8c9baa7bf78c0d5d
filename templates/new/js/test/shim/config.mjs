// Stub of wasi:config/store: the plugin's [config] values and [secrets],
// which a test sets in `values`.
export const values = new Map();

export function get(key) {
  return values.get(key);
}

export function getAll() {
  return [...values.entries()];
}
