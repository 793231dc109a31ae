/* The workflow YAML editor: line numbers, and each problem the validator reports marked at its line.
 *
 * Our own small script (no editor library). The textarea does not wrap, so line N of the text is row N
 * of the gutter; problem bands sit behind the transparent textarea and scroll with it. While typing,
 * the text is POSTed (with the CSRF header, via Bastion.fetch) to the editor's data-validate URL, which
 * answers {"ok", "problems": [{line, column, message}]}; nothing is saved until "Save" is pressed.
 */
(function () {
  "use strict";
  var root = document.getElementById("editor");
  if (!root) return;
  var ta = root.querySelector("textarea");
  var gutter = root.querySelector(".gutter");
  var bands = root.querySelector(".bands");
  var list = document.getElementById("editor-problems");
  var status = document.getElementById("editor-status");
  var url = root.getAttribute("data-validate");
  var problems = [];
  try { problems = JSON.parse(root.getAttribute("data-problems") || "[]"); } catch (e) { problems = []; }
  var timer = null;
  var seq = 0;
  var checks = 0;

  function lineCount() { return ta.value.split("\n").length; }

  function byLine() {
    var n = lineCount();
    var map = {};
    problems.forEach(function (p) {
      var line = Math.min(Math.max(1, p.line | 0), n);
      (map[line] = map[line] || []).push(p);
    });
    return map;
  }

  function describe(p) { return "line " + p.line + ", column " + p.column + ": " + p.message; }

  function lineHeight() {
    var lh = parseFloat(window.getComputedStyle(ta).lineHeight);
    return isNaN(lh) ? 20 : lh;
  }

  function sync() {
    gutter.scrollTop = ta.scrollTop;
    bands.style.transform = "translate(" + (-ta.scrollLeft) + "px," + (-ta.scrollTop) + "px)";
  }

  function draw() {
    var n = lineCount();
    var marks = byLine();
    var frag = document.createDocumentFragment();
    for (var i = 1; i <= n; i++) {
      var span = document.createElement("span");
      span.className = marks[i] ? "ln err" : "ln";
      span.setAttribute("data-line", String(i));
      span.textContent = String(i);
      if (marks[i]) span.title = marks[i].map(describe).join("\n");
      frag.appendChild(span);
    }
    var filler = document.createElement("span");
    filler.className = "ln";
    filler.style.height = "40vh";
    frag.appendChild(filler);
    gutter.replaceChildren(frag);

    var lh = lineHeight();
    var pad = parseFloat(window.getComputedStyle(ta).paddingTop) || 0;
    var bandFrag = document.createDocumentFragment();
    Object.keys(marks).forEach(function (key) {
      var line = parseInt(key, 10);
      var band = document.createElement("div");
      band.className = "band";
      band.setAttribute("data-line", key);
      band.style.top = ((line - 1) * lh + pad) + "px";
      var msg = document.createElement("span");
      msg.className = "band-msg";
      msg.textContent = marks[key][0].message;
      band.appendChild(msg);
      bandFrag.appendChild(band);
    });
    bands.replaceChildren(bandFrag);

    list.replaceChildren();
    problems.forEach(function (p) {
      var li = document.createElement("li");
      li.setAttribute("data-line", String(p.line));
      li.setAttribute("data-column", String(p.column));
      var btn = document.createElement("button");
      btn.type = "button";
      btn.className = "link goto";
      btn.textContent = "line " + p.line + ", column " + p.column;
      var msg = document.createElement("span");
      msg.className = "msg";
      msg.textContent = p.message;
      li.appendChild(btn);
      li.appendChild(document.createTextNode(": "));
      li.appendChild(msg);
      list.appendChild(li);
    });
    sync();
  }

  function setStatus(text, kind) {
    status.textContent = text;
    status.className = "editor-status small" + (kind ? " " + kind : "");
  }

  function validate() {
    var mine = ++seq;
    Bastion.fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify({ source: ta.value })
    }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    }).then(function (data) {
      if (mine !== seq) return; // a newer check is on its way
      problems = data.problems || [];
      draw();
      checks += 1;
      root.setAttribute("data-checks", String(checks));
      if (problems.length) {
        setStatus(problems.length + " problem" + (problems.length === 1 ? "" : "s"), "bad");
      } else {
        setStatus("Valid" + (data.workflow_id ? ": " + data.workflow_id : ""), "ok");
      }
    }).catch(function () {
      if (mine === seq) setStatus("Could not check the workflow just now; saving still validates it.", "bad");
    });
  }

  function goTo(line, column) {
    var lines = ta.value.split("\n");
    var pos = 0;
    for (var i = 0; i < Math.min(line - 1, lines.length - 1); i++) pos += lines[i].length + 1;
    var target = lines[Math.min(line, lines.length) - 1] || "";
    pos += Math.min(Math.max(0, column - 1), target.length);
    ta.focus();
    ta.setSelectionRange(pos, pos);
    var lh = lineHeight();
    var top = (line - 1) * lh;
    if (top < ta.scrollTop || top > ta.scrollTop + ta.clientHeight - 2 * lh) ta.scrollTop = Math.max(0, top - ta.clientHeight / 3);
    sync();
  }

  ta.addEventListener("input", function () {
    draw();
    setStatus("Checking…", "");
    if (timer) clearTimeout(timer);
    timer = setTimeout(validate, 350);
  });
  ta.addEventListener("scroll", sync);
  ta.addEventListener("keydown", function (ev) {
    if (ev.key === "Tab" && !ev.shiftKey && !ev.altKey && !ev.ctrlKey && !ev.metaKey) {
      ev.preventDefault(); // YAML indents with spaces
      var start = ta.selectionStart;
      ta.setRangeText("  ", start, ta.selectionEnd, "end");
      ta.dispatchEvent(new Event("input"));
    }
  });
  list.addEventListener("click", function (ev) {
    var li = ev.target.closest && ev.target.closest("li[data-line]");
    if (li) goTo(parseInt(li.getAttribute("data-line"), 10), parseInt(li.getAttribute("data-column"), 10));
  });
  gutter.addEventListener("click", function (ev) {
    var ln = ev.target.closest && ev.target.closest(".ln.err");
    if (ln) {
      var line = parseInt(ln.getAttribute("data-line"), 10);
      var first = problems.filter(function (p) { return Math.min(p.line, lineCount()) === line; })[0];
      goTo(line, first ? first.column : 1);
    }
  });
  window.addEventListener("resize", draw);
  draw();
  root.setAttribute("data-ready", "1");
})();
