// Reads a TF.js weights manifest and its shard files and writes every tensor,
// de-quantised to float32 little endian, in manifest order:
//   OUT.f32  the values
//   OUT.txt  one line per tensor: name dim0 dim1 ...
// usage: node dequant.js MANIFEST.json OUT
'use strict';
const fs = require('fs');
const path = require('path');

const [manifestPath, out] = process.argv.slice(2);
if (!manifestPath || !out) {
  console.error('usage: node dequant.js MANIFEST.json OUT');
  process.exit(2);
}
const manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
const dir = path.dirname(manifestPath);
const values = [];
const lines = [];
for (const group of manifest) {
  const buf = Buffer.concat(group.paths.map((p) => fs.readFileSync(path.join(dir, p))));
  let off = 0;
  for (const w of group.weights) {
    if (w.dtype !== 'float32') throw new Error(`${w.name}: dtype ${w.dtype}`);
    const n = w.shape.reduce((a, b) => a * b, 1);
    const f = new Float32Array(n);
    const q = w.quantization;
    if (q) {
      if (q.dtype !== 'uint8') throw new Error(`${w.name}: quantisation ${q.dtype}`);
      for (let i = 0; i < n; i++) f[i] = buf[off + i] * q.scale + q.min;
      off += n;
    } else {
      for (let i = 0; i < n; i++) f[i] = buf.readFloatLE(off + 4 * i);
      off += 4 * n;
    }
    values.push(Buffer.from(f.buffer));
    lines.push([w.name, ...w.shape].join(' '));
  }
  if (off !== buf.length) throw new Error(`shard has ${buf.length} bytes, manifest accounts for ${off}`);
}
fs.writeFileSync(out + '.f32', Buffer.concat(values));
fs.writeFileSync(out + '.txt', lines.join('\n') + '\n');
console.error(`dequant: ${lines.length} tensors`);
