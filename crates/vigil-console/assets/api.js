// The admin API, with the key from session storage (never a cookie).

const KEY = 'vigil.apiKey';

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let onAuth = () => {};
/** Called with the status when the API refuses the key (401/403). */
export function onAuthNeeded(callback) { onAuth = callback; }

export function getKey() { return sessionStorage.getItem(KEY) || ''; }
export function setKey(key) {
  if (key) sessionStorage.setItem(KEY, key); else sessionStorage.removeItem(KEY);
}

/** Calls the API; JSON in and out; a refused call throws an ApiError. */
export async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  const key = getKey();
  if (key) headers['x-api-key'] = key;
  const init = { method, headers, credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 204) return null;
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!response.ok) {
    if (response.status === 401 || response.status === 403) onAuth(response.status);
    const message = (json && typeof json.error === 'string') ? json.error : `HTTP ${response.status}`;
    throw new ApiError(response.status, message);
  }
  return json;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body);
