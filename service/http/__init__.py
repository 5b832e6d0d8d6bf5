"""HTTP handlers: each module owns one feature's routes; handlers only translate HTTP to domain calls."""
