// protein-sedd report: the picks table (sort, filter, copy, download) and a C-alpha trace viewer.
// Written for this report (MIT, as protein-sedd); no other code, no network.
"use strict";
(function () {
  // -- the picks table ----------------------------------------------------------------------------
  const table = document.getElementById("picks");
  if (table) {
    const body = table.tBodies[0];
    const headers = Array.from(table.tHead.rows[0].cells);
    const count = document.getElementById("picks-count");
    const filter = document.getElementById("picks-filter");
    const key = (row, column) => {
      const cell = row.cells[column];
      return cell.dataset.value !== undefined ? parseFloat(cell.dataset.value) : cell.textContent;
    };
    const sortBy = (column) => {
      const header = headers[column];
      const ascending = !header.classList.contains("asc");
      headers.forEach((h) => h.classList.remove("asc", "desc"));
      header.classList.add(ascending ? "asc" : "desc");
      const rows = Array.from(body.rows);
      rows.sort((a, b) => {
        const x = key(a, column), y = key(b, column);
        const missing = (v) => v === "-" || (typeof v === "number" && isNaN(v));
        if (missing(x) !== missing(y)) return missing(x) ? 1 : -1; // missing values last either way
        const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
        return ascending ? order : -order;
      });
      rows.forEach((row) => body.appendChild(row));
    };
    headers.forEach((header, column) => {
      header.addEventListener("click", () => sortBy(column));
      header.addEventListener("keydown", (e) => { if (e.key === "Enter") sortBy(column); });
    });
    const shown = () => {
      const text = filter.value.trim().toUpperCase();
      let n = 0;
      Array.from(body.rows).forEach((row) => {
        const hit = !text || row.textContent.toUpperCase().includes(text);
        row.hidden = !hit;
        n += hit ? 1 : 0;
      });
      count.textContent = `${n} of ${body.rows.length} picks shown`;
    };
    filter.addEventListener("input", shown);
    shown();
    const fasta = () => {
      // the shown rows only, in the order shown, so a filtered table copies what the user sees
      const all = document.getElementById("picks-fasta").value;
      const records = new Map();
      all.split(/(?=^>)/m).forEach((record) => {
        const id = record.slice(1).split(/\s/)[0];
        if (id) records.set(id, record.endsWith("\n") ? record : record + "\n");
      });
      const idColumn = headers.findIndex((h) => h.textContent.trim() === "id");
      return Array.from(body.rows).filter((r) => !r.hidden)
        .map((r) => records.get(r.cells[idColumn].textContent.trim()) || "").join("");
    };
    document.getElementById("copy-fasta").addEventListener("click", (event) => {
      const text = fasta();
      const done = () => { event.target.textContent = "Copied"; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, () => fallbackCopy(text, done));
      } else {
        fallbackCopy(text, done);
      }
    });
    document.getElementById("download-fasta").addEventListener("click", () => {
      const url = URL.createObjectURL(new Blob([fasta()], { type: "text/plain" }));
      const link = document.createElement("a");
      link.href = url;
      link.download = "picks.fasta";
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    });
  }
  function fallbackCopy(text, done) {
    const area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); done(); } finally { area.remove(); }
  }

  // -- the C-alpha trace viewer -------------------------------------------------------------------
  const data = document.getElementById("structure-data");
  if (!data) return;
  const traces = JSON.parse(data.textContent);
  const plddts = JSON.parse(document.getElementById("structure-plddt").textContent);
  const bands = [[90, "#0053D6"], [70, "#65CBF3"], [50, "#FFDB13"], [0, "#FF7D45"]]; // AlphaFold DB's
  const colour = (v) => bands.find(([low]) => v >= low)[1];
  document.querySelectorAll(".structure").forEach((card) => {
    const index = parseInt(card.dataset.index, 10);
    const points = traces[index], plddt = plddts[index];
    const centre = [0, 1, 2].map((k) => points.reduce((s, p) => s + p[k], 0) / points.length);
    const centred = points.map((p) => p.map((x, k) => x - centre[k]));
    const radius = Math.max(...centred.map((p) => Math.hypot(...p))) || 1;
    const canvas = document.createElement("canvas");
    const size = 320, scale = window.devicePixelRatio || 1;
    canvas.width = size * scale; canvas.height = size * scale;
    canvas.setAttribute("aria-label", card.querySelector(".label").textContent);
    const context = canvas.getContext("2d");
    if (!context) return; // no 2-D canvas: the still picture stays
    let yaw = 0.6, pitch = 0.3, zoom = 1;
    const draw = () => {
      const [cy, sy, cp, sp] = [Math.cos(yaw), Math.sin(yaw), Math.cos(pitch), Math.sin(pitch)];
      const view = centred.map(([x, y, z]) => {
        const x1 = cy * x + sy * z, z1 = -sy * x + cy * z;
        return [x1, cp * y - sp * z1, sp * y + cp * z1];
      });
      const f = (0.45 * size * zoom) / radius;
      const segments = [];
      for (let i = 0; i + 1 < view.length; i++) segments.push(i);
      segments.sort((a, b) => view[a][2] + view[a + 1][2] - view[b][2] - view[b + 1][2]); // far first
      context.setTransform(scale, 0, 0, scale, 0, 0);
      context.fillStyle = "#ffffff";
      context.fillRect(0, 0, size, size);
      context.lineCap = "round";
      segments.forEach((i) => {
        const depth = (view[i][2] + radius) / (2 * radius); // 0 far .. 1 near
        context.globalAlpha = 0.35 + 0.65 * depth;
        context.strokeStyle = colour(plddt[i]);
        context.lineWidth = 2 + 3 * depth * zoom;
        context.beginPath();
        context.moveTo(size / 2 + f * view[i][0], size / 2 - f * view[i][1]);
        context.lineTo(size / 2 + f * view[i + 1][0], size / 2 - f * view[i + 1][1]);
        context.stroke();
      });
      context.globalAlpha = 1;
    };
    let dragging = null;
    canvas.addEventListener("pointerdown", (e) => { dragging = [e.clientX, e.clientY]; canvas.setPointerCapture(e.pointerId); });
    canvas.addEventListener("pointerup", () => { dragging = null; });
    canvas.addEventListener("pointermove", (e) => {
      if (!dragging) return;
      yaw += (e.clientX - dragging[0]) * 0.01;
      pitch += (e.clientY - dragging[1]) * 0.01;
      dragging = [e.clientX, e.clientY];
      draw();
    });
    canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      zoom = Math.min(4, Math.max(0.3, zoom * (e.deltaY < 0 ? 1.1 : 0.9)));
      draw();
    }, { passive: false });
    draw();
    card.querySelector("img.fallback").replaceWith(canvas);
  });
})();
