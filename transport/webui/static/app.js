// Pier's web UI: fills the server-rendered page shells from the node's JSON
// API. Every datum is put into the page as text (textContent, attributes),
// never as markup. The token the user pastes is kept in sessionStorage, so
// it lives only as long as the tab, and is sent on every API call.
"use strict";

(function () {
  const TOKEN_KEY = "pier.token";
  // Client-side filters scan the listing page by page; this bounds one
  // screenful's scan so a rare match in a huge registry cannot hang the tab.
  const MAX_SCAN_REQUESTS = 20;
  const SCAN_PAGE = 1000; // the API's largest page

  const $ = (id) => document.getElementById(id);

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  function setState(state) {
    document.body.dataset.state = state;
  }

  function say(msg, isError) {
    const s = $("status");
    s.textContent = msg;
    s.className = isError ? "alert" : "";
  }

  // ApiError carries the HTTP status, so a 401 can ask for a token.
  class ApiError extends Error {
    constructor(status, msg) {
      super(msg);
      this.status = status;
    }
  }

  // api fetches JSON. credentials "omit" keeps the browser from answering
  // a 401's Basic challenge with its own password dialog: the token box is
  // the way in, and the token goes in the header explicitly.
  async function api(path) {
    const headers = { Accept: "application/json" };
    const t = token();
    if (t) headers.Authorization = "Bearer " + t;
    const resp = await fetch(path, { headers: headers, cache: "no-store", credentials: "omit" });
    let body = null;
    try {
      body = await resp.json();
    } catch (e) {
      body = null;
    }
    if (!resp.ok) {
      const why = body && body.error ? body.error : resp.statusText;
      throw new ApiError(resp.status, why);
    }
    return body;
  }

  function explain(err) {
    if (err instanceof ApiError && err.status === 401) {
      setState("auth");
      if (token()) {
        // Wrong, expired or revoked: ask again rather than keep sending it.
        sessionStorage.removeItem(TOKEN_KEY);
        showLogin();
        return "The node refused the token (" + err.message + "): it needs a token, paste another in the API token box above.";
      }
      return "This node needs a token: paste one in the API token box above. (" + err.message + ")";
    }
    if (err instanceof ApiError && err.status === 403) {
      return "Your token may not do this: " + err.message;
    }
    return "Error: " + err.message;
  }

  function fail(err) {
    if (document.body.dataset.state !== "auth") setState("error");
    say(explain(err), true);
  }

  // artifactPath escapes each segment of a name and keeps its slashes, as
  // the API's own links do.
  function artifactPath(prefix, name) {
    return prefix + name.split("/").map(encodeURIComponent).join("/");
  }

  function artifactPage(name) {
    return "/ui/artifact?name=" + encodeURIComponent(name);
  }

  function humanBytes(n) {
    if (n === undefined || n === null) return "";
    const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let v = n;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return (i === 0 ? String(v) : v.toFixed(1)) + " " + units[i];
  }

  function when(s) {
    if (!s) return "";
    const d = new Date(s);
    if (isNaN(d.getTime())) return s;
    return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC").replace(/Z$/, " UTC");
  }

  // cell appends a table cell holding text, or the node given.
  function cell(tr, content, header) {
    const td = document.createElement(header ? "th" : "td");
    if (header) td.scope = "row";
    if (content instanceof Node) td.appendChild(content);
    else td.textContent = content === undefined || content === null ? "" : String(content);
    tr.appendChild(td);
    return td;
  }

  function link(href, text) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    return a;
  }

  function emptyRow(tbody, cols, text) {
    const tr = document.createElement("tr");
    const td = cell(tr, text);
    td.colSpan = cols;
    td.className = "empty";
    tbody.appendChild(tr);
  }

  // shellQuote makes s one word for a POSIX shell.
  function shellQuote(s) {
    if (/^[A-Za-z0-9_.,:\/=+@%-]+$/.test(s)) return s;
    return "'" + s.replace(/'/g, "'\\''") + "'";
  }

  // globRegExp turns a glob (* any run, ? one character) into an anchored
  // regular expression; every other character is literal.
  function globRegExp(g) {
    let re = "^";
    for (const ch of g) {
      if (ch === "*") re += "[\\s\\S]*";
      else if (ch === "?") re += "[\\s\\S]";
      else re += ch.replace(/[.*+?^${}()|[\]\\\/]/g, "\\$&");
    }
    return new RegExp(re + "$", "u");
  }

  function isGlob(s) {
    return /[*?]/.test(s);
  }

  // ---- login ----

  // showLogin shows the token box, or the log-out button once a token is
  // kept.
  function showLogin() {
    const in_ = token() !== "";
    $("login").hidden = in_;
    $("session").hidden = !in_;
  }

  function initLogin() {
    const form = $("login");
    const show = showLogin;
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const v = $("token").value.trim();
      if (!v) return;
      sessionStorage.setItem(TOKEN_KEY, v);
      $("token").value = "";
      show();
      say("", false);
      load();
    });
    $("logout").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      show();
      load();
    });
    show();
  }

  // ---- the artifact list ----

  const list = {
    // pages[i] is where page i starts: the server's page token ("" at the
    // start) and matches already fetched but not yet shown.
    pages: [],
    index: 0,
    query: null,
  };

  function readQuery() {
    const f = new URLSearchParams(location.search);
    const q = {
      name: f.get("name") || "",
      label: f.get("label") || "",
      tag: f.get("tag") || "",
      version: f.get("version") || "",
      digest: f.get("digest") || "",
      size: parseInt(f.get("size") || "50", 10) || 50,
    };
    for (const k of ["name", "label", "tag", "version", "digest"]) $("q-" + k).value = q[k];
    $("q-size").value = String(q.size);
    return q;
  }

  // matcher is the part of a query the API cannot answer, as a predicate;
  // null when the API answers all of it.
  function matcher(q) {
    const tests = [];
    if (isGlob(q.name)) {
      const re = globRegExp(q.name);
      tests.push((a) => re.test(a.name));
    }
    if (q.version) {
      const re = isGlob(q.version) ? globRegExp(q.version) : null;
      tests.push((a) => (re ? re.test(a.version || "") : (a.version || "") === q.version));
    }
    if (q.digest) {
      let d = q.digest.trim().toLowerCase();
      if (!d.startsWith("sha256:")) d = "sha256:" + d;
      tests.push((a) => (a.digest || "").startsWith(d));
    }
    if (tests.length === 0) return null;
    return (a) => tests.every((t) => t(a));
  }

  // serverParams is the part of a query the API answers: a name prefix
  // (for a glob, what comes before its first wildcard), labels and a tag.
  function serverParams(q, limit) {
    const p = new URLSearchParams();
    let prefix = q.name;
    const star = prefix.search(/[*?]/);
    if (star >= 0) prefix = prefix.slice(0, star);
    p.set("prefix", prefix);
    for (const l of q.label.split(",")) {
      if (l.trim()) p.append("label", l.trim());
    }
    if (q.tag) p.set("tag", q.tag.trim());
    p.set("limit", String(limit));
    return p;
  }

  async function fetchPage(q, start) {
    const match = matcher(q);
    const limit = match ? SCAN_PAGE : q.size;
    const buf = start.buf.slice();
    let tok = start.token;
    let requests = 0;
    let done = start.done;
    while (buf.length < q.size && !done && requests < MAX_SCAN_REQUESTS) {
      const p = serverParams(q, limit);
      if (tok) p.set("page_token", tok);
      const body = await api("/api/v1/artifacts?" + p.toString());
      requests++;
      for (const a of body.artifacts || []) {
        if (!match || match(a)) buf.push(a);
      }
      tok = body.next_page_token || "";
      done = tok === "";
    }
    return {
      shown: buf.slice(0, q.size),
      next: { token: tok, buf: buf.slice(q.size), done: done },
      capped: !done && buf.length < q.size,
    };
  }

  function renderRows(arts) {
    const tbody = $("results").tBodies[0];
    tbody.replaceChildren();
    if (arts.length === 0) {
      emptyRow(tbody, 6, "No artifact matches.");
      return;
    }
    for (const a of arts) {
      const tr = document.createElement("tr");
      tr.dataset.name = a.name;
      cell(tr, link(artifactPage(a.name), a.name));
      cell(tr, a.version);
      const size = cell(tr, humanBytes(a.size));
      size.title = a.size + " bytes";
      cell(tr, when(a.created));
      cell(tr, (a.tags || []).join(", "));
      const code = document.createElement("code");
      code.textContent = (a.digest || "").replace(/^sha256:/, "").slice(0, 12);
      code.title = a.digest || "";
      cell(tr, code);
      tbody.appendChild(tr);
    }
  }

  async function showListPage() {
    setState("loading");
    say("Loading…", false);
    const q = list.query;
    try {
      const r = await fetchPage(q, list.pages[list.index]);
      list.pages.length = list.index + 1;
      const hasNext = r.next.buf.length > 0 || !r.next.done;
      if (hasNext) list.pages.push(r.next);
      renderRows(r.shown);
      $("prev").disabled = list.index === 0;
      $("next").disabled = !hasNext;
      $("page-no").textContent = "Page " + (list.index + 1);
      $("results-caption").textContent =
        "Newest first: " + r.shown.length + " shown on page " + (list.index + 1) +
        (r.capped ? " (stopped scanning; the next page searches further)" : "");
      say("", false);
      setState("ready");
    } catch (err) {
      $("results").tBodies[0].replaceChildren();
      fail(err);
    }
  }

  function initList() {
    $("search").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const p = new URLSearchParams();
      for (const k of ["name", "label", "tag", "version", "digest"]) {
        const v = $("q-" + k).value.trim();
        if (v) p.set(k, v);
      }
      if ($("q-size").value !== "50") p.set("size", $("q-size").value);
      const qs = p.toString();
      history.pushState(null, "", qs ? "/?" + qs : "/");
      load();
    });
    $("clear").addEventListener("click", () => {
      history.pushState(null, "", "/");
      // After the form's own reset has run.
      setTimeout(load, 0);
    });
    $("next").addEventListener("click", () => {
      if (list.index + 1 < list.pages.length) {
        list.index++;
        showListPage();
      }
    });
    $("prev").addEventListener("click", () => {
      if (list.index > 0) {
        list.index--;
        showListPage();
      }
    });
    window.addEventListener("popstate", load);
  }

  function loadList() {
    list.query = readQuery();
    list.pages = [{ token: "", buf: [], done: false }];
    list.index = 0;
    return showListPage();
  }

  // ---- one artifact ----

  function serverBase() {
    return location.protocol + "//" + location.host;
  }

  function setCommands(a) {
    const url = serverBase() + artifactPath("/artifacts/", a.name);
    const auth = token() ? ' -H "Authorization: Bearer $PIER_TOKEN"' : "";
    $("cmd-curl").value = "curl -f" + auth + " -O " + shellQuote(url);
    const server = location.protocol === "https:" ? serverBase() : location.host;
    $("cmd-pier").value = "pier pull --server " + shellQuote(server) + " " + shellQuote(a.name);
  }

  function renderArtifact(a) {
    $("a-digest").textContent = a.digest;
    $("a-size").textContent = humanBytes(a.size) + " (" + a.size + " bytes)";
    $("a-version").textContent = a.version || "—";
    $("a-commit").textContent = a.commit || "—";
    $("a-created").textContent = when(a.created);
    $("a-tags").textContent = (a.tags || []).join(", ") || "—";

    const dl = $("download");
    dl.href = artifactPath("/artifacts/", a.name);
    dl.setAttribute("download", a.name.split("/").pop());
    dl.dataset.size = String(a.size);
    setCommands(a);

    const labels = $("labels").tBodies[0];
    labels.replaceChildren();
    const keys = Object.keys(a.labels || {}).sort();
    if (keys.length === 0) emptyRow(labels, 2, "No labels.");
    for (const k of keys) {
      const tr = document.createElement("tr");
      cell(tr, k, true);
      cell(tr, a.labels[k]);
      labels.appendChild(tr);
    }

    const hist = $("history").tBodies[0];
    hist.replaceChildren();
    const events = a.tag_history || [];
    if (events.length === 0) emptyRow(hist, 4, "No tag was ever set.");
    for (const e of events) {
      const tr = document.createElement("tr");
      cell(tr, when(e.time));
      cell(tr, e.tag);
      cell(tr, e.action);
      cell(tr, e.actor || "—");
      hist.appendChild(tr);
    }
    $("artifact").hidden = false;
  }

  async function loadArtifact() {
    const name = $("a-title").dataset.name;
    if (!name) {
      say("No artifact named: open one from the list.", true);
      setState("error");
      return;
    }
    setState("loading");
    say("Loading…", false);
    try {
      const a = await api(artifactPath("/api/v1/artifacts/", name) + "?history=true");
      renderArtifact(a);
      say("", false);
      setState("ready");
    } catch (err) {
      $("artifact").hidden = true;
      fail(err);
    }
  }

  // download saves the artifact. Without a token the link is followed as
  // is, so the browser streams it to disk. With one, a link cannot carry
  // the header: the bytes are fetched with it and saved from memory, which
  // suits artifacts up to a few hundred MiB (the curl line has no limit).
  async function download(ev) {
    if (!token()) return;
    ev.preventDefault();
    const a = ev.currentTarget;
    const status = $("download-status");
    status.textContent = "Downloading…";
    try {
      const resp = await fetch(a.href, {
        headers: { Authorization: "Bearer " + token() },
        cache: "no-store",
        credentials: "omit",
      });
      if (!resp.ok) {
        let why = resp.statusText;
        try {
          why = (await resp.json()).error || why;
        } catch (e) {
          // not JSON: keep the status text
        }
        throw new ApiError(resp.status, why);
      }
      const blob = await resp.blob();
      const url = URL.createObjectURL(blob);
      const save = document.createElement("a");
      save.href = url;
      save.download = a.getAttribute("download") || "artifact";
      document.body.appendChild(save);
      save.click();
      save.remove();
      // The browser has taken the blob once the click is handled.
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      status.textContent = "Saved " + humanBytes(blob.size) + ".";
    } catch (err) {
      status.textContent = explain(err);
    }
  }

  function initArtifact() {
    $("download").addEventListener("click", download);
    for (const b of document.querySelectorAll("button[data-copy]")) {
      b.addEventListener("click", async () => {
        const input = $(b.dataset.copy);
        try {
          await navigator.clipboard.writeText(input.value);
          b.textContent = "Copied";
        } catch (e) {
          // No clipboard on plain-HTTP pages of other hosts: select the
          // line so Ctrl-C copies it.
          input.focus();
          input.select();
          b.textContent = "Press Ctrl-C";
        }
        setTimeout(() => (b.textContent = "Copy"), 2000);
      });
    }
  }

  // ---- the cluster ----

  const REDUNDANCY = [
    ["full", "every shard on a live node"],
    ["degraded", "a shard missing, still readable; repair rebuilds it"],
    ["at_risk", "readable only if no further shard is lost"],
    ["unavailable", "too few shards reachable, or corrupt: pulls get a 503"],
  ];
  // The most shards seen on each draining node, for its progress bar.
  const drainStart = {};
  let clusterTimer = 0;

  function renderCluster(m, s) {
    $("c-node").textContent = s.node;
    $("c-leader").textContent = s.leader || m.leader || "none";
    $("c-term").textContent = s.term;
    $("c-commit").textContent = s.commit_index;
    $("c-applied").textContent = s.applied_index;
    $("c-artifacts").textContent = s.artifacts;
    $("c-objects").textContent = s.objects;
    $("c-bytes").textContent = humanBytes(s.bytes);
    $("c-tombstones").textContent = s.tombstones;
    const halted = $("c-halted");
    halted.hidden = !s.halted;
    halted.textContent = s.halted ? "State machine HALTED at " + s.halted : "";

    const members = $("members").tBodies[0];
    members.replaceChildren();
    for (const x of m.members || []) {
      const tr = document.createElement("tr");
      tr.dataset.id = x.id;
      cell(tr, x.id + (x.id === m.leader ? " (leader)" : ""), true);
      cell(tr, x.datacenter);
      cell(tr, x.http_addr);
      cell(tr, x.role);
      cell(tr, x.state);
      cell(tr, x.status);
      cell(tr, x.shard_files === undefined ? "?" : x.shard_files);
      cell(tr, x.shard_bytes === undefined ? "?" : humanBytes(x.shard_bytes));
      cell(tr, x.disk_free === undefined ? "?" : humanBytes(x.disk_free));
      members.appendChild(tr);
    }

    const red = $("redundancy").tBodies[0];
    red.replaceChildren();
    for (const [k, meaning] of REDUNDANCY) {
      const tr = document.createElement("tr");
      tr.dataset.state = k;
      cell(tr, k.replace("_", " "), true);
      cell(tr, (s.redundancy || {})[k] || 0);
      cell(tr, meaning);
      red.appendChild(tr);
    }

    const dr = $("draining").tBodies[0];
    dr.replaceChildren();
    const draining = s.draining || {};
    const ids = Object.keys(draining).sort();
    if (ids.length === 0) emptyRow(dr, 3, "No node is draining.");
    for (const id of ids) {
      const left = draining[id];
      drainStart[id] = Math.max(drainStart[id] || 0, left);
      const tr = document.createElement("tr");
      cell(tr, id, true);
      cell(tr, left);
      const p = document.createElement("progress");
      p.max = drainStart[id] || 1;
      p.value = drainStart[id] - left;
      p.textContent = Math.round((100 * p.value) / p.max) + "%";
      p.setAttribute("aria-label", "shards moved off " + id);
      cell(tr, p);
      dr.appendChild(tr);
    }

    const st = s.stats || {};
    $("r-repaired").textContent = st.repaired_shards || 0;
    $("r-failures").textContent = st.repair_failures || 0;
    $("r-moved").textContent = humanBytes(st.moved_bytes || 0);
    $("r-scrubbed").textContent = humanBytes(st.scrubbed_bytes || 0);
    $("r-corrupt").textContent = st.corrupt_blocks || 0;
    $("cluster").hidden = false;
  }

  async function loadCluster() {
    clearTimeout(clusterTimer);
    if (document.body.dataset.state !== "ready") setState("loading");
    try {
      const [m, s] = await Promise.all([api("/api/v1/cluster/members"), api("/api/v1/status")]);
      renderCluster(m, s);
      say("", false);
      setState("ready");
    } catch (err) {
      fail(err);
      if (err instanceof ApiError && err.status === 401) return; // wait for a login
    }
    clusterTimer = setTimeout(() => {
      if (document.visibilityState === "visible") loadCluster();
      else document.addEventListener("visibilitychange", loadCluster, { once: true });
    }, 5000);
  }

  // ---- start ----

  const pages = {
    list: { init: initList, load: loadList },
    artifact: { init: initArtifact, load: loadArtifact },
    cluster: { init: () => {}, load: loadCluster },
  };
  const current = pages[document.body.dataset.page];

  function load() {
    if (current) current.load();
  }

  document.addEventListener("DOMContentLoaded", () => {
    initLogin();
    if (current) current.init();
    load();
  });
})();
