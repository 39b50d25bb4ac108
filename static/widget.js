// The model page's inference widget: posts to the hub's Inference API (/models/{ns}/{name})
// with the page's session and draws the answer for the task. Model output is only ever set as
// text, never as HTML.
(function () {
  "use strict";
  const root = document.getElementById("widget");
  if (!root) return;
  const task = root.dataset.task;
  const endpoint = root.dataset.endpoint;
  const form = root.querySelector(".widget-form");
  const status = root.querySelector(".widget-status");
  const output = root.querySelector(".widget-output");
  const examples = JSON.parse(document.getElementById("widget-examples").textContent || "[]");

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function useExample(i) {
    const ex = examples[i];
    if (!ex) return;
    if (task === "sentence-similarity") {
      form.elements.source.value = ex.source_sentence || "";
      form.elements.sentences.value = (ex.sentences || []).join("\n");
    } else {
      form.elements.inputs.value = ex.text || "";
    }
  }
  useExample(0);
  form.elements.example.addEventListener("change", (e) => useExample(Number(e.target.value)));

  function request() {
    if (task === "sentence-similarity") {
      const sentences = form.elements.sentences.value.split("\n").map((s) => s.trim()).filter(Boolean);
      return { inputs: { source_sentence: form.elements.source.value, sentences: sentences }, parameters: {} };
    }
    const inputs = form.elements.inputs.value;
    if (task === "text-generation") {
      const n = Number(form.elements.max_new_tokens.value) || 40;
      return { inputs: inputs, parameters: { max_new_tokens: n }, stream: true };
    }
    return { inputs: inputs };
  }

  // A row with a label, a bar as long as the score and the score in percent.
  function bar(label, score) {
    const row = el("div", "bar-row");
    row.appendChild(el("span", "bar-label", label));
    const track = el("span", "bar-track");
    const fill = el("span", "bar-fill");
    fill.style.width = Math.max(0, Math.min(1, score)) * 100 + "%";
    track.appendChild(fill);
    row.appendChild(track);
    row.appendChild(el("span", "bar-score", (score * 100).toFixed(1) + "%"));
    return row;
  }

  // Entities over the input text; offsets are code points, as Python counts them.
  function entities(text, ents) {
    const chars = Array.from(text);
    const box = el("p", "entities");
    let at = 0;
    ents.slice().sort((a, b) => a.start - b.start).forEach((e) => {
      if (e.start < at) return;
      box.appendChild(document.createTextNode(chars.slice(at, e.start).join("")));
      const mark = el("mark", "entity");
      const label = e.entity_group || e.entity || "";
      mark.dataset.label = label;
      mark.appendChild(document.createTextNode(chars.slice(e.start, e.end).join("")));
      mark.appendChild(el("small", "", " " + label + " " + (e.score * 100).toFixed(0) + "%"));
      box.appendChild(mark);
      at = e.end;
    });
    box.appendChild(document.createTextNode(chars.slice(at).join("")));
    if (!ents.length) box.appendChild(el("span", "empty", " (no entities found)"));
    return box;
  }

  function draw(data, body) {
    output.replaceChildren();
    if (task === "text-classification") {
      (Array.isArray(data[0]) ? data[0] : data).forEach((r) => output.appendChild(bar(r.label, r.score)));
    } else if (task === "fill-mask") {
      data.forEach((r) => {
        const row = bar(r.token_str, r.score);
        row.title = r.sequence;
        output.appendChild(row);
      });
    } else if (task === "token-classification") {
      output.appendChild(entities(body.inputs, data));
    } else if (task === "sentence-similarity") {
      data.forEach((score, i) => output.appendChild(bar(body.inputs.sentences[i], score)));
    } else if (task === "summarization" || task === "translation" || task === "text2text-generation") {
      const r = Array.isArray(data) ? data[0] : data;
      output.appendChild(el("p", "generated", r.summary_text ?? r.translation_text ?? r.generated_text ?? ""));
    } else if (task === "feature-extraction") {
      const v = Array.isArray(data[0]) ? (Array.isArray(data[0][0]) ? data[0][0] : data[0]) : data;
      output.appendChild(el("p", "", v.length + " dimensions"));
      output.appendChild(el("pre", "vector", "[" + v.slice(0, 8).map((x) => x.toFixed(4)).join(", ") + (v.length > 8 ? ", …]" : "]")));
    }
  }

  async function errorOf(resp) {
    try {
      const j = await resp.json();
      return j.error || resp.statusText;
    } catch (_) {
      return resp.status + " " + resp.statusText;
    }
  }

  // Server-sent events: `data:{json}` lines; tokens are appended as they arrive.
  async function stream(resp, body) {
    output.replaceChildren();
    const pre = el("pre", "generated");
    pre.appendChild(el("b", "", body.inputs));
    const gen = el("span", "new-text", "");
    pre.appendChild(gen);
    output.appendChild(pre);
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buffered = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (!line.startsWith("data:")) continue;
        const payload = line.slice(5).trim();
        if (payload === "[DONE]") return;
        const ev = JSON.parse(payload);
        if (ev.error) throw new Error(ev.error);
        if (ev.token && !ev.token.special) gen.textContent += ev.token.text;
        if (ev.generated_text !== null && ev.generated_text !== undefined) {
          gen.textContent = ev.generated_text;
          status.textContent = "Done.";
        }
      }
    }
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = request();
    const button = form.querySelector("button");
    button.disabled = true;
    status.textContent = "Computing… (the first request loads the model)";
    root.classList.remove("failed");
    const started = performance.now();
    try {
      const resp = await fetch(endpoint, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: task === "text-generation" ? "text/event-stream" : "application/json" },
        body: JSON.stringify(body),
      });
      if (!resp.ok) throw new Error(await errorOf(resp));
      if (task === "text-generation") {
        await stream(resp, body);
      } else {
        draw(await resp.json(), body);
      }
      status.textContent = "Computed in " + Math.round(performance.now() - started) + " ms.";
    } catch (err) {
      root.classList.add("failed");
      status.textContent = "Error: " + err.message;
    } finally {
      button.disabled = false;
    }
  });
})();
