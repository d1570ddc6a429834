// kws serve page: upload / URL / microphone -> POST /api/predict -> top-k and the features image.
"use strict";

const TARGET_RATE = 16000;
const RECORD_SECONDS = 1.5;
const LIVE_WINDOW_SECONDS = 1.0;
const LIVE_INTERVAL_MS = 500;
const LIVE_THRESHOLD = 0.7;
const BACKGROUND_LABELS = new Set(["_silence_", "_unknown_"]);
const MAX_DETECTIONS = 20;

const $ = (id) => document.getElementById(id);

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  $("status").textContent = "";
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

async function postPredict(body, contentType, name) {
  const query = name ? `&name=${encodeURIComponent(name)}` : "";
  const resp = await fetch(`/api/predict?features=1${query}`, {
    method: "POST", headers: { "Content-Type": contentType }, body,
  });
  let data;
  try {
    data = await resp.json();
  } catch (e) {
    throw new Error(`server answered ${resp.status} without JSON`);
  }
  if (!resp.ok) throw new Error(data.error || `server answered ${resp.status}`);
  return data;
}

function showResult(data) {
  clearError();
  $("status").textContent = "done";
  $("result-input").textContent = data.input;
  $("result-duration").textContent = data.duration_s;
  const list = $("labels");
  list.replaceChildren();
  for (const item of data.labels) {
    const li = document.createElement("li");
    li.className = "label";
    const name = document.createElement("span");
    name.className = "label-name";
    name.textContent = item.label;
    const pct = document.createElement("span");
    pct.textContent = ` ${(100 * item.probability).toFixed(1)}%`;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${Math.round(150 * item.probability)}px`;
    li.append(name, pct, bar);
    list.append(li);
  }
  if (data.features) drawFeatures(data.features);
  $("result").hidden = false;
}

// features: frames x bins; time runs left to right, bin 0 at the bottom
function drawFeatures(features) {
  const canvas = $("spectrogram");
  const frames = features.length;
  const bins = frames ? features[0].length : 0;
  if (!frames || !bins) return;
  canvas.width = frames;
  canvas.height = bins;
  let lo = Infinity, hi = -Infinity;
  for (const row of features) for (const v of row) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const span = hi - lo || 1;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(frames, bins);
  for (let t = 0; t < frames; t++) {
    for (let b = 0; b < bins; b++) {
      const x = (features[t][b] - lo) / span;
      const i = 4 * ((bins - 1 - b) * frames + t);
      img.data[i] = Math.round(255 * Math.min(1, 1.5 * x));
      img.data[i + 1] = Math.round(255 * x * x);
      img.data[i + 2] = Math.round(255 * (1 - x) * 0.6);
      img.data[i + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
}

async function run(label, body, contentType) {
  clearError();
  $("status").textContent = `classifying ${label}…`;
  try {
    showResult(await postPredict(body, contentType, contentType === "application/json" ? "" : label));
  } catch (e) {
    showError(e.message);
  }
}

// ---------------------------------------------------------------- WAV encoding
function encodeWav(samples, rate) {
  const buffer = new ArrayBuffer(44 + 2 * samples.length);
  const view = new DataView(buffer);
  const text = (offset, s) => { for (let i = 0; i < s.length; i++) view.setUint8(offset + i, s.charCodeAt(i)); };
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * samples.length, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, 2 * rate, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, 2 * samples.length, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(44 + 2 * i, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return new Blob([buffer], { type: "audio/wav" });
}

async function resampleTo16k(samples, rate) {
  if (rate === TARGET_RATE) return samples;
  const length = Math.max(1, Math.round(samples.length * TARGET_RATE / rate));
  const offline = new OfflineAudioContext(1, length, TARGET_RATE);
  const buf = offline.createBuffer(1, samples.length, rate);
  buf.copyToChannel(samples, 0);
  const src = offline.createBufferSource();
  src.buffer = buf;
  src.connect(offline.destination);
  src.start();
  const rendered = await offline.startRendering();
  return rendered.getChannelData(0);
}

// ---------------------------------------------------------------- microphone
class Mic {
  async start(onChunk) {
    this.stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 } });
    this.ctx = new AudioContext();
    this.rate = this.ctx.sampleRate;
    const source = this.ctx.createMediaStreamSource(this.stream);
    this.node = this.ctx.createScriptProcessor(4096, 1, 1);
    this.node.onaudioprocess = (ev) => onChunk(new Float32Array(ev.inputBuffer.getChannelData(0)));
    source.connect(this.node);
    this.node.connect(this.ctx.destination);
  }
  stop() {
    if (this.node) this.node.disconnect();
    if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
    if (this.ctx) this.ctx.close();
    this.node = this.stream = this.ctx = null;
  }
}

function concat(chunks, maxSamples) {
  let total = chunks.reduce((n, c) => n + c.length, 0);
  const out = new Float32Array(Math.min(total, maxSamples));
  let pos = out.length;
  for (let i = chunks.length - 1; i >= 0 && pos > 0; i--) {
    const c = chunks[i];
    const take = Math.min(c.length, pos);
    out.set(c.subarray(c.length - take), pos - take);
    pos -= take;
  }
  return out;
}

async function recordOnce() {
  const mic = new Mic();
  const chunks = [];
  try {
    await mic.start((c) => chunks.push(c));
  } catch (e) {
    showError(`microphone unavailable: ${e.message}`);
    return;
  }
  $("status").textContent = "recording…";
  $("record-button").disabled = true;
  await new Promise((r) => setTimeout(r, RECORD_SECONDS * 1000));
  const rate = mic.rate;
  mic.stop();
  $("record-button").disabled = false;
  const audio = await resampleTo16k(concat(chunks, Math.round(RECORD_SECONDS * rate)), rate);
  await run("recording", encodeWav(audio, TARGET_RATE), "audio/wav");
}

let live = null;

async function toggleLive() {
  if (live) {
    clearInterval(live.timer);
    live.mic.stop();
    live = null;
    $("live-button").textContent = "Start live";
    $("status").textContent = "live mode stopped";
    return;
  }
  const mic = new Mic();
  const chunks = [];
  try {
    await mic.start((c) => { chunks.push(c); if (chunks.length > 64) chunks.shift(); });
  } catch (e) {
    showError(`microphone unavailable: ${e.message}`);
    return;
  }
  live = { mic, busy: false, last: "" };
  $("live-button").textContent = "Stop live";
  $("status").textContent = "listening…";
  live.timer = setInterval(async () => {
    if (!live || live.busy || !chunks.length) return;
    live.busy = true;
    try {
      const audio = await resampleTo16k(concat(chunks, Math.round(LIVE_WINDOW_SECONDS * mic.rate)), mic.rate);
      const data = await postPredict(encodeWav(audio, TARGET_RATE), "audio/wav");
      const top = data.labels[0];
      if (top && !BACKGROUND_LABELS.has(top.label) && top.probability >= LIVE_THRESHOLD) {
        if (top.label !== live.last) {
          const li = document.createElement("li");
          li.textContent = `${new Date().toLocaleTimeString()} ${top.label} (${(100 * top.probability).toFixed(0)}%)`;
          $("detections").prepend(li);
          while ($("detections").children.length > MAX_DETECTIONS) $("detections").lastChild.remove();
        }
        live.last = top.label;
      } else if (live) {
        live.last = "";
      }
      if (data.features) drawFeatures(data.features);
    } catch (e) {
      showError(e.message);
    } finally {
      if (live) live.busy = false;
    }
  }, LIVE_INTERVAL_MS);
}

// ---------------------------------------------------------------- wiring
async function loadModelInfo() {
  try {
    const resp = await fetch("/api/model");
    const info = await resp.json();
    if (!resp.ok) throw new Error(info.error || resp.status);
    $("model-info").textContent = `model ${info.model} — labels: ${info.labels.join(", ")}`;
  } catch (e) {
    $("model-info").textContent = `model information unavailable: ${e.message}`;
  }
}

$("file-input").addEventListener("change", (ev) => {
  const file = ev.target.files[0];
  if (file) run(file.name, file, file.type || "application/octet-stream");
});
$("url-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const url = $("url-input").value.trim();
  run(url, JSON.stringify({ url }), "application/json");
});
$("record-button").addEventListener("click", recordOnce);
$("live-button").addEventListener("click", toggleLive);
loadModelInfo();
