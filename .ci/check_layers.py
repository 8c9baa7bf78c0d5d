"""Checks the shape of src/: no two files import each other, and each layer
(a top-level folder) imports only the layers below it:

    app.rs > doors/ > core/ > plugins/ > sandbox/ > types.rs

Run by .ci/run; prints each violation and exits 1 if there is one."""
import os, re, sys, itertools
root = sys.argv[1] if len(sys.argv) > 1 else 'src'
files = {}
for d, _, fs in os.walk(root):
    for f in fs:
        if f.endswith('.rs'):
            p = os.path.join(d, f)
            rel = os.path.relpath(p, root)
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ('mod', 'lib', 'main'):
                parts = parts[:-1]
            files[tuple(parts)] = p
def resolve(mod, path):
    # longest prefix of path that is a module file
    for n in range(len(path), 0, -1):
        if tuple(path[:n]) in files:
            return tuple(path[:n])
    return None
edges = {}
for mod, p in files.items():
    text = open(p).read()
    # drop comments
    text = re.sub(r'//[^\n]*', '', text)
    # cut #[cfg(test)] mod tests {...} at end (approx: from '#[cfg(test)]\nmod tests' to end)
    i = text.find('#[cfg(test)]\nmod tests')
    if i >= 0: text = text[:i]
    is_dir_mod = p.endswith('mod.rs') or p.endswith('lib.rs') or p.endswith('main.rs')
    children = set(re.findall(r'\bmod\s+(\w+)\s*;', text))
    deps = set()
    # expand use-trees: collect paths like crate::a::b, super::a, self::a, child::a
    for m in re.finditer(r'\b(crate|super|self|\w+)((?:::\w+)+)', text):
        head, rest = m.group(1), [x for x in m.group(2).split('::') if x]
        if head == 'crate': path = rest
        elif head == 'super':
            path = list(mod[:-1]) + rest
        elif head == 'self':
            path = list(mod) + rest
        elif head in children:
            path = list(mod) + [head] + rest
        else:
            continue
        r = resolve(mod, path)
        if r is not None and r != mod:
            deps.add(r)
    # `use super::{A, B}` -> parent module (and its children named in the braces resolve above)
    for m in re.finditer(r'use\s+super::\{', text):
        r = resolve(mod, list(mod[:-1])) if mod else None
        if r is not None and r != mod: deps.add(r)
    edges[mod] = deps
LAYERS = ['types', 'sandbox', 'plugins', 'core', 'doors', 'app']
def layer(mod):
    return LAYERS.index(mod[0]) if mod and mod[0] in LAYERS else None
bad = 0
for a, ds in edges.items():
    for b in ds:
        la, lb = layer(a), layer(b)
        if la is not None and lb is not None and lb > la:
            print('layering:', files[a], 'imports', files[b], '(a layer above it)'); bad += 1
for a, ds in edges.items():
    for b in ds:
        if a < b and a in edges.get(b, ()):
            print('circle:', files[a], '<->', files[b]); bad += 1
sys.exit(1 if bad else 0)
