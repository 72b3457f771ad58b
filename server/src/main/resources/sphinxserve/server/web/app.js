// The node's chat page: asks through the OpenAI-compatible API (/v1/chat/completions, streamed), keeps the
// conversation, and draws SPHINX's boxes and keypoints over the image in the image's own pixels.
import { parseAnswer, toPixels, SKELETON } from "./outputs.js";

const EXAMPLES = [
  "What is in the image?",
  "Detect all people.",
  "How many stars are there?",
  "Please provide the bounding box coordinate of the region this sentence describes: the yellow circle.",
  "Detect the key points of the person in the region [0.30,0.37,0.54,0.85].",
];
const COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"];

const $ = (id) => document.getElementById(id);
let model = null;
let image = null; // {dataUrl, width, height}
let messages = []; // the conversation so far, OpenAI's shape
let controller = null;

// The API key of a node with --tenants: typed by the user, kept in this tab's sessionStorage (gone when the tab
// closes, never shared with other tabs or kept on disk) and sent only as a header.
const KEY_ITEM = "sphinx-serve.api-key";

function apiKey() {
  return sessionStorage.getItem(KEY_ITEM) ?? "";
}

/** The Authorization header for the stored key; none without one (a node without --tenants needs none). */
function authHeaders() {
  const key = apiKey();
  return key ? { authorization: `Bearer ${key}` } : {};
}

/** The node's refusal as a sentence; a 401 points at the key field. */
async function refusal(response) {
  if (response.status === 401) {
    $("api-key").focus();
    return apiKey() ? "the node refused this API key" : "this node needs an API key: enter it above";
  }
  const error = await response.json().catch(() => ({ error: { message: response.statusText } }));
  return error.error.message;
}

async function loadModel() {
  const response = await fetch("/v1/models", { headers: authHeaders() });
  if (!response.ok) throw new Error(await refusal(response));
  const body = await response.json();
  model = body.data[0].id;
  $("model").textContent = model;
  setStatus("idle");
}

function pick(file) {
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => {
    const img = $("image");
    img.onload = () => {
      image = { dataUrl: reader.result, width: img.naturalWidth, height: img.naturalHeight };
      $("overlay").setAttribute("viewBox", `0 0 ${image.width} ${image.height}`);
      $("overlay").replaceChildren();
      $("stage").hidden = false;
      $("hint").hidden = true;
      messages = []; // a new image starts a new conversation
      $("conversation").replaceChildren();
    };
    img.src = reader.result;
  };
  reader.readAsDataURL(file);
}

function say(role, text) {
  const li = document.createElement("li");
  li.className = role;
  li.textContent = text;
  $("conversation").append(li);
  return li;
}

function setStatus(text) {
  $("status").textContent = text;
}

/** Draws the answer's regions and keypoints; shapes carry data- attributes with their pixel coordinates. */
function draw(answer) {
  const svg = $("overlay");
  svg.replaceChildren();
  if (!image) return;
  const ns = "http://www.w3.org/2000/svg";
  const parsed = parseAnswer(answer);
  parsed.regions.forEach((region, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const [x1, y1, x2, y2] = toPixels(region.box, image.width, image.height);
    const rect = document.createElementNS(ns, "rect");
    Object.entries({ x: x1, y: y1, width: x2 - x1, height: y2 - y1, stroke: colour, "data-label": region.label })
      .forEach(([k, v]) => rect.setAttribute(k, v));
    svg.append(rect);
    // Sizes in the image's pixels (the SVG's viewBox), so labels keep their size relative to the image.
    const size = Math.max(10, Math.round(Math.max(image.width, image.height) / 24));
    const label = document.createElementNS(ns, "text");
    label.setAttribute("font-size", size);
    label.setAttribute("x", Math.min(x1 + 2, image.width - size * 4));
    label.setAttribute("y", y1 - 4 < size ? y2 + size : y1 - 4);
    label.setAttribute("fill", colour);
    label.textContent = region.label || "region";
    svg.append(label);
  });
  const points = new Map(parsed.keypoints.map((k) => [k.name, toPixels([k.x, k.y, k.x, k.y], image.width, image.height)]));
  for (const [a, b] of SKELETON) {
    if (!points.has(a) || !points.has(b)) continue;
    const line = document.createElementNS(ns, "line");
    Object.entries({ x1: points.get(a)[0], y1: points.get(a)[1], x2: points.get(b)[0], y2: points.get(b)[1], stroke: "#3cb44b" })
      .forEach(([k, v]) => line.setAttribute(k, v));
    svg.append(line);
  }
  for (const [name, [x, y]] of points) {
    const dot = document.createElementNS(ns, "circle");
    Object.entries({ cx: x, cy: y, r: 4, fill: "#e6194b", "data-name": name }).forEach(([k, v]) => dot.setAttribute(k, v));
    svg.append(dot);
  }
}

async function ask(question) {
  if (!question.trim() || controller) return;
  const content = messages.length === 0 && image
    ? [{ type: "image_url", image_url: { url: image.dataUrl } }, { type: "text", text: question }]
    : question;
  messages.push({ role: "user", content });
  say("user", question);
  const bubble = say("assistant", "");
  controller = new AbortController();
  $("send").disabled = true;
  $("stop").disabled = false;
  setStatus("asking…");
  let answer = "";
  try {
    // Every turn resends the whole conversation (image included): the node's image and prefix caches make the
    // follow-up cheap.
    const response = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json", ...authHeaders() },
      body: JSON.stringify({ model, messages, stream: true, temperature: 0, max_tokens: 256 }),
      signal: controller.signal,
    });
    if (!response.ok) throw new Error(await refusal(response));
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffered = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffered.indexOf("\n\n")) >= 0) {
        const event = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        if (!event.startsWith("data: ")) continue;
        const data = event.slice(6);
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        answer += chunk.choices[0]?.delta?.content ?? "";
        bubble.textContent = answer;
        draw(answer);
      }
    }
    setStatus("done");
  } catch (e) {
    setStatus(e.name === "AbortError" ? "stopped" : "error: " + e.message);
  } finally {
    messages.push({ role: "assistant", content: answer });
    controller = null;
    $("send").disabled = false;
    $("stop").disabled = true;
  }
}

function setUp() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => pick(e.target.files[0]));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); pick(e.dataTransfer.files[0]); });
  for (const example of EXAMPLES) {
    const chip = document.createElement("button");
    chip.type = "button";
    chip.textContent = example;
    chip.addEventListener("click", () => ask(example));
    $("chips").append(chip);
  }
  $("ask").addEventListener("submit", (e) => {
    e.preventDefault();
    const question = $("question").value;
    $("question").value = "";
    ask(question);
  });
  $("stop").addEventListener("click", () => controller?.abort());
  const keyField = $("api-key");
  keyField.value = apiKey();
  keyField.addEventListener("change", () => {
    const key = keyField.value.trim();
    if (key) sessionStorage.setItem(KEY_ITEM, key);
    else sessionStorage.removeItem(KEY_ITEM);
    loadModel().catch((e) => setStatus("cannot reach the node: " + e.message));
  });
  loadModel().catch((e) => setStatus("cannot reach the node: " + e.message));
}

setUp();
