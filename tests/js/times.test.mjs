// service/static/times.js: instants and wall-clock times in a facility's IANA time zone, with
// the offsets and daylight-saving changes worked out by hand.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { dateFormatter, dayStartIso, wallToUtcMs, zoneOffsetMs } from "../../service/static/times.js";

const HOUR = 3600 * 1000;

describe("zoneOffsetMs", () => {
  test("Shanghai is eight hours ahead of UTC all year", () => {
    assert.equal(zoneOffsetMs(Date.UTC(2026, 0, 15, 12), "Asia/Shanghai"), 8 * HOUR);
    assert.equal(zoneOffsetMs(Date.UTC(2026, 6, 15, 12), "Asia/Shanghai"), 8 * HOUR);
  });

  test("New York is five hours behind in winter and four in summer", () => {
    assert.equal(zoneOffsetMs(Date.UTC(2026, 0, 15, 12), "America/New_York"), -5 * HOUR);
    assert.equal(zoneOffsetMs(Date.UTC(2026, 6, 15, 12), "America/New_York"), -4 * HOUR);
  });

  test("half-hour zones keep their minutes", () => {
    assert.equal(zoneOffsetMs(Date.UTC(2026, 5, 1), "Asia/Kolkata"), 5.5 * HOUR);
  });

  test("an unknown zone is a RangeError", () => {
    assert.throws(() => zoneOffsetMs(0, "Mars/Olympus_Mons"), RangeError);
  });
});

describe("wallToUtcMs", () => {
  test("midnight in Shanghai is 16:00 UTC the day before", () => {
    assert.equal(wallToUtcMs(Date.UTC(2026, 11, 2), "Asia/Shanghai"), Date.UTC(2026, 11, 1, 16));
  });

  test("noon in New York either side of the spring change", () => {
    // 2026-03-08 02:00 EST became 03:00 EDT
    assert.equal(wallToUtcMs(Date.UTC(2026, 2, 7, 12), "America/New_York"), Date.UTC(2026, 2, 7, 17));
    assert.equal(wallToUtcMs(Date.UTC(2026, 2, 8, 12), "America/New_York"), Date.UTC(2026, 2, 8, 16));
  });

  test("noon in New York either side of the autumn change", () => {
    // 2026-11-01 02:00 EDT became 01:00 EST
    assert.equal(wallToUtcMs(Date.UTC(2026, 9, 31, 12), "America/New_York"), Date.UTC(2026, 9, 31, 16));
    assert.equal(wallToUtcMs(Date.UTC(2026, 10, 1, 12), "America/New_York"), Date.UTC(2026, 10, 1, 17));
  });

  test("is the inverse of adding the zone's offset", () => {
    const instant = Date.UTC(2026, 4, 20, 7, 45);
    const wall = instant + zoneOffsetMs(instant, "Europe/London");
    assert.equal(wallToUtcMs(wall, "Europe/London"), instant);
  });
});

describe("dayStartIso", () => {
  test("a Shanghai day starts at 16:00Z the evening before", () => {
    assert.equal(dayStartIso("2026-12-02", 0, "Asia/Shanghai"), "2026-12-01T16:00:00.000Z");
  });

  test("adding a day gives the first instant after the day, across months and years", () => {
    assert.equal(dayStartIso("2026-12-02", 1, "Asia/Shanghai"), "2026-12-02T16:00:00.000Z");
    assert.equal(dayStartIso("2026-12-31", 1, "Asia/Shanghai"), "2026-12-31T16:00:00.000Z");
  });

  test("the day clocks spring forward has 23 hours", () => {
    const start = dayStartIso("2026-03-08", 0, "America/New_York");
    const end = dayStartIso("2026-03-08", 1, "America/New_York");
    assert.equal(start, "2026-03-08T05:00:00.000Z");
    assert.equal(end, "2026-03-09T04:00:00.000Z");
    assert.equal(Date.parse(end) - Date.parse(start), 23 * HOUR);
  });

  test("a malformed day gives null", () => {
    for (const day of ["", undefined, "2026-12", "02/12/2026", "2026-12-02T00:00"]) {
      assert.equal(dayStartIso(day, 0, "Asia/Shanghai"), null);
    }
  });

  test("an unknown zone falls back to the runtime's own", () => {
    const own = Intl.DateTimeFormat().resolvedOptions().timeZone;
    assert.equal(dayStartIso("2026-06-01", 0, "Mars/Olympus_Mons"), dayStartIso("2026-06-01", 0, own));
  });
});

describe("dateFormatter", () => {
  const short = { dateStyle: "short", timeStyle: "short" };

  test("formats the instant in the given zone, not the runtime's", () => {
    const instant = "2026-12-01T16:30:00Z"; // 00:30 the next day in Shanghai
    assert.equal(dateFormatter("en-GB", "Asia/Shanghai", short)(instant), "02/12/2026, 00:30");
    assert.equal(dateFormatter("en-GB", "UTC", short)(instant), "01/12/2026, 16:30");
  });

  test("in the page's language", () => {
    const format = dateFormatter("zh-CN", "Asia/Shanghai", short);
    assert.equal(format("2026-12-01T16:30:00Z"), "2026/12/2 00:30");
  });

  test("accepts a Date as well as a timestamp", () => {
    const format = dateFormatter("en-GB", "Asia/Shanghai", { timeStyle: "medium" });
    assert.equal(format(new Date(Date.UTC(2026, 11, 1, 16, 30, 5))), "00:30:05");
  });

  test("no or a malformed timestamp gives an empty string", () => {
    const format = dateFormatter("en-GB", "Asia/Shanghai", short);
    for (const nothing of [undefined, null, "", "not a time"]) assert.equal(format(nothing), "");
  });

  test("an unknown zone falls back to the runtime's instead of failing", () => {
    const format = dateFormatter("en-GB", "Mars/Olympus_Mons", short);
    const own = dateFormatter("en-GB", undefined, short);
    assert.equal(format("2026-12-01T16:30:00Z"), own("2026-12-01T16:30:00Z"));
  });
});
