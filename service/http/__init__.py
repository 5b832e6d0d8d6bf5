"""HTTP handlers: one module per feature; handlers only translate HTTP to domain calls."""
