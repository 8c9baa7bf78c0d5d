// Node module hooks: `wasi:config/store@...` and `wasi:logging/logging@...`
// resolve to the stubs beside this file. A test imports the same specifier to
// reach a stub, e.g. to set a [config] value:
//   import { values } from 'wasi:config/store@0.2.0-rc.1';  values.set('key', 'v');
// Another interface needs a stub of its own here (Node's global fetch already
// stands in for wasi:http).
const STUBS = {
  'wasi:config/store': './config.mjs',
  'wasi:logging/logging': './logging.mjs',
};

export async function resolve(specifier, context, next) {
  if (specifier.startsWith('wasi:')) {
    const stub = STUBS[specifier.split('@')[0]];
    if (!stub) throw new Error(`no stub for ${specifier}: add one to test/shim/hooks.mjs`);
    return { url: new URL(stub, import.meta.url).href, shortCircuit: true };
  }
  return next(specifier, context);
}
