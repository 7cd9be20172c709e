// tinygpt4 web chat: plain browser JavaScript, no build step.
// Model output is untrusted: it is only ever put into the page as text nodes (textContent), never as HTML,
// and the server's Content-Security-Policy forbids inline and foreign scripts besides.
"use strict";

const CHATS_KEY = "tinygpt4.chats.v1";
const SETTINGS_KEY = "tinygpt4.settings.v1";
const MAX_IMAGES = 8;
const MAX_SIDE = 512; // attached images are scaled down to this, which keeps requests and history small

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};

let chats = [];
let currentId = null;
let pending = []; // data URLs waiting to be sent with the next message
let controller = null; // AbortController of the running request

// ---- storage -------------------------------------------------------------------------------------------

function loadJSON(key, fallback) {
  try {
    const v = JSON.parse(localStorage.getItem(key));
    return v === null ? fallback : v;
  } catch (_) {
    return fallback;
  }
}

function saveChats() {
  try {
    localStorage.setItem(CHATS_KEY, JSON.stringify(chats));
  } catch (_) {
    showBanner("Could not save the chat history: browser storage is full. Delete some old chats.");
  }
}

function settings() {
  return {
    system: $("system-prompt").value,
    temperature: clampNumber($("temperature").value, 0, 2, 0.7),
    maxTokens: Math.round(clampNumber($("max-tokens").value, 1, 4096, 128)),
    apiKey: $("api-key").value.trim(),
  };
}

function clampNumber(v, lo, hi, dflt) {
  const x = Number(v);
  return Number.isFinite(x) ? Math.min(hi, Math.max(lo, x)) : dflt;
}

function saveSettings() {
  const s = settings();
  // The API key stays in this browser only (it is needed for every request).
  localStorage.setItem(SETTINGS_KEY, JSON.stringify(s));
}

function restoreSettings() {
  const s = loadJSON(SETTINGS_KEY, {});
  if (typeof s.system === "string") $("system-prompt").value = s.system;
  if (s.temperature !== undefined) $("temperature").value = s.temperature;
  if (s.maxTokens !== undefined) $("max-tokens").value = s.maxTokens;
  if (typeof s.apiKey === "string") $("api-key").value = s.apiKey;
}

// ---- chats ---------------------------------------------------------------------------------------------

function current() {
  return chats.find((c) => c.id === currentId) || null;
}

function newChat() {
  if (controller) return;
  const existing = current();
  if (existing && existing.messages.length === 0) return; // already on an empty chat
  const chat = { id: String(Date.now()) + Math.random().toString(16).slice(2, 6), title: "New chat", messages: [] };
  chats.unshift(chat);
  currentId = chat.id;
  saveChats();
  renderAll();
  $("input").focus();
}

function openChat(id) {
  if (controller) return;
  currentId = id;
  renderAll();
}

function deleteChat(id) {
  if (controller) return;
  chats = chats.filter((c) => c.id !== id);
  if (currentId === id) currentId = chats.length ? chats[0].id : null;
  if (!currentId) newChat();
  saveChats();
  renderAll();
}

// ---- rendering -----------------------------------------------------------------------------------------

function renderAll() {
  const list = $("chat-list");
  list.replaceChildren();
  for (const c of chats) {
    const li = el("li", c.id === currentId ? "active" : "");
    const open = el("button", "open", c.title || "New chat");
    open.type = "button";
    open.title = c.title || "New chat";
    open.addEventListener("click", () => openChat(c.id));
    const del = el("button", "delete", "\u00d7");
    del.type = "button";
    del.title = "Delete this chat";
    del.addEventListener("click", () => deleteChat(c.id));
    li.append(open, del);
    list.append(li);
  }
  const box = $("messages");
  box.replaceChildren();
  const chat = current();
  if (chat) chat.messages.forEach((m) => box.append(renderMessage(m)));
  box.scrollTop = box.scrollHeight;
  updateButtons();
}

function renderMessage(m) {
  const div = el("div", "msg " + m.role);
  div.append(el("div", "role", m.role === "user" ? "You" : "tinygpt4"));
  if (m.images && m.images.length) {
    const imgs = el("div", "images");
    for (const src of m.images) {
      const img = el("img");
      img.alt = "attached image";
      img.src = src;
      imgs.append(img);
    }
    div.append(imgs);
  }
  const content = el("div", "content");
  div.append(content);
  fillMessage(div, m);
  return div;
}

function fillMessage(div, m) {
  const content = div.querySelector(".content");
  if (m.role === "assistant") renderMarkdown(m.text || "", content);
  else content.textContent = m.text || "";
  div.classList.toggle("streaming", !!m.streaming);
  div.classList.toggle("error", !!m.error);
  div.querySelectorAll(".note, .error-text").forEach((n) => n.remove());
  const note = finishNote(m.finish);
  if (note) div.append(el("div", "note", note));
  if (m.error) div.append(el("div", "error-text", m.error));
}

function finishNote(reason) {
  return {
    length: "(stopped: reached the max tokens setting)",
    content_filter: "(this answer was stopped by the content filter)",
    aborted: "(stopped)",
  }[reason] || "";
}

// Markdown subset: paragraphs, headings, fenced code, lists, block quotes, inline code, bold, italics and
// http(s) links. Every piece of text becomes a text node; nothing is ever parsed as HTML.
function renderMarkdown(text, container) {
  container.replaceChildren();
  const lines = text.split("\n");
  let i = 0;
  let para = [];
  let list = null;
  const flushPara = () => {
    if (!para.length) return;
    const p = el("p");
    para.forEach((line, k) => {
      if (k) p.append(el("br"));
      appendInline(p, line);
    });
    container.append(p);
    para = [];
  };
  const closeList = () => { list = null; };
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(/^\s*(```|~~~)(.*)$/);
    if (fence) {
      flushPara(); closeList();
      const body = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      i++; // the closing fence (or the end of a still-streaming block)
      const pre = el("pre");
      pre.append(el("code", "", body.join("\n")));
      container.append(pre);
      continue;
    }
    const heading = line.match(/^(#{1,6})\s+(.*)$/);
    const bullet = line.match(/^\s*[-*+]\s+(.*)$/);
    const numbered = line.match(/^\s*\d+[.)]\s+(.*)$/);
    const quote = line.match(/^>\s?(.*)$/);
    if (heading) {
      flushPara(); closeList();
      const h = el("h" + Math.min(6, heading[1].length + 2));
      appendInline(h, heading[2]);
      container.append(h);
    } else if (bullet || numbered) {
      flushPara();
      const tag = bullet ? "ul" : "ol";
      if (!list || list.tagName.toLowerCase() !== tag) {
        list = el(tag);
        container.append(list);
      }
      const li = el("li");
      appendInline(li, (bullet || numbered)[1]);
      list.append(li);
    } else if (quote) {
      flushPara(); closeList();
      const q = el("blockquote");
      appendInline(q, quote[1]);
      container.append(q);
    } else if (line.trim() === "") {
      flushPara(); closeList();
    } else {
      closeList();
      para.push(line);
    }
    i++;
  }
  flushPara();
}

const INLINE = /(`+)([\s\S]*?)\1|\*\*([^*]+?)\*\*|\*([^*\s][^*]*?)\*|_([^_\s][^_]*?)_|\[([^\]]+)\]\(([^)\s]+)\)/g;

function appendInline(parent, text) {
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) parent.append(document.createTextNode(text.slice(last, m.index)));
    if (m[1]) {
      parent.append(el("code", "", m[2]));
    } else if (m[3] !== undefined) {
      const b = el("strong");
      appendInline(b, m[3]);
      parent.append(b);
    } else if (m[4] !== undefined || m[5] !== undefined) {
      const it = el("em");
      appendInline(it, m[4] !== undefined ? m[4] : m[5]);
      parent.append(it);
    } else {
      parent.append(safeLink(m[6], m[7]));
    }
    last = m.index + m[0].length;
  }
  if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
}

function safeLink(label, href) {
  let url = null;
  try {
    url = new URL(href, window.location.href);
  } catch (_) {
    url = null;
  }
  if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
    return document.createTextNode(label + " (" + href + ")");
  }
  const a = el("a", "", label);
  a.href = url.href;
  a.target = "_blank";
  a.rel = "noopener noreferrer nofollow";
  return a;
}

function updateButtons() {
  const busy = !!controller;
  $("send").hidden = busy;
  $("stop").hidden = !busy;
  const chat = current();
  const last = chat && chat.messages[chat.messages.length - 1];
  $("regenerate").disabled = busy || !last || (last.role !== "assistant" && last.role !== "user");
}

function showBanner(text) {
  const b = $("banner");
  b.textContent = text;
  b.hidden = !text;
}

function setStatus(text) {
  $("status").textContent = text;
}

// ---- images --------------------------------------------------------------------------------------------

function attachFiles(files) {
  for (const file of files) {
    if (!file.type.startsWith("image/")) {
      showBanner(`${file.name || "That file"} is not an image.`);
      continue;
    }
    if (pending.length >= MAX_IMAGES) {
      showBanner(`At most ${MAX_IMAGES} images per message.`);
      break;
    }
    readImage(file).then(
      (url) => { pending.push(url); renderPreviews(); },
      () => showBanner(`Could not read ${file.name || "the image"}: unsupported or damaged file.`),
    );
  }
}

function readImage(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onerror = reject;
    reader.onload = () => {
      const img = new Image();
      img.onerror = reject;
      img.onload = () => {
        const scale = Math.min(1, MAX_SIDE / Math.max(img.naturalWidth, img.naturalHeight));
        if (scale === 1 && file.size < 512 * 1024) return resolve(reader.result);
        const canvas = document.createElement("canvas");
        canvas.width = Math.max(1, Math.round(img.naturalWidth * scale));
        canvas.height = Math.max(1, Math.round(img.naturalHeight * scale));
        canvas.getContext("2d").drawImage(img, 0, 0, canvas.width, canvas.height);
        resolve(canvas.toDataURL(file.type === "image/jpeg" ? "image/jpeg" : "image/png", 0.9));
      };
      img.src = reader.result;
    };
    reader.readAsDataURL(file);
  });
}

function renderPreviews() {
  const box = $("previews");
  box.replaceChildren();
  pending.forEach((src, k) => {
    const wrap = el("div", "preview");
    const img = el("img");
    img.src = src;
    img.alt = `image ${k + 1} to send`;
    const rm = el("button", "", "\u00d7");
    rm.type = "button";
    rm.title = "Remove this image";
    rm.addEventListener("click", () => { pending.splice(k, 1); renderPreviews(); });
    wrap.append(img, rm);
    box.append(wrap);
  });
}

// ---- talking to the server -----------------------------------------------------------------------------

function apiMessages(chat) {
  const out = [];
  const s = settings();
  if (s.system.trim()) out.push({ role: "system", content: s.system });
  for (const m of chat.messages) {
    if (m.role === "assistant") {
      if (m.error || m.streaming) continue;
      out.push({ role: "assistant", content: m.text });
    } else if (m.images && m.images.length) {
      const parts = m.images.map((url) => ({ type: "image_url", image_url: { url } }));
      if (m.text) parts.push({ type: "text", text: m.text });
      out.push({ role: "user", content: parts });
    } else {
      out.push({ role: "user", content: m.text });
    }
  }
  return out;
}

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = settings().apiKey;
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

async function errorText(resp) {
  try {
    const body = await resp.json();
    if (body && body.error && body.error.message) return `${body.error.message} (HTTP ${resp.status})`;
  } catch (_) { /* not JSON */ }
  return `The server answered HTTP ${resp.status}.`;
}

function send(event) {
  if (event) event.preventDefault();
  if (controller) return;
  const text = $("input").value.trim();
  if (!text && !pending.length) return;
  let chat = current();
  if (!chat) { newChat(); chat = current(); }
  chat.messages.push({ role: "user", text, images: pending.slice() });
  if (chat.title === "New chat") chat.title = (text || "Image").slice(0, 40);
  $("input").value = "";
  pending = [];
  renderPreviews();
  generate(chat);
}

function regenerate() {
  const chat = current();
  if (controller || !chat) return;
  while (chat.messages.length && chat.messages[chat.messages.length - 1].role === "assistant") chat.messages.pop();
  if (!chat.messages.length) return;
  generate(chat);
}

async function generate(chat) {
  showBanner("");
  const s = settings();
  const body = {
    model: "tinygpt4",
    messages: apiMessages(chat),
    stream: true,
    stream_options: { include_usage: true },
    temperature: s.temperature,
    max_tokens: s.maxTokens,
  };
  const msg = { role: "assistant", text: "", streaming: true };
  chat.messages.push(msg);
  saveChats();
  renderAll();
  const div = $("messages").lastElementChild;
  controller = new AbortController();
  updateButtons();
  let scheduled = false;
  const refresh = () => {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      fillMessage(div, msg);
      const box = $("messages");
      box.scrollTop = box.scrollHeight;
    });
  };
  try {
    const resp = await fetch("/v1/chat/completions", {
      method: "POST", headers: headers(), body: JSON.stringify(body), signal: controller.signal,
    });
    if (!resp.ok) {
      msg.error = await errorText(resp);
      if (resp.status === 401) showBanner("This server needs an API key: set it in Settings.");
    } else {
      await readStream(resp, msg, refresh);
    }
  } catch (err) {
    if (err && err.name === "AbortError") msg.finish = "aborted";
    else msg.error = "Could not reach the server (" + (err && err.message ? err.message : "network error") + ").";
  } finally {
    msg.streaming = false;
    controller = null;
    fillMessage(div, msg);
    saveChats();
    updateButtons();
  }
}

async function readStream(resp, msg, refresh) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const event = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return;
        let obj;
        try { obj = JSON.parse(data); } catch (_) { continue; }
        if (obj.error) {
          msg.error = obj.error.message || "The server reported an error.";
          refresh();
          continue;
        }
        for (const choice of obj.choices || []) {
          if (choice.index !== 0) continue;
          if (choice.delta && typeof choice.delta.content === "string") msg.text += choice.delta.content;
          if (choice.finish_reason) msg.finish = choice.finish_reason;
        }
        refresh();
      }
    }
  }
  if (!msg.finish && !msg.error) msg.error = "The answer was cut off (the connection closed early).";
}

async function checkServer() {
  try {
    const h = await fetch("/health");
    if (h.status !== 200) {
      setStatus("model loading\u2026");
      setTimeout(checkServer, 2000);
      return;
    }
    setStatus("ready");
    const m = await fetch("/v1/models", { headers: headers() });
    if (m.ok) {
      const body = await m.json();
      if (body.data && body.data[0]) $("model-name").textContent = "model: " + body.data[0].id;
    } else if (m.status === 401) {
      showBanner("This server needs an API key: set it in Settings.");
    }
  } catch (_) {
    setStatus("server unreachable");
    setTimeout(checkServer, 5000);
  }
}

// ---- wiring --------------------------------------------------------------------------------------------

function init() {
  restoreSettings();
  chats = loadJSON(CHATS_KEY, []);
  if (!Array.isArray(chats)) chats = [];
  for (const c of chats) for (const m of c.messages || []) m.streaming = false; // a reload ends a stream
  currentId = chats.length ? chats[0].id : null;
  if (!currentId) newChat();
  renderAll();

  $("composer").addEventListener("submit", send);
  $("input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) send(e);
  });
  $("input").addEventListener("paste", (e) => {
    const files = [...(e.clipboardData ? e.clipboardData.items : [])]
      .filter((it) => it.kind === "file" && it.type.startsWith("image/"))
      .map((it) => it.getAsFile());
    if (files.length) {
      attachFiles(files);
      if (!e.clipboardData.getData("text")) e.preventDefault();
    }
  });
  $("composer").addEventListener("dragover", (e) => e.preventDefault());
  $("composer").addEventListener("drop", (e) => {
    e.preventDefault();
    attachFiles([...e.dataTransfer.files]);
  });
  $("file").addEventListener("change", (e) => { attachFiles([...e.target.files]); e.target.value = ""; });
  $("stop").addEventListener("click", () => { if (controller) controller.abort(); });
  $("regenerate").addEventListener("click", regenerate);
  $("new-chat").addEventListener("click", newChat);
  $("settings-toggle").addEventListener("click", () => {
    const panel = $("settings");
    panel.hidden = !panel.hidden;
    $("settings-toggle").setAttribute("aria-expanded", String(!panel.hidden));
  });
  for (const id of ["system-prompt", "temperature", "max-tokens", "api-key"]) {
    $(id).addEventListener("change", saveSettings);
  }
  checkServer();
}

document.addEventListener("DOMContentLoaded", init);
