#!/usr/bin/env node
// Tokenizer conformance: encodes every corpus file with rlfr (`rlfr tokenize`)
// and with the Hugging Face library (@anush008/tokenizers, the Rust `tokenizers`
// built for Node), requires identical ids, identical decoding, and
// decode(encode(x)) == x wherever the Hugging Face library round-trips.
//
//   node conformance.js RLFR TOKENIZER.json CORPUS_DIR TMP_DIR [--chat]
//
// Files are read as bytes: rlfr gets them raw, Node decodes them as UTF-8 with
// U+FFFD replacement (rlfr does the same to invalid input). Exit status 1 on
// any difference, with the first differing position of each case.
'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const { Tokenizer } = require('@anush008/tokenizers');

const SYSTEM = 'Please reason step by step, and put your final answer within \\boxed{}.';

function chatml(user) {
  return `<|im_start|>system\n${SYSTEM}<|im_end|>\n<|im_start|>user\n${user}<|im_end|>\n<|im_start|>assistant\n`;
}

function run(bin, args) {
  const r = spawnSync(bin, args, { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) {
    console.error(`FAIL: ${bin} ${args.slice(0, 4).join(' ')} ... exited ${r.status}: ${r.stderr}`);
    process.exit(1);
  }
  return r.stdout.split('\n').slice(0, -1);
}

function firstDiff(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

async function main() {
  const [bin, tokPath, corpusDir, tmpDir] = process.argv.slice(2);
  const chat = process.argv.includes('--chat');
  if (!bin || !tokPath || !corpusDir || !tmpDir) {
    console.error('usage: node conformance.js RLFR TOKENIZER.json CORPUS_DIR TMP_DIR [--chat]');
    process.exit(2);
  }
  const tok = Tokenizer.fromFile(tokPath);
  const files = fs.readdirSync(corpusDir).filter((f) => f.endsWith('.txt')).sort().map((f) => path.join(corpusDir, f));
  const texts = files.map((f) => fs.readFileSync(f).toString('utf8'));
  const args = [ 'tokenize', tokPath ].concat(chat ? [ '--chat' ] : [], [ '--files' ], files);
  const ours = run(bin, args).map((l) => (l.trim() === '' ? [] : l.trim().split(' ').map(Number)));
  if (ours.length !== files.length) {
    console.error(`FAIL: rlfr printed ${ours.length} lines for ${files.length} files`);
    process.exit(1);
  }
  fs.mkdirSync(tmpDir, { recursive: true });
  let failures = 0;
  const hfAll = [];
  const idFiles = [];
  for (let i = 0; i < files.length; i++) {
    const input = chat ? chatml(texts[i]) : texts[i];
    const enc = await tok.encode(input, null, { addSpecialTokens: true });
    const hf = Array.from(enc.getIds());
    hfAll.push(hf);
    const name = path.basename(files[i]);
    const d = firstDiff(hf, ours[i]);
    if (d !== hf.length || hf.length !== ours[i].length) {
      failures++;
      console.error(`FAIL ${name}: ids differ at ${d}: hf ${JSON.stringify(hf.slice(d, d + 8))} ` +
                    `rlfr ${JSON.stringify(ours[i].slice(d, d + 8))} (lengths ${hf.length} / ${ours[i].length})`);
    }
    const idf = path.join(tmpDir, `${i}.ids`);
    fs.writeFileSync(idf, hf.join(' '));
    idFiles.push(idf);
  }
  const decoded = run(bin, [ 'tokenize', tokPath, '--decode', '--files' ].concat(idFiles)).map((l) => JSON.parse(l));
  let roundTrips = 0;
  for (let i = 0; i < files.length; i++) {
    const name = path.basename(files[i]);
    const hfText = await tok.decode(hfAll[i], false);
    const input = chat ? chatml(texts[i]) : texts[i];
    if (decoded[i] !== hfText) {
      failures++;
      const d = firstDiff(hfText, decoded[i]);
      console.error(`FAIL ${name}: decode differs at char ${d}: hf ${JSON.stringify(hfText.slice(d, d + 20))} ` +
                    `rlfr ${JSON.stringify(decoded[i].slice(d, d + 20))}`);
    }
    if (hfText === input) {
      roundTrips++;
      if (decoded[i] !== input) {
        failures++;
        console.error(`FAIL ${name}: decode(encode(x)) != x in rlfr, while HF round-trips`);
      }
    }
  }
  const label = `${path.basename(tokPath)}${chat ? ' (chat template)' : ''}`;
  if (failures) {
    console.error(`${label}: ${failures} failure(s) over ${files.length} cases`);
    process.exit(1);
  }
  console.log(`${label}: ${files.length} cases identical to Hugging Face (${roundTrips} round-trip exactly)`);
}

main().catch((e) => { console.error(`FAIL: ${e.stack || e}`); process.exit(1); });
