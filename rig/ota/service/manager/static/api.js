// The service's HTTP API as the page uses it: the signed-in session, calls, errors, DOM helpers.
// Nothing here knows about a particular view.

const KEY = "rig.otaManager.session";
const SIGN_IN = "/v1/local/signin";

export class ApiError extends Error {
  // rig's error body: {rule, message, hint, status, error}
  constructor(status, body) {
    const message = (body && body.message) || `the service answered ${status}`;
    super(message);
    this.status = status;
    this.rule = (body && body.rule) || "";
    this.hint = (body && body.hint) || "";
  }

  get text() {
    return this.hint ? `${this.message} (${this.hint})` : this.message;
  }
}

export const session = {
  // The stored sign-in, even past its expiry: the service, which issued it, says when it ends.
  get() {
    const raw = sessionStorage.getItem(KEY);
    return raw ? JSON.parse(raw) : null;
  },
  live() {
    const s = session.get();
    return Boolean(s && Date.now() < s.expiresAt);
  },
  set(answer) {
    const s = {
      token: answer.access_token,
      partnerId: answer.partnerId,
      accountId: answer.accountId,
      expiresAt: Date.now() + answer.expires_in * 1000,
    };
    sessionStorage.setItem(KEY, JSON.stringify(s));
    return s;
  },
  clear() {
    sessionStorage.removeItem(KEY);
  },
};

let onSignedOut = () => {};
export function whenSignedOut(callback) {
  onSignedOut = callback;
}

// Paths relative to the partner's OTA API, its local-only API and its account's device API.
export const ota = (path) => `/v1/ota/partners/${encodeURIComponent(session.get().partnerId)}${path}`;
export const local = (path) => `/v1/local/partners/${encodeURIComponent(session.get().partnerId)}${path}`;
export const account = (path) => `/v1/accounts/${encodeURIComponent(session.get().accountId)}${path}`;

export async function api(method, path, { json, body, query, type } = {}) {
  const s = session.get();
  const headers = {};
  if (s) headers.Authorization = `Bearer ${s.token}`;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (body !== undefined) {
    headers["Content-Type"] = type || "application/octet-stream";
  }
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  let answer;
  try {
    answer = await fetch(url, { method, headers, body });
  } catch {
    throw new ApiError(0, { rule: "UNREACHABLE", message: `the OTA service at ${location.origin} does not answer`,
      hint: "is rig ota serve still running? Reload the page once it is" });
  }
  if (answer.status === 204) return null;
  const data = await answer.json().catch(() => null);
  if (answer.status === 401 && path !== SIGN_IN) {
    // expired or revoked (a restarted service forgets its tokens): back to the sign-in
    session.clear();
    onSignedOut("Your session has ended: sign in again.");
  }
  if (!answer.ok) throw new ApiError(answer.status, data);
  return data;
}

// Every element of a paged list (Afero's page object), or the array itself if the answer is one.
export async function everything(path, query = {}) {
  const found = [];
  for (let page = 0; ; page += 1) {
    const answer = await api("GET", path, { query: { ...query, page, size: 500 } });
    if (Array.isArray(answer)) return answer;
    found.push(...answer.content);
    if (page + 1 >= answer.totalPages) return found;
  }
}

export async function signIn(username, password) {
  const answer = await api("POST", SIGN_IN, { json: { username, password } });
  return session.set(answer);
}

// el("li", {class: "x", onclick: f}, "text", child): text is always text, never HTML.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (id) => document.getElementById(id);

export function show(node, error) {
  node.textContent = error ? (error instanceof ApiError ? error.text : String(error)) : "";
}

export function kib(bytes) {
  return bytes < 1024 ? `${bytes} B` : `${(bytes / 1024).toFixed(1)} KiB`;
}
