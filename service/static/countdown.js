// teleread — the time left to a consultation's due time ("12 min left", "Overdue 1 h 5 min"),
// shown on the worklist and in the report editor. Pure: no DOM, no clock reads (now is a
// parameter), no catalogue: it names the message and its values, and the page translates them
// with its own t(), so the same wording shows in each language (tests/js/countdown.test.mjs).

/** Time left (in minutes) below which a due time is "soon" and the row is emphasised. */
export const SOON_MINUTES = 30;

/** How often a page that shows one countdown (the report editor) redraws it. The text counts
 *  whole minutes, so a 15 s tick keeps it at most a quarter of a minute behind. */
export const COUNTDOWN_TICK_MS = 15000;

/**
 * The countdown to `dueMs` at `nowMs` (both ms since the epoch) as `{ key, vars, cls }`: the
 * message key for the page's t() with its values, and the emphasis class ("due-soon",
 * "overdue" or ""). Null when there is no due time (`dueMs` not a finite number).
 *
 * Whole minutes, rounded down, in hours and minutes from one hour up (no days: "50 h 0 min").
 * At the due instant itself it is still "less than 1 min left"; any moment after it is overdue
 * by at least one minute, so an overdue row never reads "Overdue 0 min".
 */
export function countdown(dueMs, nowMs) {
  if (!Number.isFinite(dueMs)) return null;
  const diffMinutes = (dueMs - nowMs) / 60000;
  if (diffMinutes >= 0) {
    const whole = Math.floor(diffMinutes);
    if (whole < 1) return { key: "left_lt_1", vars: {}, cls: "due-soon" };
    const cls = whole < SOON_MINUTES ? "due-soon" : "";
    return whole < 60
      ? { key: "left_min", vars: { n: whole }, cls }
      : { key: "left_hm", vars: hoursMinutes(whole), cls };
  }
  const late = Math.max(1, Math.floor(-diffMinutes));
  return late < 60
    ? { key: "overdue_min", vars: { n: late }, cls: "overdue" }
    : { key: "overdue_hm", vars: hoursMinutes(late), cls: "overdue" };
}

/** The countdown's text through the page's translator `t(key, vars)`, with its class; null
 *  when there is no due time. */
export function countdownText(dueMs, nowMs, t) {
  const left = countdown(dueMs, nowMs);
  return left && { text: t(left.key, left.vars), cls: left.cls };
}

function hoursMinutes(minutes) {
  return { h: Math.floor(minutes / 60), m: minutes % 60 };
}
