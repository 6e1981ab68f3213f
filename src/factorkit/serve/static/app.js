// factorkit editor: plain JS, no dependencies. The page draws what /api/runs/{run} declares.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  run: null, spec: null, image: null, other: null, values: {}, knobs: [],
  touched: {}, touchedKnobs: {}, pieces: new Set(), mode: null, seq: 0, inflight: null, timer: null, runToken: 0,
};

function show(text, kind) {
  const box = $("message");
  if (!text) { box.hidden = true; box.textContent = ""; return; }
  box.hidden = false;
  box.className = kind === "info" ? "info" : "";
  box.textContent = text;
}

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    let detail = body && body.detail;
    if (Array.isArray(detail)) detail = detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
    throw new Error(detail || `${response.status} ${response.statusText}`);
  }
  return body;
}

const post = (path, payload, signal) => api(path, {
  method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(payload || {}), signal,
});

function fmt(v) { return Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2); }

// --- controls -------------------------------------------------------------------------------------
function slider(parent, name, lo, hi, value, onInput, finding) {
  const row = document.createElement("div");
  row.className = "control";
  const label = document.createElement("span");
  label.className = "name";
  label.textContent = name;
  label.title = name;
  const wrap = document.createElement("div");
  wrap.className = "range";
  const input = document.createElement("input");
  input.type = "range";
  input.min = lo; input.max = hi; input.step = (hi - lo) / 200;
  input.value = value;
  input.setAttribute("aria-label", name);
  input.dataset.name = name;
  const mark = document.createElement("span");
  mark.className = "mark";
  mark.textContent = "▲";
  wrap.append(input, mark);
  const out = document.createElement("output");
  out.textContent = fmt(Number(value));
  input.addEventListener("input", () => { out.textContent = fmt(Number(input.value)); onInput(Number(input.value)); });
  row.append(label, wrap, out);
  if (finding) {
    const f = document.createElement("span");
    f.className = "finding";
    f.textContent = finding;
    row.append(f);
  }
  parent.append(row);
  return {input, out, mark, lo, hi};
}

function place(ctrl, value) {
  const v = Math.min(ctrl.hi, Math.max(ctrl.lo, value));
  ctrl.input.value = v;
  ctrl.out.textContent = fmt(value);
  ctrl.mark.style.left = `${(100 * (v - ctrl.lo)) / (ctrl.hi - ctrl.lo || 1)}%`;
}

function buildControls(spec) {
  state.controls = {edit: {}, knobs: {}};
  for (const id of ["edit-controls", "swap-controls", "traverse-controls", "samples"]) $(id).replaceChildren();
  $("edit-panel").hidden = !spec.edit;
  if (spec.edit && spec.edit.kind === "classes") { // one class at a time (mddAE case 1): a button per class
    for (const c of spec.edit.controls) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = `make it ${c.name}`;
      b.dataset.name = c.name;
      b.addEventListener("click", () => { state.touched = {[c.name]: 1}; request("edit"); });
      $("edit-controls").append(b, " ");
    }
  } else if (spec.edit) {
    for (const c of spec.edit.controls) {
      const mid = (c.lo + c.hi) / 2;
      state.controls.edit[c.name] = slider($("edit-controls"), c.name, c.lo, c.hi, mid, (v) => {
        state.touched[c.name] = v; request("edit");
      });
    }
  }
  $("swap-panel").hidden = !spec.swap;
  if (spec.swap) {
    for (const p of spec.swap.pieces) {
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = p.name;
      box.addEventListener("change", () => {
        if (box.checked) state.pieces.add(p.name); else state.pieces.delete(p.name);
        request("swap");
      });
      label.append(box, " " + p.label);
      $("swap-controls").append(label);
    }
  }
  $("traverse-panel").hidden = !spec.traverse;
  if (spec.traverse) {
    for (const c of spec.traverse.controls) {
      state.controls.knobs[c.dim] = slider($("traverse-controls"), c.label, c.lo, c.hi, (c.lo + c.hi) / 2, (v) => {
        state.touchedKnobs[c.dim] = v; request("traverse");
      }, c.finding);
    }
  }
  $("sample-panel").hidden = !spec.sample;
}

// --- readings ------------------------------------------------------------------------------------
// rows: P(attribute) and every factor, for the input, its reconstruction and the edit; a row whose
// edit reading differs from the input's is highlighted
function showReading(before, rec, after) {
  const table = $("reading");
  if (!before) { table.hidden = true; return; }
  table.hidden = false;
  const body = table.tBodies[0];
  body.replaceChildren();
  const rows = [];
  const p = (r, k) => (r && r.attributes[k] !== undefined ? r.attributes[k].toFixed(2) : "");
  for (const [k, v] of Object.entries(before.attributes || {})) {
    const w = after ? after.attributes[k] : null;
    rows.push([`P(${k})`, v.toFixed(2), p(rec, k), p(after, k), w !== null && (v > 0.5) !== (w > 0.5)]);
  }
  for (const [k, v] of Object.entries(before.factors || {})) {
    const w = after ? after.factors[k] : null;
    rows.push([k, v, rec ? rec.factors[k] : "", w === null ? "" : w, w !== null && v !== w]);
  }
  for (const [name, a, r, b, changed] of rows) {
    const tr = document.createElement("tr");
    if (changed) tr.className = "changed";
    for (const text of [name, a, r, b]) { const td = document.createElement("td"); td.textContent = text; tr.append(td); }
    body.append(tr);
  }
}

function setOutput(url, reading, caption) {
  $("img-edit").src = url;
  $("edit-caption").textContent = caption;
  const link = $("download");
  link.href = url;
  link.classList.remove("disabled");
  showReading(state.image.reading, state.image.reconstruction_reading, reading);
}

// --- images --------------------------------------------------------------------------------------
function resetControls() {
  state.touched = {}; state.touchedKnobs = {};
  const spec = state.spec;
  if (spec.edit && spec.edit.kind !== "classes") {
    for (const c of spec.edit.controls) {
      const read = state.image.values[c.name];
      place(state.controls.edit[c.name], read === undefined ? (c.lo + c.hi) / 2 : read);
    }
  }
  if (spec.traverse) for (const c of spec.traverse.controls) place(state.controls.knobs[c.dim], state.image.knobs[c.dim] ?? 0);
  for (const box of $("swap-controls").querySelectorAll("input")) box.checked = false;
  state.pieces.clear();
}

// a new image, a reset or a new second image: whatever edit is pending or in flight is dropped
function cancelPending() {
  clearTimeout(state.timer);
  state.seq++;
  if (state.inflight) state.inflight.abort();
}

function setImage(record) {
  cancelPending();
  state.image = record;
  $("img-input").src = record.image;
  $("img-rec").src = record.reconstruction;
  $("reset").disabled = false;
  resetControls();
  setOutput(record.reconstruction, record.reconstruction_reading, "edit (nothing changed yet: the reconstruction)");
  if (record.notice) show(record.notice, "info"); else show("");
}

async function upload(file, target) {
  if (!file) return;
  try {
    const record = await api(`/api/runs/${state.run}/images`, {
      method: "POST", body: file, headers: {"Content-Type": file.type || "application/octet-stream", "X-Filename": encodeURIComponent(file.name)},
    });
    if (target === "other") setOther(record); else setImage(record);
  } catch (e) {
    show(`Could not use ${file.name}: ${e.message}`);
  }
}

function setOther(record) {
  cancelPending();
  state.other = record;
  $("img-other").src = record.image;
  if (record.notice) show(record.notice, "info");
  if (state.pieces.size) request("swap");
}

async function example(which, target) {
  try {
    const record = await post(`/api/runs/${state.run}/examples/${which}`);
    if (target === "other") setOther(record); else setImage(record);
  } catch (e) { show(e.message); }
}

// --- edits: debounced, the last move wins ----------------------------------------------------------
function request(mode) {
  if (!state.image) { show("Upload or pick an image first."); return; }
  state.mode = mode;
  clearTimeout(state.timer);
  state.timer = setTimeout(send, 25);
}

async function send() {
  const mode = state.mode, seq = ++state.seq, started = performance.now();
  if (state.inflight) state.inflight.abort();
  const controller = new AbortController();
  state.inflight = controller;
  let path, payload, caption;
  if (mode === "edit") {
    path = "edit"; payload = {image: state.image.id, values: state.touched};
    caption = "edit: " + (Object.entries(state.touched).map(([k, v]) => `${k} = ${fmt(v)}`).join(", ") || "reconstruction");
  } else if (mode === "traverse") {
    path = "traverse"; payload = {image: state.image.id, values: state.touchedKnobs};
    caption = "knobs: " + Object.entries(state.touchedKnobs).map(([k, v]) => `dim ${k} = ${fmt(v)}`).join(", ");
  } else {
    if (!state.other) { show("Pick a second image to swap pieces from."); return; }
    if (!state.pieces.size) { setOutput(state.image.reconstruction, state.image.reconstruction_reading, "edit"); return; }
    path = "swap"; payload = {image: state.image.id, other: state.other.id, pieces: [...state.pieces]};
    caption = "swap: " + [...state.pieces].join(", ") + " from the second image";
  }
  try {
    const result = await post(`/api/runs/${state.run}/${path}`, payload, controller.signal);
    if (seq !== state.seq) return; // a later move was sent: it wins
    setOutput(result.image, result.reading, caption);
    $("timing").textContent = `${Math.round(performance.now() - started)} ms`;
  } catch (e) {
    if (e.name !== "AbortError" && seq === state.seq) show(e.message);
  }
}

// --- runs ----------------------------------------------------------------------------------------
async function selectRun(id) {
  const token = ++state.runToken; // a later pick of the run wins: this one stops at its next await
  cancelPending();
  state.run = id; state.image = null; state.other = null;
  try {
    const spec = await api(`/api/runs/${id}`);
    if (token !== state.runToken) return;
    state.spec = spec;
    $("about").textContent = `${spec.model} on ${spec.data} (${spec.size}×${spec.size}) · ${spec.paper} · ` +
      `operations: ${spec.operations.join(", ")}`;
    buildControls(spec);
    show(spec.notes.join(" · "), "info");
    const ex = $("examples");
    ex.replaceChildren();
    for (let k = 0; k < spec.examples; k++) {
      const record = await post(`/api/runs/${id}/examples/${k}`);
      if (token !== state.runToken) return;
      const img = document.createElement("img");
      img.src = record.image;
      img.alt = `example ${k}`;
      img.title = record.source;
      img.addEventListener("click", () => example(k));
      ex.append(img);
      if (k === 0) setImage(record);
      if (k === 1 && spec.swap) setOther(record);
    }
    $("random").disabled = $("random-other").disabled = !spec.examples;
  } catch (e) { show(e.message); }
}

async function start() {
  const runs = await api("/api/runs");
  const select = $("run");
  for (const r of runs) {
    const option = document.createElement("option");
    option.value = r.id; option.textContent = r.name;
    select.append(option);
  }
  $("run-picker").hidden = runs.length < 2;
  select.addEventListener("change", () => selectRun(select.value));
  $("file").addEventListener("change", (e) => { upload(e.target.files[0]); e.target.value = ""; });
  $("file-other").addEventListener("change", (e) => { upload(e.target.files[0], "other"); e.target.value = ""; });
  $("random").addEventListener("click", () => example("random"));
  $("random-other").addEventListener("click", () => example("random", "other"));
  $("reset").addEventListener("click", () => {
    if (!state.image) return;
    cancelPending();
    resetControls();
    setOutput(state.image.reconstruction, state.image.reconstruction_reading, "edit (reset: the reconstruction)");
  });
  $("sample").addEventListener("click", async () => {
    try {
      const out = await post(`/api/runs/${state.run}/sample`, {n: 8, seed: Math.floor(Math.random() * 1e9)});
      const box = $("samples");
      box.replaceChildren();
      out.images.forEach((url, i) => {
        const img = document.createElement("img");
        img.src = url; img.alt = `sample ${i}`;
        box.append(img);
      });
    } catch (e) { show(e.message); }
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault(); drop.classList.remove("over");
    if (e.dataTransfer.files.length) upload(e.dataTransfer.files[0]);
  });
  await selectRun(runs[0].id);
}

start().catch((e) => show(e.message));
