// Loaded by `node --import` (npm test): resolves the `wasi:*` imports of the
// plugin to the stubs of this folder.
import { register } from 'node:module';

register('./hooks.mjs', import.meta.url);
