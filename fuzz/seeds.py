#!/usr/bin/env python3
"""Writes each fuzz target's seed inputs, made from the project's own examples,
into fuzz/work/seeds/TARGET/ (run by fuzz/run.sh; the hand-made edge cases are
committed in fuzz/corpus/TARGET/ instead):

  signature     the spec's signature test vectors, and every fixture body
                (tests/fixtures/spec/**/*.json) as TIMESTAMP\\nauto\\nBODY
  decode        every fixture (tests/fixtures/spec/**/*.json)
  manifest      plugins/*.toml, and the TOML examples of docs/manifest.md
  config        the TOML examples of docs/configuration.md, platform.md, mcp.md
  allowed_host  the patterns of docs/manifest.md and allowed_hosts.rs's table,
                each followed by request URLs
"""
import glob, hashlib, json, os, re, shutil, sys

root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
out = os.path.join(root, 'fuzz', 'work', 'seeds')

def read(path):
    with open(os.path.join(root, path), 'rb') as f:
        return f.read()

def toml_blocks(doc):
    return [b.encode() for b in re.findall(r'```toml\n(.*?)```', read(doc).decode(), re.S)]

def write(target, seeds):
    folder = os.path.join(out, target)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for seed in seeds:
        name = hashlib.sha1(seed).hexdigest()
        with open(os.path.join(folder, name), 'wb') as f:
            f.write(seed)
    return len(seeds)

fixtures = sorted(glob.glob(os.path.join(root, 'tests/fixtures/spec/**/*.json'), recursive=True))
bodies = [open(p, 'rb').read() for p in fixtures]

vectors = json.loads(read('tests/fixtures/spec/signature-test-vectors.COMPUTED.json'))['vectors']
signature = []
for v in vectors:
    if 'raw_body' in v:
        body = v['raw_body'].encode()
    else:  # "fixtures/NAME.json (...)"
        body = read('tests/fixtures/spec/' + v['raw_body_file'].split()[0].split('/', 1)[1])
    ts = v['x_webhook_timestamp'].encode()
    signature.append(ts + b'\n' + v['x_webhook_signature'].encode() + b'\n' + body)
    signature.append(ts + b'\n' + v['hex'].encode() + b'\n' + body)
signature += [b'1700000000\nauto\n' + body for body in bodies]

manifests = [read(os.path.relpath(p, root)) for p in sorted(glob.glob(os.path.join(root, 'plugins/*.toml')))]
manifests += toml_blocks('docs/manifest.md')
# The example in the manifest module's documentation.
module_doc = read('src/plugins/manifest/mod.rs').decode()
example = re.search(r'//! ```toml\n(.*?)//! ```', module_doc, re.S)
if example:
    manifests.append(re.sub(r'^//! ?', '', example.group(1), flags=re.M).encode())

configs = toml_blocks('docs/configuration.md') + toml_blocks('docs/platform.md') + toml_blocks('docs/mcp.md')

patterns = set(re.findall(r'"(https?://[^"\s]*)"', read('docs/manifest.md').decode()))
patterns |= set(re.findall(r'`(https?://[^`\s]*)`', read('src/sandbox/capabilities/allowed_hosts.rs').decode()))
requests = [
    'https://api.example.com/v1/x', 'http://api.example.com:8080/', 'https://a.b.example.com',
    'https://calendar.example.com/v1', 'https://www.googleapis.com:443/x', 'http://127.0.0.1:8099/',
    'http://[::1]:8080/', 'http://calendar.internal:8080/', 'https://API.Example.COM./',
]
allowed_host = [(p + '\n' + '\n'.join(requests)).encode() for p in sorted(patterns)]

counts = {
    'signature': write('signature', signature),
    'decode': write('decode', bodies),
    'manifest': write('manifest', manifests),
    'config': write('config', configs),
    'allowed_host': write('allowed_host', allowed_host),
}
print('seeds:', ', '.join(f'{t} {n}' for t, n in counts.items()), file=sys.stderr)
