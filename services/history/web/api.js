// The livefeed HTTP API as the pages use it: JSON in, JSON out, errors in one shape.

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `The server answered ${status}.`);
    this.status = status;
    this.code = body?.error || 'http_error';
    this.fields = Array.isArray(body?.fields) ? body.fields : [];
    this.body = body;
  }
}

async function parse(response) {
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

/** A read; `token` (a private feed's reader token) goes in the Authorization header, never the URL. */
export async function getJSON(path, { token } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, { headers, cache: 'no-store' });
  } catch {
    throw new ApiError(0, { error: 'network', message: 'The server could not be reached.' });
  }
  return parse(response);
}

/** A write with the newsroom token; `key` makes a retry of the same write safe. */
export async function write(method, path, { token, body, ifMatch, key } = {}) {
  const headers = { Accept: 'application/json', Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (ifMatch !== undefined && ifMatch !== null) headers['If-Match'] = `"${ifMatch}"`;
  if (key) headers['Idempotency-Key'] = key;
  let response;
  try {
    response = await fetch(path, {
      method, headers, cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, { error: 'network', message: 'The server could not be reached; nothing was changed. Try again.' });
  }
  return parse(response);
}

/** A random Idempotency-Key (getRandomValues works outside secure contexts too). */
export function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function feedPath(feed, suffix = '') {
  return `/v1/feeds/${encodeURIComponent(feed)}${suffix}`;
}
