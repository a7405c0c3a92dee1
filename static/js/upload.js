// Drag-and-drop upload in chunks, so a large batch shows progress and one bad request
// never loses the files of the other chunks. The server reports on every file.
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  if (!form) return;
  const input = form.querySelector("#upload-input");
  const zone = form.querySelector("#dropzone");
  const bar = form.querySelector("#upload-progress");
  const status = form.querySelector("#upload-status");
  const maxFiles = Math.max(1, Math.min(50, parseInt(form.dataset.maxFiles || "50", 10)));
  const maxBytes = 64 * 1024 * 1024;

  function chunks(files) {
    const out = [];
    let current = [];
    let bytes = 0;
    for (const file of files) {
      if (current.length && (current.length >= maxFiles || bytes + file.size > maxBytes)) {
        out.push(current);
        current = [];
        bytes = 0;
      }
      current.push(file);
      bytes += file.size;
    }
    if (current.length) out.push(current);
    return out;
  }

  function send(files, onProgress) {
    return new Promise(function (resolve, reject) {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("HX-Request", "true");
      xhr.setRequestHeader("X-CSRFToken", form.querySelector("[name=csrfmiddlewaretoken]").value);
      xhr.upload.onprogress = (e) => onProgress(e.loaded);
      xhr.onload = () => resolve(xhr);
      xhr.onerror = () => reject(new Error("the connection failed"));
      const data = new FormData();
      files.forEach((f) => data.append("files", f));
      xhr.send(data);
    });
  }

  function report(name, status, message) {
    const li = document.createElement("li");
    li.className = "result " + status;
    li.dataset.status = status;
    li.innerHTML = '<span class="name"></span> <span class="message"></span>';
    li.querySelector(".name").textContent = name;
    li.querySelector(".message").textContent = message;
    return li;
  }

  async function upload(fileList) {
    const files = Array.from(fileList);
    if (!files.length) return;
    const results = document.getElementById("upload-results");
    const total = files.reduce((s, f) => s + f.size, 0) || 1;
    const counts = { created: 0, duplicate: 0, rejected: 0 };
    let sent = 0;
    let filesSent = 0;
    results.innerHTML = "";
    bar.hidden = false;
    bar.value = 0;
    for (const chunk of chunks(files)) {
      const size = chunk.reduce((s, f) => s + f.size, 0);
      let items = [];
      try {
        const xhr = await send(chunk, (loaded) => { bar.value = (100 * (sent + loaded)) / total; });
        const holder = document.createElement("div");
        holder.innerHTML = xhr.responseText;
        const list = xhr.status === 200 && holder.querySelector("#upload-results");
        if (list) {
          items = Array.from(list.children);
        } else {
          const why = "Upload failed (" + xhr.status + "): " + holder.textContent.trim().slice(0, 200);
          items = chunk.map((f) => report(f.name, "rejected", why));
        }
      } catch (error) {
        items = chunk.map((f) => report(f.name, "rejected", "Upload failed: " + error.message));
      }
      items.forEach((li) => { counts[li.dataset.status] = (counts[li.dataset.status] || 0) + 1; results.appendChild(li); });
      sent += size;
      filesSent += chunk.length;
      bar.value = (100 * sent) / total;
      status.textContent = "Sent " + filesSent + " of " + files.length + " files…";
    }
    status.textContent = counts.created + " added, " + counts.duplicate + " duplicate, " + counts.rejected + " refused.";
    htmx.ajax("GET", window.location.href, { target: "#class-section", select: "#class-section", swap: "outerHTML" });
    // The model card counts the new images and keeps polling while they are embedded.
    if (form.dataset.statusUrl && document.getElementById("learner-status")) {
      htmx.ajax("GET", form.dataset.statusUrl, { target: "#learner-status", swap: "outerHTML" });
    }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    upload(input.files).then(() => { input.value = ""; });
  });
  ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (event) => {
    event.preventDefault();
    zone.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("over")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    upload(event.dataTransfer.files);
  });
})();
