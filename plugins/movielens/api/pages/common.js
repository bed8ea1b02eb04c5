// Shared by the pages: calls the API (relative paths, the UI's session cookie as login) and builds tables.
"use strict";
const API = "../api/v1";

async function api(path) {
  const response = await fetch(API + path, {credentials: "same-origin", headers: {Accept: "application/json"}});
  const body = await response.json().catch(() => ({detail: response.statusText}));
  if (response.status === 401) {
    throw new Error("Not logged in: log in to Airflow (" + location.origin + "/auth/login) and reload this page.");
  }
  if (!response.ok) {
    const detail = Array.isArray(body.detail) ? body.detail.map(d => d.msg).join("; ") : body.detail;
    throw new Error(detail || ("HTTP " + response.status));
  }
  return body;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

function table(columns, rows, testId) {
  const head = el("tr", {}, ...columns.map(c => el("th", {text: c.title})));
  const body = rows.map(r => el("tr", {}, ...columns.map(c => {
    const v = c.value(r);
    return el("td", {}, v instanceof Node ? v : (v ?? ""));
  })));
  return el("table", {"data-testid": testId}, el("thead", {}, head), el("tbody", {}, ...body));
}

function fmt(x, digits = 4) { return typeof x === "number" ? x.toFixed(digits) : ""; }

function hashParams() { return new URLSearchParams(location.hash.slice(1)); }

function show(target, ...nodes) { const t = document.getElementById(target); t.replaceChildren(...nodes); }

function problem(target, err) { show(target, el("p", {class: "error", role: "alert", text: err.message})); }

const movieColumns = [
  {title: "Title", value: m => m.title},
  {title: "Year", value: m => m.year},
  {title: "Genres", value: m => (m.genres || []).join(", ")},
];
