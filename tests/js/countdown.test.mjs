// service/static/countdown.js: the time left to a due time, as the worklist and the report
// editor show it, rendered in English and Chinese through the catalogue the pages are given
// (the templates' English strings, the zh_CN .po translations) and the pages' own format().
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";

import { COUNTDOWN_TICK_MS, countdown, countdownText } from "../../service/static/countdown.js";
import { format } from "../../service/static/messages.js";

const ROOT = new URL("../../", import.meta.url);
const KEYS = ["left_lt_1", "left_min", "left_hm", "overdue_min", "overdue_hm"];
const MINUTE = 60 * 1000;
const HOUR = 60 * MINUTE;
const DUE = Date.UTC(2026, 11, 3, 8, 0);

/** The English strings a page template hands its script for the countdown keys. */
function templateStrings(name) {
  const source = readFileSync(new URL(`service/templates/${name}`, ROOT), "utf8");
  return Object.fromEntries(
    KEYS.map((key) => {
      const match = new RegExp(`"${key}": _\\("([^"]*)"\\)`).exec(source);
      assert.ok(match, `${name} has no ${key}`);
      return [key, match[1]];
    }),
  );
}

/** The zh_CN translations of `english`'s strings, from the shipped catalogue. */
function chinese(english) {
  const po = readFileSync(new URL("service/locale/zh_CN/LC_MESSAGES/messages.po", ROOT), "utf8");
  const pairs = new Map([...po.matchAll(/^msgid "(.*)"\nmsgstr "(.*)"$/gm)].map((m) => [m[1], m[2]]));
  return Object.fromEntries(Object.entries(english).map(([key, msgid]) => [key, pairs.get(msgid)]));
}

/** A page's t() over these strings, as common.js builds it. */
const translator = (messages) => (key, vars) => format(messages[key] ?? key, vars);

const EN = templateStrings("worklist.html");
const ZH = chinese(EN);
const en = translator(EN);
const zh = translator(ZH);

/** The countdown's text in English at `nowMs`. */
const left = (nowMs) => countdownText(DUE, nowMs, en).text;

describe("the catalogue the pages use", () => {
  test("the worklist and the report editor are given the same strings", () => {
    assert.deepEqual(templateStrings("report_editor.html"), EN);
  });

  test("every countdown string has a Chinese translation", () => {
    for (const key of KEYS) assert.ok(ZH[key], key);
  });
});

describe("minutes and hours", () => {
  test("under an hour counts whole minutes, rounded down", () => {
    assert.equal(left(DUE - 12 * MINUTE - 59 * 1000), "12 min left");
  });

  test("from an hour up it is hours and minutes", () => {
    assert.equal(left(DUE - 60 * MINUTE), "1 h 0 min left");
    assert.equal(left(DUE - 65 * MINUTE), "1 h 5 min left");
  });

  test("days stay in hours: two days and three hours is 51 h", () => {
    assert.equal(left(DUE - 51 * HOUR), "51 h 0 min left");
    assert.equal(countdownText(DUE, DUE + 24 * HOUR + MINUTE, en).text, "Overdue 24 h 1 min");
  });

  test("overdue counts the minutes since the due time", () => {
    assert.equal(left(DUE + 7 * MINUTE + 30 * 1000), "Overdue 7 min");
    assert.equal(left(DUE + 59 * MINUTE), "Overdue 59 min");
    assert.equal(left(DUE + 61 * MINUTE), "Overdue 1 h 1 min");
  });
});

describe("the boundary at the due time", () => {
  test("at the due instant it is less than a minute left, not overdue", () => {
    assert.deepEqual(countdown(DUE, DUE), { key: "left_lt_1", vars: {}, cls: "due-soon" });
  });

  test("a full minute before it is one minute left", () => {
    assert.equal(left(DUE - MINUTE + 1), "Less than 1 min left");
    assert.equal(left(DUE - MINUTE), "1 min left");
  });

  test("any moment after it is overdue by at least one minute, never zero", () => {
    assert.deepEqual(countdown(DUE, DUE + 1), { key: "overdue_min", vars: { n: 1 }, cls: "overdue" });
    assert.equal(left(DUE + 119 * 1000), "Overdue 1 min");
    assert.equal(left(DUE + 120 * 1000), "Overdue 2 min");
  });
});

describe("emphasis", () => {
  test("less than 30 minutes left is due-soon, 30 and more is plain", () => {
    assert.equal(countdown(DUE, DUE - 29 * MINUTE - 59 * 1000).cls, "due-soon");
    assert.equal(countdown(DUE, DUE - 30 * MINUTE).cls, "");
    assert.equal(countdown(DUE, DUE - 5 * HOUR).cls, "");
  });

  test("past the due time is overdue however long", () => {
    assert.equal(countdown(DUE, DUE + 3 * HOUR).cls, "overdue");
  });
});

describe("no due time", () => {
  test("an absent or malformed due time gives no countdown", () => {
    assert.equal(countdown(Date.parse(""), DUE), null);
    assert.equal(countdownText(NaN, DUE, en), null);
  });
});

describe("in Chinese", () => {
  test("each form reads as the Chinese page shows it", () => {
    const shown = (nowMs) => countdownText(DUE, nowMs, zh).text;
    assert.equal(shown(DUE), "剩余不足 1 分钟");
    assert.equal(shown(DUE - 12 * MINUTE), "剩余 12 分钟");
    assert.equal(shown(DUE - 65 * MINUTE), "剩余 1 小时 5 分钟");
    assert.equal(shown(DUE + 30 * 1000), "已超时 1 分钟");
    assert.equal(shown(DUE + 25 * HOUR), "已超时 25 小时 0 分钟");
  });
});

describe("the editor's tick", () => {
  test("redrawing every tick never skips a minute of the text", () => {
    const minutes = (nowMs) => {
      const c = countdown(DUE, nowMs);
      const n = c.vars.n ?? (c.vars.h === undefined ? 0 : c.vars.h * 60 + c.vars.m);
      return c.cls === "overdue" ? -n : n;
    };
    for (let now = DUE - 90 * MINUTE + 7000; now < DUE + 90 * MINUTE; now += COUNTDOWN_TICK_MS) {
      const step = minutes(now) - minutes(now + COUNTDOWN_TICK_MS);
      assert.ok(step <= 1, `jumped ${step} min at ${now - DUE} ms`);
    }
  });
});
