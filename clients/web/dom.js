// DOM helpers. Server and user text reaches the page through textContent only, never parsed
// as HTML.

export const $ = (id) => document.getElementById(id);

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key === "class") node.className = value;
    else if (key === "onclick") node.addEventListener("click", value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function show(id, visible) {
  $(id).hidden = !visible;
}

export function toast(text, kind = "error", detail = "") {
  const box = el("div", { class: `toast toast-${kind}`, role: "alert" }, el("strong", { text }));
  if (detail) box.append(el("div", { class: "toast-detail", text: detail }));
  box.addEventListener("click", () => box.remove());
  $("toasts").append(box);
  setTimeout(() => box.remove(), kind === "error" ? 8000 : 4000);
}
