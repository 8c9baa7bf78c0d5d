// __NAME__: a Switchboard tool plugin in TypeScript.
//
// ./build.sh compiles it with tsc into build/index.js, which componentize-js
// embeds in a JavaScript engine as a WebAssembly component of the WIT world
// `tool-plugin` (wit/). Its types are in switchboard.d.ts. `npm test` runs
// the compiled module in Node.
//
// console.log lines go to Switchboard's log (and show in `switchboard call`).

import type { CallContext, ToolDefinition, ToolError, Tools } from './switchboard.js';

/** The arguments of `__NAME__`. */
interface Arguments {
  name: string;
}

/** What `__NAME__` answers. */
interface Greeting {
  message: string;
}

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

const invalidArguments = (message: string): ToolError => ({ tag: 'invalid-arguments', val: message });
const notFound = (message: string): ToolError => ({ tag: 'not-found', val: message });

function greet({ name }: Arguments): Greeting {
  if (name.trim() === '') throw invalidArguments('`name` must not be empty');
  return { message: `Hello, ${name}!` };
}

export const tools: Tools = {
  list(): ToolDefinition[] {
    return [{ name: '__NAME__', description: 'Greets someone by name.', parametersSchema: JSON.stringify(SCHEMA) }];
  },

  call(name: string, argumentsJson: string, context: CallContext): string {
    switch (name) {
      case '__NAME__': {
        const args = JSON.parse(argumentsJson) as Arguments;
        console.log(`greeting ${args.name} (call ${context.callId})`);
        return JSON.stringify(greet(args));
      }
      default:
        throw notFound(`unknown tool: ${name}`);
    }
  },
};
