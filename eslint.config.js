// eslint (flat config) for teleread's JavaScript: the recommended rules everywhere, browser
// globals for the pages' code (service/static, viewer/static), node globals for the tests that
// node's own runner executes (tests/js). `make test` runs it before pytest.
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["node_modules/", ".venv/", "build/", "var/", "compose/"] },
  js.configs.recommended,
  {
    files: ["service/static/**/*.js", "viewer/static/**/*.js"],
    languageOptions: { sourceType: "module", globals: globals.browser },
  },
  {
    files: ["tests/js/**/*.mjs", "eslint.config.js"],
    languageOptions: { sourceType: "module", globals: globals.node },
  },
  {
    rules: {
      // `_err` in `catch (_err)` and `_unused` arguments say "deliberately ignored".
      "no-unused-vars": ["error", { argsIgnorePattern: "^_", caughtErrorsIgnorePattern: "^_" }],
    },
  },
];
