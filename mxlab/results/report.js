(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function pct(p) { return (100 * p).toFixed(1) + "%"; }
  function imageCell(name, img) {
    var td = el("td"), box = el("div", "thumb"), text = el("div");
    if (img.src) {
      var i = el("img"); i.src = img.src; i.alt = name; box.appendChild(i);
    } else {
      var ph = el("div", "noimg", "no picture"); ph.title = img.why; box.appendChild(ph);
    }
    // The file name stands out; the folder (or URL's site) it came from is shown small under it.
    var cut = name.replace(/\/+$/, "").lastIndexOf("/");
    var base = el("div", "imgname", name.slice(cut + 1)); base.title = name; text.appendChild(base);
    if (cut >= 0) text.appendChild(el("div", "why", name.slice(0, cut + 1)));
    if (!img.src) text.appendChild(el("div", "why", img.why));
    box.appendChild(text); td.appendChild(box);
    return td;
  }
  function modelCell(c) {
    var td = el("td");
    if (!c) { td.appendChild(el("span", "missing", "no result")); return td; }
    if (c.e !== undefined) { td.className = "failed"; td.appendChild(el("div", "err", "error: " + c.e)); return td; }
    c.t.forEach(function (t, k) {
      var row = el("div", k === 0 ? "lab first" : "lab"), bar = el("div", "bar"), fill = el("div", "fill");
      fill.style.width = Math.max(0, Math.min(100, 100 * t[1])).toFixed(1) + "%";
      var label = data.labels[t[0]], name = el("span", "name", label); name.title = label;
      row.appendChild(name); row.appendChild(el("span", "p", pct(t[1])));
      bar.appendChild(fill); row.appendChild(bar); td.appendChild(row);
    });
    return td;
  }
  function failedRow(r) {
    for (var k = 2; k < r.length; k++) if (r[k] && r[k].e !== undefined) return true;
    return false;
  }
  function setUp(section) {
    var run = data.runs[+section.dataset.run], host = run.hosts[+section.dataset.host];
    var holder = section.querySelector(".rows"), size = data.page_size, page = 0, onlyFailed = false;
    var pager = el("div", "pager"), prev = el("button", "prev", "\u25c0 prev"), next = el("button", "next", "next \u25b6");
    var where = el("span", "where"), filt = el("label"), box = el("input");
    box.type = "checkbox"; filt.appendChild(box); filt.appendChild(document.createTextNode(" only failed inputs"));
    pager.appendChild(prev); pager.appendChild(where); pager.appendChild(next); pager.appendChild(filt);
    var table = el("table", "results"), head = el("tr"), tbody = el("tbody");
    head.appendChild(el("th", "img", "image"));
    run.models.forEach(function (m) { head.appendChild(el("th", null, m)); });
    var thead = el("thead"); thead.appendChild(head); table.appendChild(thead); table.appendChild(tbody);
    holder.appendChild(pager); holder.appendChild(table);
    function rows() { return onlyFailed ? host.rows.filter(failedRow) : host.rows; }
    function show() {
      var all = rows(), pages = Math.max(1, Math.ceil(all.length / size));
      page = Math.max(0, Math.min(page, pages - 1));
      tbody.textContent = "";
      all.slice(page * size, (page + 1) * size).forEach(function (r) {
        var tr = el("tr");
        tr.appendChild(imageCell(r[0], data.images[r[1]]));
        for (var k = 2; k < r.length; k++) tr.appendChild(modelCell(r[k]));
        tbody.appendChild(tr);
      });
      where.textContent = all.length ? "page " + (page + 1) + " of " + pages + " (" + all.length + " images)" : "no results";
      prev.disabled = page === 0; next.disabled = page >= pages - 1;
      section.dataset.page = page; section.dataset.pages = pages;
    }
    prev.addEventListener("click", function () { page--; show(); });
    next.addEventListener("click", function () { page++; show(); });
    box.addEventListener("change", function () { onlyFailed = box.checked; page = 0; show(); });
    show();
  }
  // Rows are built when a host's section is first opened: a large fleet run opens at once.
  Array.prototype.forEach.call(document.querySelectorAll("details.host"), function (section) {
    if (section.open) { setUp(section); return; }
    section.addEventListener("toggle", function once() {
      if (!section.open) return;
      section.removeEventListener("toggle", once); setUp(section);
    });
  });
})();
