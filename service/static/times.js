// teleread — instants and wall-clock times in a facility's time zone (IANA name). Pure: no DOM,
// no clock reads (time is a parameter), so node's test runner checks it (tests/js/times.test.mjs).
// Pages use the versions of common.js bound to the user's facility zone.

/** Milliseconds the zone is ahead of UTC at the instant `utcMs`, to the minute. Throws
 *  RangeError for a zone the runtime does not know. */
export function zoneOffsetMs(utcMs, zone) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone,
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  }).formatToParts(new Date(utcMs));
  const v = Object.fromEntries(parts.map((p) => [p.type, Number(p.value)]));
  const wall = Date.UTC(v.year, v.month - 1, v.day, v.hour, v.minute, v.second);
  return Math.round((wall - Math.floor(utcMs / 1000) * 1000) / 60000) * 60000;
}

/** A wall time in the zone, given as if it were UTC (`Date.UTC(...)`), → the UTC instant.
 *  Two passes, so that a daylight-saving change between the two readings is honoured. */
export function wallToUtcMs(wallAsUtcMs, zone) {
  const first = wallAsUtcMs - zoneOffsetMs(wallAsUtcMs, zone);
  return wallAsUtcMs - zoneOffsetMs(first, zone);
}

/** The first instant of the day "YYYY-MM-DD" (+ `addDays`) in the zone, as ISO 8601 UTC; null
 *  for a malformed day. A day in Shanghai starts at 16:00Z the evening before: counting UTC days
 *  put a morning's work in the previous day. An unknown zone falls back to the runtime's own. */
export function dayStartIso(day, addDays, zone) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day || "");
  if (!match) return null;
  const wall = Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]) + addDays);
  try {
    return new Date(wallToUtcMs(wall, zone)).toISOString();
  } catch (_err) {
    return new Date(wallToUtcMs(wall, undefined)).toISOString();
  }
}

/**
 * A function ISO 8601 timestamp → text in `locale`, in the zone, with Intl.DateTimeFormat
 * `options`; "" for no or a malformed timestamp. An unknown zone (a typo in a facility record)
 * falls back to the runtime's own zone rather than breaking the page.
 */
export function dateFormatter(locale, zone, options) {
  let format;
  try {
    format = new Intl.DateTimeFormat(locale, { timeZone: zone, ...options });
  } catch (_err) {
    format = new Intl.DateTimeFormat(locale, options);
  }
  return (iso) => {
    if (!iso) return "";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? "" : format.format(date);
  };
}
