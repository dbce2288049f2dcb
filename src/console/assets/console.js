// The console's only script, and an optional one: every page and form works without it.
// It adds an upload progress bar, column headers that sort the rows of the page shown, and
// j/k to move through a list's rows while the list has the focus (so the keys never take
// over typing or a screen reader's own keys).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("upload");
  const bar = document.getElementById("upload-progress");
  if (form && bar && window.XMLHttpRequest && window.FormData) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const request = new XMLHttpRequest();
      request.open("POST", form.action);
      bar.hidden = false;
      request.upload.addEventListener("progress", (progress) => {
        if (progress.lengthComputable) {
          const percent = Math.round((100 * progress.loaded) / progress.total);
          bar.value = percent;
          bar.textContent = percent + "%";
        }
      });
      request.addEventListener("load", () => {
        // The answer is the page to show: the acknowledgment, or the form with its errors.
        document.open();
        document.write(request.responseText);
        document.close();
      });
      request.addEventListener("error", () => {
        // Not sent again behind the user's back: they see it failed and send it when ready.
        bar.hidden = true;
        let message = document.getElementById("upload-failed");
        if (!message) {
          message = document.createElement("p");
          message.id = "upload-failed";
          message.className = "error";
          message.setAttribute("role", "alert");
          form.prepend(message);
        }
        message.textContent = "The file could not be sent (the connection failed). Check the connection and send it again.";
      });
      request.send(new FormData(form));
    });
  }

  // Sorting the page's rows by a column: a button in each header, announced by aria-sort.
  // Tables whose cells span rows are left as they are.
  document.querySelectorAll("main table").forEach((table) => {
    const body = table.tBodies[0];
    if (!body || !table.tHead || body.rows.length < 2 || table.querySelector("td[rowspan]") || table.closest("form")) return;
    const headers = Array.from(table.tHead.rows[0].cells);
    headers.forEach((header, column) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "sort";
      button.textContent = header.textContent;
      header.textContent = "";
      header.appendChild(button);
      button.addEventListener("click", () => {
        const ascending = header.getAttribute("aria-sort") !== "ascending";
        headers.forEach((other) => other.removeAttribute("aria-sort"));
        header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        const numeric = header.classList.contains("num");
        const key = (row) => {
          const text = row.cells[column] ? row.cells[column].textContent.trim() : "";
          if (!numeric) return text;
          const number = parseFloat(text.replace(/[$,]/g, ""));
          return isNaN(number) ? -Infinity : number;
        };
        const rows = Array.from(body.rows);
        rows.sort((a, b) => {
          const [x, y] = [key(a), key(b)];
          const order = numeric ? x - y : String(x).localeCompare(String(y));
          return ascending ? order : -order;
        });
        rows.forEach((row) => body.appendChild(row));
      });
    });
  });

  const list = document.querySelector("table.keyboard-list tbody");
  if (list) {
    let index = -1;
    const rows = () => Array.from(list.querySelectorAll("tr"));
    const select = (next) => {
      const all = rows();
      if (all.length === 0) return;
      index = Math.max(0, Math.min(all.length - 1, next));
      all.forEach((row, i) => row.classList.toggle("selected", i === index));
      const link = all[index].querySelector("a");
      if (link) link.focus();
    };
    list.closest("table").addEventListener("keydown", (event) => {
      if (event.altKey || event.ctrlKey || event.metaKey) return;
      if (event.key === "j") select(index + 1);
      if (event.key === "k") select(index - 1);
    });
  }
});
