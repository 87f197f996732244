// packshot review page: lists a run's products a page at a time and records decisions.
// Data from the server only ever reaches the page through textContent and attributes, never HTML.
"use strict";
(function () {
  const body = document.body;
  const pageSize = parseInt(body.dataset.pageSize, 10) || 50;
  const takesPoints = body.dataset.takesPoints === "yes";
  const list = document.getElementById("products");
  const filters = document.getElementById("filters");
  const reviewer = document.getElementById("reviewer");
  reviewer.value = localStorage.getItem("packshot-reviewer") || "";
  reviewer.addEventListener("change", () => localStorage.setItem("packshot-reviewer", reviewer.value));
  let offset = 0;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  async function api(method, path, payload) {
    const init = { method, headers: {} };
    if (payload !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    const response = await fetch(path, init);
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.detail ? String(data.detail) : response.statusText);
    return data;
  }

  function query() {
    const params = new URLSearchParams(new FormData(filters));
    params.set("offset", offset);
    params.set("limit", pageSize);
    return params;
  }

  let latest = 0; // a slower, older answer never replaces a newer one
  async function load() {
    const ticket = ++latest;
    const data = await api("GET", "/api/products?" + query());
    if (ticket !== latest) return;
    list.replaceChildren(...data.items.map(card));
    for (const id of ["pager", "pager-top"]) pager(document.getElementById(id), data.total);
  }

  function pager(node, total) {
    const last = Math.min(offset + pageSize, total);
    const prev = el("button", { type: "button", class: "prev", disabled: offset === 0, text: "previous" });
    const next = el("button", { type: "button", class: "next", disabled: last >= total, text: "next" });
    prev.onclick = () => { offset = Math.max(0, offset - pageSize); load(); };
    next.onclick = () => { offset += pageSize; load(); };
    const where = el("span", { class: "count", text: total ? `${offset + 1}-${last} of ${total}` : "no products" });
    node.replaceChildren(prev, where, next);
  }

  function decisionLabel(decision) {
    if (!decision) return "undecided";
    const why = decision.reason ? `: ${decision.reason}` : "";
    return decision.status + why;
  }

  function card(p) {
    const section = el("section", { class: "product", "data-sku": p.sku, "data-status": p.status });
    section.append(el("h2", {},
      el("span", { class: "sku", text: p.sku || "(no SKU)" }), " ",
      el("span", { class: "badge " + p.status, text: p.status.replace("_", " ") }), " ",
      el("span", { class: "badge decision " + p.decision, text: p.decision }), " ",
      el("small", { text: p.source })));
    if (p.error) section.append(el("div", { class: "error", text: p.error }));
    if (p.warnings.length) {
      section.append(el("ul", { class: "warnings" }, ...p.warnings.map((w) => el("li", { text: w }))));
    }
    const grid = el("div", { class: "grid" });
    const photo = sourceFigure(p);
    grid.append(photo.figure);
    for (const o of p.outputs) grid.append(outputFigure(p, o, photo));
    section.append(grid);
    if (p.outputs.length) section.append(skuActions(p));
    return section;
  }

  function sourceFigure(p) {
    const figure = el("figure", { class: "source" });
    const state = { box: null, points: [], figure };
    if (!p.source_preview) {
      figure.append(el("div", { class: "missing", text: "no source preview in this run" }),
                    el("figcaption", { text: p.source_image || "source photo" }));
      return state;
    }
    const frame = el("div", { class: "frame" });
    const img = el("img", { src: p.source_preview, alt: "source photo of " + p.sku, loading: "lazy",
                            draggable: "false" });
    const overlay = el("div", { class: "box", hidden: true });
    frame.append(img, overlay);
    figure.append(frame, el("figcaption", { text: `source photo ${p.source_image || ""}` +
      (p.photo_size ? ` (${p.photo_size[0]}x${p.photo_size[1]}); drag to draw a box` +
      (takesPoints ? ", click for include points, shift-click for exclude points" : "") : "") }));
    if (!p.photo_size) return state;
    const [width, height] = p.photo_size;
    const toSource = (event) => {
      const r = img.getBoundingClientRect();
      const x = Math.round(((event.clientX - r.left) / r.width) * width);
      const y = Math.round(((event.clientY - r.top) / r.height) * height);
      return [Math.max(0, Math.min(width, x)), Math.max(0, Math.min(height, y))];
    };
    let start = null;
    frame.addEventListener("mousedown", (event) => { event.preventDefault(); start = toSource(event); });
    frame.addEventListener("mousemove", (event) => {
      if (start) show(overlay, img, width, height, box(start, toSource(event)));
    });
    frame.addEventListener("mouseup", (event) => {
      if (!start) return;
      const end = toSource(event);
      const b = box(start, end);
      start = null;
      if (b[2] - b[0] >= 2 && b[3] - b[1] >= 2) {
        state.box = b;
        show(overlay, img, width, height, b);
        if (state.onBox) state.onBox(b);
      } else if (takesPoints) {
        const point = { x: Math.min(end[0], width - 1), y: Math.min(end[1], height - 1), include: !event.shiftKey };
        state.points.push(point);
        frame.append(el("span", { class: "point " + (point.include ? "include" : "exclude"),
          style: `left:${(100 * point.x) / width}%;top:${(100 * point.y) / height}%` }));
      }
    });
    return state;
  }

  function box(a, b) {
    return [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1])];
  }

  function show(overlay, img, width, height, b) {
    overlay.hidden = false;
    overlay.style.left = `${(100 * b[0]) / width}%`;
    overlay.style.top = `${(100 * b[1]) / height}%`;
    overlay.style.width = `${(100 * (b[2] - b[0])) / width}%`;
    overlay.style.height = `${(100 * (b[3] - b[1])) / height}%`;
  }

  function outputFigure(p, o, photo) {
    // which of the product's photos (1 = main) and, for a variant's own photo, which variant it shows
    const label = [o.photo > 1 ? `photo ${o.photo}` : "",
      o.kind === "scene" && o.scene !== null ? `scene ${o.scene + 1}` : o.kind, o.preset, o.variant,
      o.shows_variant ? `(${o.shows_variant}, photographed)` : ""]
      .filter(Boolean).join(" ");
    const figure = el("figure", { class: "output" + (o.checks.length ? " bad" : ""), "data-key": o.key });
    figure.append(el("a", { href: o.url, target: "_blank", rel: "noopener" },
      el("img", { src: o.thumb, alt: label, loading: "lazy" })));
    const caption = el("figcaption", {}, el("span", { text: `${label} ${o.width}x${o.height}` +
      (o.generated ? " generated" : "") }));
    for (const c of o.checks) caption.append(el("div", { class: "check", text: "fails: " + c }));
    const state = el("div", { class: "decision", text: decisionLabel(o.decision) });
    caption.append(state);
    if (o.redo) caption.append(el("div", { class: "redo", text: o.redo }));  // a rejected color variant
    const reason = el("input", { class: "reason", type: "text", placeholder: "reason", "aria-label": "reason",
                                 value: o.decision ? o.decision.reason : "" });
    const inputs = {};
    const correction = el("div", { class: "correction" });
    if (o.kind === "cutout" && !(o.photo > 1)) {  // a box is drawn on the main photo (the one shown)
      correction.append(el("span", { text: "box" }));
      for (const name of ["x0", "y0", "x1", "y1"]) {
        inputs[name] = el("input", { class: "coord", name, type: "number", min: 0, step: 1, "aria-label": name });
        correction.append(inputs[name]);
      }
      photo.onBox = (b) => ["x0", "y0", "x1", "y1"].forEach((name, i) => { inputs[name].value = b[i]; });
    }
    const seed = el("input", { class: "new-seed", type: "checkbox", "aria-label": "new seed" });
    if (o.generated) correction.append(el("label", {}, seed, " new seed"));
    const approve = el("button", { type: "button", class: "approve", text: "Approve" });
    const reject = el("button", { type: "button", class: "reject", text: "Reject" });
    const error = el("div", { class: "error", role: "alert" });
    approve.onclick = () => send(p.sku, o.key, "approved", reason.value, null, state, error);
    reject.onclick = () => {
      let fix = null;
      const coords = ["x0", "y0", "x1", "y1"].map((n) => (inputs[n] ? inputs[n].value.trim() : ""));
      if (coords.every((v) => v !== "")) fix = { box: coords.map((v) => parseInt(v, 10)) };
      else if (o.kind === "cutout" && photo.points.length) fix = { points: photo.points };
      else if (o.generated && seed.checked) fix = { new_seed: true };
      send(p.sku, o.key, "rejected", reason.value, fix, state, error);
    };
    caption.append(reason, correction, el("div", { class: "actions" }, approve, reject), error);
    figure.append(caption);
    return figure;
  }

  function skuActions(p) {
    const reason = el("input", { class: "reason", type: "text", placeholder: "reason for the whole SKU" });
    const state = el("span", { class: "decision" });
    const error = el("span", { class: "error", role: "alert" });
    const all = el("button", { type: "button", class: "approve-all", text: "Approve all" });
    const none = el("button", { type: "button", class: "reject-all", text: "Reject all" });
    all.onclick = () => send(p.sku, null, "approved", reason.value, null, state, error).then(load);
    none.onclick = () => send(p.sku, null, "rejected", reason.value, null, state, error).then(load);
    return el("div", { class: "sku-actions" }, reason, all, none, state, error);
  }

  async function send(sku, key, status, reason, correction, state, error) {
    error.textContent = "";
    try {
      const who = reviewer.value.trim() || null;
      const saved = await api("POST", "/api/decisions", { sku, key, status, reason, correction, reviewer: who });
      state.textContent = decisionLabel(saved);
      state.dataset.saved = saved.status;
    } catch (exc) {
      error.textContent = exc.message;
    }
  }

  filters.addEventListener("change", () => { offset = 0; load(); });
  filters.addEventListener("submit", (event) => { event.preventDefault(); offset = 0; load(); });
  document.getElementById("export").onclick = async () => {
    const out = document.getElementById("export-result");
    try {
      const r = await api("POST", "/api/export");
      out.textContent = `${r.outputs} approved files listed in ${r.json} and ${r.csv}`;
    } catch (exc) {
      out.textContent = "export failed: " + exc.message;
    }
  };
  load().catch((exc) => list.replaceChildren(el("div", { class: "error", text: exc.message })));
})();
