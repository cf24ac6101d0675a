#!/usr/bin/env node
// Derives tokenizer.json variants from one trained by rlfr, to cover what the
// Qwen file does not use: ByteLevel with use_regex and add_prefix_space,
// TemplateProcessing, added tokens with lstrip/rstrip/single_word/normalized,
// merges in [a, b] form, every Split behavior (and invert, a String pattern),
// a Sequence of normalizers.   node variants.js TRAINED.json OUT_DIR
'use strict';
const fs = require('fs');
const path = require('path');

const [src, outDir] = process.argv.slice(2);
const base = JSON.parse(fs.readFileSync(src, 'utf8'));
const n = Object.keys(base.model.vocab).length;
const bl = (prefix, regex) => ({ type: 'ByteLevel', add_prefix_space: prefix, trim_offsets: false, use_regex: regex });

const a = JSON.parse(JSON.stringify(base));
a.normalizer = null;
a.pre_tokenizer = bl(true, true);
a.added_tokens.push(
  { id: n, content: '<x>', single_word: false, lstrip: true, rstrip: true, normalized: false, special: true },
  { id: n + 1, content: 'abc', single_word: true, lstrip: false, rstrip: false, normalized: true, special: false },
  { id: n + 2, content: '中文', single_word: false, lstrip: false, rstrip: true, normalized: true, special: false });
const st = (id) => ({ SpecialToken: { id, type_id: 0 } });
a.post_processor = {
  type: 'TemplateProcessing',
  single: [ st('<|im_start|>'), { Sequence: { id: 'A', type_id: 0 } }, st('<|endoftext|>') ],
  pair: [ { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } } ],
  special_tokens: {
    '<|im_start|>': { id: '<|im_start|>', ids: [ base.added_tokens[1].id ], tokens: [ '<|im_start|>' ] },
    '<|endoftext|>': { id: '<|endoftext|>', ids: [ base.added_tokens[0].id ], tokens: [ '<|endoftext|>' ] },
  },
};
a.model.merges = a.model.merges.map((m) => m.split(' '));
fs.writeFileSync(path.join(outDir, 'gpt2_style.json'), JSON.stringify(a));

const b = JSON.parse(JSON.stringify(a));
const split = (pattern, behavior, invert) => ({ type: 'Split', pattern, behavior, invert });
b.pre_tokenizer = { type: 'Sequence', pretokenizers: [
  split({ String: ' ' }, 'MergedWithNext', false),
  split({ Regex: '\\d' }, 'MergedWithPrevious', false),
  split({ Regex: '[a-z]+' }, 'Contiguous', true),
  split({ Regex: '!' }, 'Removed', false),
  bl(false, false) ] };
b.normalizer = { type: 'Sequence', normalizers: [ { type: 'NFKD' }, { type: 'NFC' } ] };
fs.writeFileSync(path.join(outDir, 'split_behaviors.json'), JSON.stringify(b));
