// __NAME__: a Switchboard tool plugin in JavaScript.
//
// componentize-js (./build.sh) embeds this module in a JavaScript engine and
// makes it a WebAssembly component of the WIT world `tool-plugin` (wit/): it
// exports `tools`, with `list` and `call`. `npm test` runs it in Node.
//
// console.log and console.error lines go to Switchboard's log, tagged with
// the plugin and the call (and show in `switchboard call`'s output).
// Host interfaces are imported like modules, e.g.
//   import { get } from 'wasi:config/store@0.2.0-rc.1';   // the manifest's [config]
// and `fetch` reaches the hosts the manifest's [http] allowed_hosts grants.

// The JSON Schema of the arguments. Switchboard checks every call against it
// before the plugin runs, and the LLM reads its descriptions.
export const SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string', description: 'Who to greet, e.g. "Ada"' },
  },
  required: ['name'],
  additionalProperties: false,
};

// The WIT variant `tool-error`: throw one of these to fail a call with a
// message the LLM reads. Anything else thrown makes the call crash.
const invalidArguments = (message) => ({ tag: 'invalid-arguments', val: message });
const notFound = (message) => ({ tag: 'not-found', val: message });

function greet({ name }) {
  if (name.trim() === '') throw invalidArguments('`name` must not be empty');
  return { message: `Hello, ${name}!` };
}

export const tools = {
  // The tools this plugin offers: name, description for the LLM, and the
  // JSON Schema of the arguments as a string (`parametersSchema`).
  list() {
    return [
      {
        name: '__NAME__',
        description: 'Greets someone by name.',
        parametersSchema: JSON.stringify(SCHEMA),
      },
    ];
  },

  // `call` may be async. `context` is the call-context record: callId,
  // callType, toolCallId, customerNumber, phoneNumber, assistantMetadata,
  // deadlineMs.
  call(name, argumentsJson, context) {
    const args = JSON.parse(argumentsJson);
    switch (name) {
      case '__NAME__':
        console.log(`greeting ${args.name} (call ${context.callId})`);
        return JSON.stringify(greet(args));
      default:
        throw notFound(`unknown tool: ${name}`);
    }
  },
};
