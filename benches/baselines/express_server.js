// Baseline: the echo tool as the platform's Express example handler does it.
//
// Verifies X-Webhook-Signature on the raw body (express.raw), HMAC-SHA256 over
// `timestamp + "." + body`, constant-time compare, 300 s window; parses the
// envelope; answers {"results":[{"tool_call_id", "result": {"echo": args}}]}.
//
//   SWITCHBOARD_SECRET=... node express_server.js PORT [--cluster]
//
// --cluster forks one worker per core (node:cluster), as Express apps are
// deployed for production on one machine.
'use strict';
const cluster = require('node:cluster');
const crypto = require('node:crypto');
const os = require('node:os');
const express = require('express');

const port = Number(process.argv.slice(2).find((a) => !a.startsWith('--')) || 8091);
const useCluster = process.argv.includes('--cluster');
const secret = process.env.SWITCHBOARD_SECRET;
if (!secret) {
  console.error('set SWITCHBOARD_SECRET');
  process.exit(2);
}

function verify(req) {
  const timestamp = req.get('x-webhook-timestamp');
  const signature = req.get('x-webhook-signature');
  if (!timestamp || !signature) return false;
  if (!/^\d+$/.test(timestamp)) return false;
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > 300) return false;
  const expected = crypto
    .createHmac('sha256', secret)
    .update(timestamp + '.')
    .update(req.body)
    .digest('hex');
  const given = signature.replace(/^sha256=/, '');
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

function serve() {
  const app = express();
  app.post('/webhook', express.raw({ type: 'application/json', limit: '1mb' }), (req, res) => {
    if (!Buffer.isBuffer(req.body) || !verify(req)) {
      return res.status(401).json({ error: 'invalid signature' });
    }
    let message;
    try {
      ({ message } = JSON.parse(req.body));
    } catch (e) {
      return res.status(400).json({ error: 'invalid JSON' });
    }
    if (!message || message.type !== 'tool-calls') return res.json({});
    const results = (message.tool_call_list || []).map((call) => {
      let args = call.function.arguments;
      if (typeof args === 'string') args = JSON.parse(args);
      return { tool_call_id: call.id, result: { echo: args } };
    });
    res.json({ results });
  });
  app.get('/healthz', (req, res) => res.send('ok'));
  app.listen(port, '127.0.0.1');
}

if (useCluster && cluster.isPrimary) {
  const workers = os.availableParallelism ? os.availableParallelism() : os.cpus().length;
  for (let i = 0; i < workers; i++) cluster.fork();
  const stop = () => {
    for (const id in cluster.workers) cluster.workers[id].kill();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  serve();
}
