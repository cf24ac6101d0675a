#!/usr/bin/env python3
"""Writes the tokenizer benchmark corpus to stdout: about TARGET_MB of mixed text
(math problems and solutions from the shared eval sets, the project's docs and
C sources, the conformance corpus), paragraphs shuffled with a fixed seed and
repeated until the size is reached. Usage: make_corpus.py SOURCE_DIR [TARGET_MB]"""
import glob
import json
import os
import random
import sys

src = sys.argv[1]
target = int(float(sys.argv[2] if len(sys.argv) > 2 else 4) * 1e6)
paras = []
eval_dir = os.path.join(src, "..", "shared", "data", "eval")
for path in sorted(glob.glob(os.path.join(eval_dir, "*.jsonl"))):
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            for key in ("problem", "solution", "answer"):
                if isinstance(row.get(key), str):
                    paras.append(row[key])
patterns = ["docs/*.md", "runtime/*.c", "runtime/*.h", "nodes/*.c", "dsl/*.c", "dsl/*.lua", "tests/tokenizer/corpus/*.txt"]
for pat in patterns:
    for path in sorted(glob.glob(os.path.join(src, pat))):
        with open(path, encoding="utf-8", errors="replace") as f:
            paras.extend(p for p in f.read().split("\n\n") if p.strip())
if not paras:
    sys.exit("no text found under " + src)
rng = random.Random(1234)
out, size = [], 0
while size < target:
    rng.shuffle(paras)
    for p in paras:
        out.append(p)
        size += len(p.encode("utf-8")) + 2
        if size >= target:
            break
sys.stdout.write("\n\n".join(out) + "\n")
