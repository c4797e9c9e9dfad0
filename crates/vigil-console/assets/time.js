// Time ranges, periods and time formatting, UTC or local, always labelled.

export const RELATIVE = { '1h': 3600, '3h': 3 * 3600, '12h': 12 * 3600, '1d': 86400 };

/** The [start, end] in ms of the URL's range state. */
export function rangeMs(state, now = Date.now()) {
  if (state.range === 'custom' && state.start && state.end) {
    const start = Date.parse(state.start);
    const end = Date.parse(state.end);
    if (Number.isFinite(start) && Number.isFinite(end) && start < end) return [start, end];
  }
  const seconds = RELATIVE[state.range] || RELATIVE['3h'];
  return [now - seconds * 1000, now];
}

/** A dashboard's `start` (`-PT3H`, `-P1D`) as one of the picker's ranges. */
export function rangeOfStart(start) {
  const m = /^-P(T?)(\d+)([SMHDW])$/.exec(start || '');
  if (!m) return null;
  const unit = { S: 1, M: 60, H: 3600, D: 86400, W: 604800 }[m[3]];
  const seconds = Number(m[2]) * unit;
  for (const [name, s] of Object.entries(RELATIVE)) if (s === seconds) return name;
  return null;
}

/**
 * The period to ask for: the widget's, made coarser when the range would
 * need more than 1,440 points (the metric store's limit), and a multiple
 * of 60 for anything above a minute.
 */
export function fitPeriod(period, startMs, endMs) {
  const seconds = Math.max(1, Math.ceil((endMs - startMs) / 1000));
  let p = period;
  if (seconds / p > 1440) p = Math.ceil(seconds / 1440 / 60) * 60;
  return p;
}

function pad(n) { return String(n).padStart(2, '0'); }

/** `2026-12-02 17:31:05 UTC` or `... local`. */
export function formatTime(ms, tz) {
  const d = new Date(ms);
  if (tz === 'utc') {
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
      `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
  }
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} local`;
}

/** The value of a `datetime-local` input for `ms` in `tz`. */
export function inputValue(ms, tz) {
  const d = new Date(tz === 'utc' ? ms : ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

/** A `datetime-local` input's value, read in `tz`, as an ISO string. */
export function fromInput(value, tz) {
  if (!value) return null;
  const ms = Date.parse(value + ':00Z');
  if (!Number.isFinite(ms)) return null;
  const shifted = tz === 'utc' ? ms : ms + new Date(ms).getTimezoneOffset() * 60000;
  return new Date(shifted).toISOString();
}

/** A number for a person: whole numbers as such, others to 3 significant digits. */
export function formatNumber(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (Number.isInteger(v)) return v.toLocaleString('en-US');
  const abs = Math.abs(v);
  if (abs >= 1000) return Math.round(v).toLocaleString('en-US');
  return Number(v.toPrecision(3)).toString();
}
