// teleread — filling a translated message's {name} placeholders. Pure: no DOM, so node's tests
// render the catalogue's strings exactly as the pages do (tests/js/countdown.test.mjs);
// common.js re-exports it and binds it to the page's strings in t() and plural().

/** Replace {name} placeholders; unknown names are left as they are. */
export function format(template, vars) {
  if (!vars) return template;
  return template.replace(/\{(\w+)\}/g, (whole, name) =>
    Object.prototype.hasOwnProperty.call(vars, name) ? String(vars[name]) : whole,
  );
}
