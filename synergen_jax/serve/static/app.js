// SynerGen-VL page: one conversation about an image (streamed answers) and text-to-image.
// Talks to the same OpenAI-compatible endpoints as any client; nothing from the internet.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { imageUrl: null, messages: [], busy: false };

function showError(message) {
  const el = $("error");
  el.textContent = message;
  el.hidden = !message;
}

async function apiError(response) {
  try {
    const body = await response.json();
    return `${response.status}: ${body.error ? body.error.message : JSON.stringify(body)}`;
  } catch (e) {
    return `${response.status} ${response.statusText}`;
  }
}

// ---- model info ---------------------------------------------------------------------
async function loadInfo() {
  try {
    const r = await fetch("/healthz");
    if (!r.ok) throw new Error(await apiError(r));
    const info = await r.json();
    $("model-info").textContent = `${info.source} · ${info.image_size}px images`;
    $("max-tokens").max = info.max_new_tokens;
    $("max-tokens").value = Math.min(32, info.max_new_tokens);
    $("cfg").value = info.default_cfg_scale;
    $("temperature").value = info.default_gen_temperature;
    $("count").options.length = 0;
    for (let i = 1; i <= info.limits.max_images; i++) {
      $("count").add(new Option(String(i), String(i), false, i === Math.min(4, info.limits.max_images)));
    }
    document.body.dataset.ready = "1";
  } catch (e) {
    $("model-info").textContent = "server unreachable";
    showError(String(e.message || e));
  }
}

// ---- the image ----------------------------------------------------------------------
function setImage(file) {
  if (!file) return;
  if (!file.type.startsWith("image/")) {
    showError(`${file.name || "that file"} is not an image`);
    return;
  }
  const reader = new FileReader();
  reader.onload = () => {
    state.imageUrl = reader.result;
    state.messages = [];
    $("messages").replaceChildren();
    const img = $("chat-image");
    img.src = state.imageUrl;
    img.hidden = false;
    $("drop-hint").textContent = "Ask about this image (a new one starts a new conversation)";
    showError("");
  };
  reader.onerror = () => showError("could not read the file");
  reader.readAsDataURL(file);
}

function addMessage(role, text) {
  const li = document.createElement("li");
  li.className = role;
  li.textContent = text;
  $("messages").append(li);
  li.scrollIntoView({ block: "nearest" });
  return li;
}

// ---- asking (streamed) --------------------------------------------------------------
function userContent(question) {
  // The image goes with the first user message of the conversation.
  if (state.messages.length === 0 && state.imageUrl) {
    return [{ type: "image_url", image_url: { url: state.imageUrl } },
            { type: "text", text: question }];
  }
  return question;
}

async function ask(event) {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question || state.busy) return;
  showError("");
  state.busy = true;
  $("ask").disabled = true;
  const messages = state.messages.concat([{ role: "user", content: userContent(question) }]);
  const asked = addMessage("user", question);
  const li = addMessage("assistant pending", "");
  let text = "";
  try {
    const r = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ messages, stream: true,
                             max_tokens: Number($("max-tokens").value) || 32 }),
    });
    if (!r.ok) throw new Error(await apiError(r));
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const line = buffer.slice(0, cut).trim();
        buffer = buffer.slice(cut + 2);
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") continue;
        const event = JSON.parse(data);
        if (event.error) throw new Error(event.error.message);
        const delta = event.choices && event.choices[0] && event.choices[0].delta;
        if (delta && delta.content) {
          text += delta.content;
          li.textContent = text;
        }
      }
    }
    li.classList.remove("pending");
    if (!text) li.textContent = "(empty answer)";
    state.messages = messages.concat([{ role: "assistant", content: text }]);
    $("question").value = "";
  } catch (e) {
    li.remove();
    asked.remove();
    showError(String(e.message || e));
  } finally {
    state.busy = false;
    $("ask").disabled = false;
  }
}

function newConversation() {
  state.messages = [];
  $("messages").replaceChildren();
  showError("");
}

// ---- generating ---------------------------------------------------------------------
async function generateOne(prompt, seed, cfg, temperature, figure) {
  const r = await fetch("/v1/images/generations", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ prompt, n: 1, seed, cfg_scale: cfg, temperature,
                           response_format: "b64_json" }),
  });
  if (!r.ok) throw new Error(await apiError(r));
  const body = await r.json();
  const url = "data:image/png;base64," + body.data[0].b64_json;
  const img = figure.querySelector("img");
  img.src = url;
  img.alt = `${prompt} (seed ${seed})`;
  const a = figure.querySelector("a");
  a.href = url;
  a.download = `synergen-seed${seed}.png`;
  a.hidden = false;
  figure.classList.remove("pending");
}

async function generate(event) {
  event.preventDefault();
  const prompt = $("prompt").value.trim();
  if (!prompt) return;
  showError("");
  const count = Number($("count").value) || 1;
  const seed = Number($("seed").value) || 0;
  const cfg = Number($("cfg").value);
  const temperature = Number($("temperature").value);
  $("generate").disabled = true;
  $("gallery").replaceChildren();
  // One request per image: each is shown as soon as it finishes (the server batches them).
  const jobs = [];
  for (let i = 0; i < count; i++) {
    const figure = document.createElement("figure");
    figure.className = "pending";
    const img = document.createElement("img");
    const a = document.createElement("a");
    a.textContent = `seed ${seed + i} · download`;
    a.hidden = true;
    figure.append(img, a);
    $("gallery").append(figure);
    jobs.push(generateOne(prompt, seed + i, cfg, temperature, figure).catch((e) => {
      figure.remove();
      showError(String(e.message || e));
    }));
  }
  await Promise.all(jobs);
  $("generate").disabled = false;
}

// ---- wiring -------------------------------------------------------------------------
function init() {
  $("image-input").addEventListener("change", (e) => setImage(e.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    setImage(e.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (e) => {
    for (const item of (e.clipboardData || {}).items || []) {
      if (item.type.startsWith("image/")) setImage(item.getAsFile());
    }
  });
  $("ask-form").addEventListener("submit", ask);
  $("new-chat").addEventListener("click", newConversation);
  $("gen-form").addEventListener("submit", generate);
  loadInfo();
}

init();
