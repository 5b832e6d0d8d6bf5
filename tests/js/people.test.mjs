// service/static/people.js: DICOM person names (PS3.5 6.2, VR PN) written the way people read them.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { firstPersonName, personName } from "../../service/static/people.js";

describe("personName", () => {
  test("family and given names are separated by a space", () => {
    assert.equal(personName("WANG^FANG"), "WANG FANG");
  });

  test("a Chinese name is written without a space, as on the signed PDF", () => {
    assert.equal(personName("王^芳"), "王芳");
  });

  test("the ideographic and alphabetic groups are both kept, each in its own way", () => {
    assert.equal(personName("王^芳=WANG^FANG"), "王芳 = WANG FANG");
    assert.equal(personName("ZHANG^SAN=张^三"), "ZHANG SAN = 张三");
  });

  test("empty components and groups leave no stray spaces or separators", () => {
    assert.equal(personName("DOE^^JOHN^^"), "DOE JOHN");
    assert.equal(personName("=王^芳"), "王芳");
    assert.equal(personName("LI^LEI=="), "LI LEI");
    assert.equal(personName(" SMITH ^ ANNE "), "SMITH ANNE");
  });

  test("a name of one component is itself", () => {
    assert.equal(personName("ANONYMOUS"), "ANONYMOUS");
  });

  test("no name gives an empty string", () => {
    for (const nothing of [undefined, null, "", "^", "=^="]) assert.equal(personName(nothing), "");
  });
});

describe("firstPersonName", () => {
  test("keeps only the first component group", () => {
    assert.equal(firstPersonName("王^芳=WANG^FANG"), "王芳");
    assert.equal(firstPersonName("WANG^XIAO"), "WANG XIAO");
  });

  test("an empty first group gives an empty string", () => {
    assert.equal(firstPersonName("=WANG^FANG"), "");
    assert.equal(firstPersonName(undefined), "");
  });
});
