#!/usr/bin/env node
// The reference side of bench/tokenizer/run.sh: Hugging Face `tokenizers`
// (@anush008/tokenizers) encoding CORPUS on one thread, in the same 64 KiB
// newline-cut chunks as bench_tokenizer.c, best of REPEAT passes.
//   node hf_bench.js TOKENIZER.json CORPUS [REPEAT]
// Prints: reference load_s=X encode_mb_s=Y encode_cpu_mb_s=Z tokens=N bytes=B
// (the CPU figure counts every thread of the process: Node's main thread too)
'use strict';
process.env.RAYON_NUM_THREADS = '1';
process.env.TOKENIZERS_PARALLELISM = 'false';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require(path.join(__dirname, '../../tests/tokenizer/node_modules/@anush008/tokenizers'));

async function main() {
  const [tokPath, corpus, rep] = process.argv.slice(2);
  const repeat = Math.max(1, Number(rep || 3));
  const buf = fs.readFileSync(corpus);
  const chunks = [];
  for (let off = 0; off < buf.length;) {
    let end = Math.min(off + 65536, buf.length);
    while (end < buf.length && buf[end - 1] !== 0x0a) end++;
    chunks.push(buf.subarray(off, end).toString('utf8'));
    off = end;
  }
  const t0 = process.hrtime.bigint();
  const tok = Tokenizer.fromFile(tokPath);
  const load = Number(process.hrtime.bigint() - t0) / 1e9;
  let best = Infinity, bestCpu = Infinity, tokens = 0;
  for (let r = 0; r < repeat; r++) {
    tokens = 0;
    const s = process.hrtime.bigint();
    const cs = process.cpuUsage();
    for (const c of chunks) {
      const enc = await tok.encode(c, null, { addSpecialTokens: false });
      tokens += enc.getIds().length;
    }
    best = Math.min(best, Number(process.hrtime.bigint() - s) / 1e9);
    const c = process.cpuUsage(cs);
    bestCpu = Math.min(bestCpu, (c.user + c.system) / 1e6);
  }
  console.log(`reference load_s=${load.toFixed(3)} encode_mb_s=${(buf.length / 1e6 / best).toFixed(2)} ` +
              `encode_cpu_mb_s=${(buf.length / 1e6 / bestCpu).toFixed(2)} tokens=${tokens} bytes=${buf.length}`);
}
main().catch((e) => { console.error(`error: ${e.stack || e}`); process.exit(1); });
